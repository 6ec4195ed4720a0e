//! Fuzz target: recovery of a segment made of arbitrary .log/.index/.timeindex files (keel::fuzz::segment_recover).
//! The body lives in the engine so that `engine/tests/fuzz_corpus.rs` replays the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::segment_recover(data));
