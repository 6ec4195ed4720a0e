//! Fuzz target: reads and time lookups on a sound log with arbitrary index files (keel::fuzz::index_lookup).
//! The body lives in the engine so that `engine/tests/fuzz_corpus.rs` replays the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::index_lookup(data));
