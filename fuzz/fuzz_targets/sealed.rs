#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chkfs::fuzzing::sealed(data));
