//! `keel-sim`: runs seeds of the simulation and reports (`cargo xtask sim`).
//!
//! - `--seeds N [--from S] [--ops K]`: N seeds with a progress bar, then a summary: seeds run,
//!   faults injected by kind, operations, simulated time over wall time.
//! - `--seed S [--trace]`: one seed, optionally printing its events.
//! - `--check-determinism [--seed S]`: the same seed twice must give the same trace hash.
//!
//! A failure exits 1 and prints the seed, the broken invariant, the record and the command that
//! replays it.

#[cfg(madsim)]
mod cli;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("keel-sim runs only under the simulator's build: use `cargo xtask sim`");
    std::process::ExitCode::from(2)
}
