#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zctrace::fuzzing::merge(data));
