//! Fuzz target: reads and time lookups on a sound log whose index files are
//! arbitrary. The body is `keel::fuzz::index_lookup`, in the engine, so that
//! `engine/tests/fuzz_corpus.rs` replays the corpus through the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::index_lookup(data));
