//! Fuzz target: recovery of a segment made of arbitrary `.log`, `.index` and
//! `.timeindex` files. The body is `keel::fuzz::segment_recover`, in the engine, so that
//! `engine/tests/fuzz_corpus.rs` replays the corpus through the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::segment_recover(data));
