# Install libquarot the way C/C++ projects expect:
#
#     make install PREFIX=/usr/local [DESTDIR=/staging] [LIBDIR=...] [INCLUDEDIR=...]
#
# installs (paths under $(DESTDIR)):
#   $(LIBDIR)/libquarot.so.$(VERSION), the SONAME link $(SONAME) and libquarot.so
#   $(LIBDIR)/libquarot.a
#   $(INCLUDEDIR)/quarot.h
#   $(LIBDIR)/pkgconfig/quarot.pc          (pkg-config quarot; --static for libquarot.a)
#   $(LIBDIR)/cmake/quarot/quarotConfig.cmake, quarotConfigVersion.cmake
#                                            (find_package(quarot) -> quarot::quarot,
#                                             quarot::quarot_static)
# The version comes from Cargo.toml, as everywhere else.
# `make uninstall` removes the same files. tests/install.rs checks all of it.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR    ?=
CARGO      ?= cargo
# A build directory of its own: the installed library is linked with its SONAME, which a
# plain `cargo build` (used in place from target/release) does not set.
TARGET_DIR ?= target/install

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(word 1,$(subst ., ,$(VERSION)))
MINOR   := $(word 2,$(subst ., ,$(VERSION)))
SONAME  := $(if $(filter 0,$(MAJOR)),libquarot.so.0.$(MINOR),libquarot.so.$(MAJOR))
# What rustc says a static libquarot needs (cargo rustc -- --print native-static-libs).
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

BUILT := $(TARGET_DIR)/release

.PHONY: all build install uninstall
all: build

build:
	$(CARGO) rustc --release --lib --crate-type cdylib --target-dir $(TARGET_DIR) \
	    -- -C link-arg=-Wl,-soname,$(SONAME)
	$(CARGO) rustc --release --lib --crate-type staticlib --target-dir $(TARGET_DIR)

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/quarot
	install -m 755 $(BUILT)/libquarot.so $(DESTDIR)$(LIBDIR)/libquarot.so.$(VERSION)
	ln -sf libquarot.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libquarot.so
	install -m 644 $(BUILT)/libquarot.a $(DESTDIR)$(LIBDIR)/libquarot.a
	install -m 644 include/quarot.h $(DESTDIR)$(INCLUDEDIR)/quarot.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|g' \
	    packaging/quarot.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/quarot.pc
	sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@SONAME@|$(SONAME)|g' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|g' \
	    packaging/quarotConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/quarot/quarotConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' \
	    packaging/quarotConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/quarot/quarotConfigVersion.cmake

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libquarot.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libquarot.so $(DESTDIR)$(LIBDIR)/libquarot.a \
	    $(DESTDIR)$(INCLUDEDIR)/quarot.h $(DESTDIR)$(LIBDIR)/pkgconfig/quarot.pc \
	    $(DESTDIR)$(LIBDIR)/cmake/quarot/quarotConfig.cmake \
	    $(DESTDIR)$(LIBDIR)/cmake/quarot/quarotConfigVersion.cmake
	-rmdir $(DESTDIR)$(LIBDIR)/cmake/quarot 2>/dev/null
