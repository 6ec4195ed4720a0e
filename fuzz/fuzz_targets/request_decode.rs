//! Fuzz target: arbitrary bytes as a request frame (after the size prefix), answered by a broker
//! on an in-memory disk. The body is `keel::fuzz::request_decode`, in the engine, so that
//! `engine/tests/fuzz_corpus.rs` replays the corpus through the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::request_decode(data));
