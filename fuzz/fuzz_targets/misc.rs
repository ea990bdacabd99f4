#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarot_fuzz::misc::run(data));
