//! Fuzz target: valid requests of every API and version keel advertises, built from the bytes
//! with `arbitrary` and encoded by kafka-protocol; every answer must decode at its version. The
//! body is `keel::fuzz::request_structured`, replayed by `engine/tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel::fuzz::request_structured(data));
