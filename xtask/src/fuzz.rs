//! `cargo xtask fuzz`: runs keel's libFuzzer targets (`fuzz/`, a cargo-fuzz project with a
//! workspace of its own) on their committed seed corpora for a bounded time, installing
//! cargo-fuzz first when it is missing. libFuzzer's own output (executions, `cov:`, `ft:`) goes
//! straight to the terminal; a crash leaves its input under `fuzz/artifacts/TARGET/`.

use crate::{cmd, Error, Result};
use std::path::Path;
use std::process::Stdio;

/// The targets in `fuzz/Cargo.toml`, each a thin wrapper around a body in `keel::fuzz`.
pub const TARGETS: &[&str] = &[
    "batch_decode",
    "segment_recover",
    "index_lookup",
    "log_ops",
    "request_decode",
    "request_structured",
];

/// How long a target runs when `--seconds` is not given.
const SECONDS_DEFAULT: u64 = 60;

/// What to fuzz and for how long each.
struct Request {
    targets: Vec<&'static str>,
    seconds: u64,
}

/// `cargo xtask fuzz (TARGET | --all) [--seconds N]`.
pub fn run(root: &Path, args: &[String]) -> Result {
    let request = parse(args)?;
    ensure_cargo_fuzz(root)?;
    let mut failed = Vec::new();
    for target in &request.targets {
        // A crash in one target should not hide what the others would find in the same run.
        if let Err(err) = run_target(root, target, request.seconds) {
            failed.push((*target, err));
        }
    }
    match failed.into_iter().next() {
        None => Ok(()),
        Some((target, Error::Failed { message, code })) => Err(Error::Failed {
            message: format!("fuzz target `{target}` failed: {message}"),
            code,
        }),
        Some((_, err)) => Err(err),
    }
}

fn parse(args: &[String]) -> Result<Request> {
    let mut targets = Vec::new();
    let mut all = false;
    let mut seconds = SECONDS_DEFAULT;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--seconds" => seconds = parse_seconds(args.next())?,
            name => targets.push(known_target(name)?),
        }
    }
    match (all, targets.is_empty()) {
        (true, true) => targets = TARGETS.to_vec(),
        (false, false) => {}
        (true, false) => return Err(usage("give either --all or target names, not both")),
        (false, true) => return Err(usage("name a target or give --all")),
    }
    Ok(Request { targets, seconds })
}

fn parse_seconds(value: Option<&String>) -> Result<u64> {
    let value = value.ok_or_else(|| usage("--seconds needs a value"))?;
    match value.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(usage(&format!(
            "--seconds takes a positive whole number, got `{value}`"
        ))),
    }
}

fn known_target(name: &str) -> Result<&'static str> {
    TARGETS
        .iter()
        .copied()
        .find(|target| *target == name)
        .ok_or_else(|| {
            usage(&format!(
                "unknown fuzz target `{name}` (available: {})",
                TARGETS.join(", ")
            ))
        })
}

fn usage(message: &str) -> Error {
    Error::Usage(format!("fuzz: {message}"))
}

/// Installs cargo-fuzz unless `cargo fuzz` already answers.
fn ensure_cargo_fuzz(root: &Path) -> Result {
    let mut probe = cmd::cargo(root, &["fuzz", "--version"]);
    probe.stdout(Stdio::null()).stderr(Stdio::null());
    if probe.status().is_ok_and(|status| status.success()) {
        return Ok(());
    }
    println!("xtask: cargo-fuzz is not installed; installing it with `cargo install cargo-fuzz --locked` (a few minutes)");
    cmd::run(cmd::cargo(root, &["install", "cargo-fuzz", "--locked"]))
}

/// `cargo fuzz run -s none TARGET fuzz/corpus/TARGET -- -max_total_time=N`, from `fuzz/`. No
/// sanitizer: the bodies run only safe code (on MemDisk, never the mmap of `io/os.rs`), and
/// without one the build works on the stable toolchain.
fn run_target(root: &Path, target: &str, seconds: u64) -> Result {
    let fuzz_dir = root.join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    let mut command = cmd::cargo(&fuzz_dir, &["fuzz", "run", "-s", "none", target]);
    command
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"));
    println!(
        "\n==> fuzz {target} for {seconds}s: {}",
        cmd::display(&command)
    );
    cmd::run(command)
}
