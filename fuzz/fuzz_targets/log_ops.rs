//! Fuzz target: arbitrary sequences of log operations, checked against a Vec of
//! records. The body is `keel::fuzz::log_ops`, in the engine, so that
//! `engine/tests/fuzz_corpus.rs` replays the corpus through the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::log_ops(data));
