//! The deterministic simulator: builds keel-sim with `--cfg madsim` in its own target directory
//! (so switching between simulated and normal builds does not rebuild everything each time) and
//! runs it. Also the ci steps that run it, guarded until the simulator's runner exists.

use crate::{cmd, Result};
use std::path::Path;
use std::process::Command;

/// Arguments for the ci simulation step: a few hundred seeds of the full faulted workload.
pub const CI_SIM_ARGS: &[&str] = &["--seeds", "300"];

/// Arguments for the ci quorum step: the metadata quorum of three voters, 200 seeds of 2,000
/// proposals each under kills, power losses, partitions and restart storms.
pub const CI_QUORUM_ARGS: &[&str] = &["--seeds", "200", "--brokers", "3", "--ops", "2000"];

/// Arguments for the ci determinism step: one seed run alone twice, each in a fresh process, and
/// once after another seed in one process, must give identical traces.
pub const CI_DETERMINISM_ARGS: &[&str] = &["--check-determinism", "--seed", "1"];

/// The same for the metadata quorum, whose raft-rs would draw election timeouts from the
/// operating system's randomness if the voters did not replace them.
pub const CI_QUORUM_DETERMINISM_ARGS: &[&str] = &[
    "--check-determinism",
    "--seed",
    "1",
    "--brokers",
    "3",
    "--ops",
    "1000",
];

/// The simulator's code is compiled only under `--cfg madsim`, so the ordinary clippy and test
/// steps never see it: ci lints and tests it again in the simulator's build.
pub const CI_CLIPPY_ARGS: &[&str] = &[
    "clippy",
    "-p",
    "keel-sim",
    "--all-targets",
    "--",
    "-D",
    "warnings",
];
pub const CI_TEST_ARGS: &[&str] = &["test", "--release", "-p", "keel-sim"];

/// `cargo xtask sim ARGS...`: every argument goes to keel-sim untouched.
pub fn run(root: &Path, args: &[String]) -> Result {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd::run(command(root, &args))
}

/// `cargo run --release -p keel-sim --bin keel-sim -- ARGS` in the simulator's build.
pub fn command(root: &Path, args: &[&str]) -> Command {
    let mut cargo_args = vec![
        "run",
        "--release",
        "-p",
        "keel-sim",
        "--bin",
        "keel-sim",
        "--",
    ];
    cargo_args.extend_from_slice(args);
    cargo(root, &cargo_args)
}

/// `cargo ARGS` with the madsim cfg and the simulator's own target directory.
pub fn cargo(root: &Path, args: &[&str]) -> Command {
    let mut command = cmd::cargo(root, args);
    command.env("RUSTFLAGS", rustflags());
    command.env("CARGO_TARGET_DIR", root.join("target/sim"));
    command
}

/// The caller's RUSTFLAGS plus `--cfg madsim`: replacing them would drop flags someone set on
/// purpose (a target-cpu, say), and the cfg is what switches keel-sim onto the madsim runtime.
fn rustflags() -> String {
    match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} --cfg madsim"),
        _ => "--cfg madsim".to_string(),
    }
}
