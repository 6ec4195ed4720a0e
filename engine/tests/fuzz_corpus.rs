//! Replays every committed fuzz input through its body in `keel::fuzz`: the seed corpora in
//! `fuzz/corpus/TARGET/` and the minimized crashes in `fuzz/regressions/TARGET/`. A plain
//! `cargo test` thereby keeps what the fuzzer once found fixed, without cargo-fuzz or nightly.
//! The ignored `regenerate_seeds` rewrites the seeds from `keel::fuzz::seeds`.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use keel::fuzz;

/// The directories under `fuzz/` that hold inputs, each with one subdirectory per target.
const INPUT_DIRS: [&str; 2] = ["corpus", "regressions"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The input files of one target's directory, sorted; dotfiles (`.gitkeep`) and READMEs are not
/// inputs. A directory that does not exist has none.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && !name.starts_with("README")
        })
        .collect();
    files.sort();
    files
}

/// Runs `body` on every input of `target`, then fails naming each input that panicked. Returns
/// how many inputs ran.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let mut ran = 0;
    let mut failed = Vec::new();
    for kind in INPUT_DIRS {
        for path in inputs(&fuzz_dir().join(kind).join(target)) {
            let bytes = fs::read(&path).expect("readable input");
            if panic::catch_unwind(|| body(&bytes)).is_err() {
                failed.push(path.display().to_string());
            }
            ran += 1;
        }
    }
    assert!(failed.is_empty(), "{target} panicked on: {failed:#?}");
    ran
}

#[test]
fn batch_decode_inputs_pass() {
    assert!(replay("batch_decode", fuzz::batch_decode) > 0, "no seeds");
}

#[test]
fn segment_recover_inputs_pass() {
    assert!(
        replay("segment_recover", fuzz::segment_recover) > 0,
        "no seeds"
    );
}

#[test]
fn index_lookup_inputs_pass() {
    assert!(replay("index_lookup", fuzz::index_lookup) > 0, "no seeds");
}

#[test]
fn log_ops_inputs_pass() {
    assert!(replay("log_ops", fuzz::log_ops) > 0, "no seeds");
}

#[test]
fn request_decode_inputs_pass() {
    assert!(
        replay("request_decode", fuzz::request_decode) > 0,
        "no seeds"
    );
}

#[test]
fn request_structured_inputs_pass() {
    assert!(
        replay("request_structured", fuzz::request_structured) > 0,
        "no seeds"
    );
}

/// Every API and version keel advertises answers structured requests built from a few
/// pseudo-random inputs: an API added to ApiVersions without a request builder in the harness,
/// or a version the builder cannot encode, fails here rather than only under the fuzzer.
#[test]
fn every_advertised_api_and_version_answers_structured_requests() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for &(key, min, max) in keel::protocol::SUPPORTED {
        for version in min..=max {
            for _ in 0..8 {
                let data: Vec<u8> = (0..256)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                fuzz::request_structured_at(key, version, &data);
            }
        }
    }
}

/// Run by hand after an input format changes:
/// `cargo test -p keel --test fuzz_corpus -- --ignored regenerate_seeds`. Seeds are the
/// `seed-*` files; whatever else libFuzzer added to a corpus directory is left alone.
#[test]
#[ignore = "rewrites fuzz/corpus"]
fn regenerate_seeds() {
    for seed in fuzz::seeds() {
        let dir = fuzz_dir().join("corpus").join(seed.target);
        fs::create_dir_all(&dir).expect("create corpus directory");
        fs::write(dir.join(&seed.name), &seed.bytes).expect("write seed");
    }
}
