"""QuarotError and the status check used after every fallible call (internal)."""

from __future__ import annotations

from ._lib import LIB
from .constants import ERR_CALLBACK, OK, STATUS_NAMES

__all__ = ["QuarotError", "check", "error_from_status"]


def _text(b: bytes | None) -> str:
    return "" if b is None else b.decode("utf-8", errors="replace")


class QuarotError(Exception):
    """A libquarot call returned a status other than ``QUAROT_OK``.

    Attributes:
        status: the ``quarot_status`` code (an int; see ``quarot.ERR_*``).
        name: the library's static description of the code (``quarot_status_string``),
            e.g. ``"unsupported transform width"``.
        code_name: the C enumerator without the prefix, e.g. ``"ERR_UNSUPPORTED_SIZE"``.
        message: the details of the failure (``quarot_last_error()``, read on the failing
            thread right after the call), e.g. the nearest supported widths.
        callback_code: for ``ERR_CALLBACK``, the code the failing callback returned
            (``quarot_last_callback_code()``); otherwise ``None``.

    ``str(err)`` is ``"<name>: <message>"``.
    """

    def __init__(self, status: int, message: str = "", callback_code: int | None = None):
        self.status = int(status)
        self.name = status_string(self.status)
        self.code_name = STATUS_NAMES.get(self.status, f"status {self.status}")
        self.message = message
        self.callback_code = callback_code
        super().__init__(status, message, callback_code)

    def __str__(self) -> str:
        text = f"{self.name}: {self.message}" if self.message else self.name
        if self.callback_code is not None:
            text += f" (callback code {self.callback_code})"
        return text

    def __repr__(self) -> str:
        return f"QuarotError({self.code_name}, {self.message!r})"


def status_string(code: int) -> str:
    """The library's static description of a status code (``quarot_status_string``);
    ``"unknown status"`` for a value that is not one."""
    return _text(LIB.quarot_status_string(int(code)))


def error_from_status(status: int) -> QuarotError:
    """Build the QuarotError for a failed call; must run right after it, on its thread."""
    message = _text(LIB.quarot_last_error())
    cb = LIB.quarot_last_callback_code() if status == ERR_CALLBACK else None
    return QuarotError(status, message, cb)


def check(status: int) -> None:
    """Raise :class:`QuarotError` unless ``status`` is ``QUAROT_OK``."""
    if status != OK:
        raise error_from_status(status)
