//! Fuzz target: arbitrary sequences of log operations against a Vec-of-records model (keel::fuzz::log_ops).
//! The body lives in the engine so that `engine/tests/fuzz_corpus.rs` replays the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::log_ops(data));
