#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chkfs::fuzzing::index_table(data));
