//! Fuzz target: arbitrary bytes as a RecordBatch, and as the compressed records of one
//! under each codec. The body is `keel::fuzz::batch_decode`, in the engine, so that
//! `engine/tests/fuzz_corpus.rs` replays the corpus through the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::batch_decode(data));
