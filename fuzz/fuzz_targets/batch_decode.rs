//! Fuzz target: arbitrary bytes as a RecordBatch and as compressed records (keel::fuzz::batch_decode).
//! The body lives in the engine so that `engine/tests/fuzz_corpus.rs` replays the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::batch_decode(data));
