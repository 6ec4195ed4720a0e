//! The deterministic simulator: builds keel-sim with `--cfg madsim` in its own target directory
//! (so switching between simulated and normal builds does not rebuild everything each time) and
//! runs it. Also the ci steps that run it, guarded until the simulator's runner exists.

use crate::{cmd, Result};
use std::path::Path;
use std::process::Command;

/// Arguments for the ci simulation step.
pub const CI_SIM_ARGS: &[&str] = &["--seeds", "300"];

/// Arguments for the ci determinism step: one seed run twice must give identical traces.
pub const CI_DETERMINISM_ARGS: &[&str] = &["--check-determinism", "--seed", "1"];

/// The simulator's steps are skipped until this file exists: before it, there is no binary.
pub const GUARD: &str = "sim/src/runner.rs";

/// `cargo xtask sim ARGS...`: every argument goes to keel-sim untouched.
pub fn run(root: &Path, args: &[String]) -> Result {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd::run(command(root, &args))
}

/// Whether the simulator can be built yet; see [`GUARD`].
pub fn available(root: &Path) -> bool {
    root.join(GUARD).is_file()
}

/// `cargo run --release -p keel-sim --bin keel-sim -- ARGS` with the madsim cfg and target dir.
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
    let mut command = cmd::cargo(root, &cargo_args);
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
