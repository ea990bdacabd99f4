#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarot_fuzz::rotate::run(data));
