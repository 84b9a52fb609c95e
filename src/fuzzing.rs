//! Entry points for the fuzz targets in `fuzz/`, one per decoder and one
//! for a whole repository. Each takes arbitrary bytes and must return
//! without panicking, whatever they are; `tests/fuzz_regressions.rs`
//! replays every input the fuzzers ever found against them on stable Rust.
