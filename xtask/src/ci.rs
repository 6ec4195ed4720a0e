//! `cargo xtask ci`: every check a change must pass, in a fixed order, stopping at the first
//! failure. The cheap checks come first so a formatting slip costs seconds, not a full test run.

use crate::{cmd, deps, fuzz, sim, tidy, Error, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The code that runs a step, given the workspace root.
type RunStep = Box<dyn Fn(&Path) -> Result>;

/// One ci step: its name, what it runs (for the header), and the code that runs it.
struct Step {
    name: &'static str,
    what: String,
    run: RunStep,
}

fn steps(root: &Path) -> Vec<Step> {
    vec![
        cargo_step(root, "fmt", &["fmt", "--all", "--", "--check"]),
        cargo_step(
            root,
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step {
            name: "tidy",
            what: "cargo xtask tidy (in-process)".into(),
            run: Box::new(|root: &Path| tidy::run(root)),
        },
        Step {
            name: "deps",
            what:
                "cargo xtask deps (in-process): kcat, go, sarama and the target/py venv for tests/"
                    .into(),
            run: Box::new(|root: &Path| deps::run(root)),
        },
        cargo_step(root, "test", &["test", "--workspace"]),
        Step {
            name: "fuzz",
            what: fuzz::ci_description(),
            run: Box::new(|root: &Path| fuzz::ci(root)),
        },
        sim_cargo_step(root, "sim-clippy", sim::CI_CLIPPY_ARGS),
        sim_cargo_step(root, "sim-test", sim::CI_TEST_ARGS),
        sim_step(root, "sim", sim::CI_SIM_ARGS),
        sim_step(root, "quorum", sim::CI_QUORUM_ARGS),
        sim_step(root, "determinism", sim::CI_DETERMINISM_ARGS),
        sim_step(root, "quorum-determinism", sim::CI_QUORUM_DETERMINISM_ARGS),
    ]
}

/// A step that runs `cargo ARGS`, output inherited so cargo's own summaries show in the log.
fn cargo_step(root: &Path, name: &'static str, args: &'static [&'static str]) -> Step {
    Step {
        name,
        what: cmd::display(&cmd::cargo(root, args)),
        run: Box::new(move |root: &Path| cmd::run(cmd::cargo(root, args))),
    }
}

/// A step that runs the simulator with `args`.
fn sim_step(root: &Path, name: &'static str, args: &'static [&'static str]) -> Step {
    Step {
        name,
        what: cmd::display(&sim::command(root, args)),
        run: Box::new(move |root: &Path| cmd::run(sim::command(root, args))),
    }
}

/// A step that runs `cargo ARGS` in the simulator's build (`--cfg madsim`, target/sim).
fn sim_cargo_step(root: &Path, name: &'static str, args: &'static [&'static str]) -> Step {
    Step {
        name,
        what: cmd::display(&sim::cargo(root, args)),
        run: Box::new(move |root: &Path| cmd::run(sim::cargo(root, args))),
    }
}

/// Runs every step in order; the first failure ends the run with that step named.
pub fn run(root: &Path) -> Result {
    let started = Instant::now();
    let steps = steps(root);
    for (index, step) in steps.iter().enumerate() {
        println!(
            "\n==> ci [{}/{}] {}: {}",
            index + 1,
            steps.len(),
            step.name,
            step.what
        );
        let step_started = Instant::now();
        match (step.run)(root) {
            Ok(()) => println!("==> {} ok ({})", step.name, secs(step_started.elapsed())),
            Err(err) => return Err(step_failed(step.name, err, step_started.elapsed())),
        }
    }
    println!("\nci: total wall time {}", secs(started.elapsed()));
    println!("ci: all steps passed");
    Ok(())
}

/// Prefixes a step's error with which step failed, keeping its exit code.
fn step_failed(name: &str, err: Error, elapsed: Duration) -> Error {
    let prefix = format!("ci: step `{name}` failed after {}", secs(elapsed));
    match err {
        Error::Failed { message, code } => Error::Failed {
            message: format!("{prefix}: {message}"),
            code,
        },
        Error::Usage(message) => Error::failed(format!("{prefix}: {message}")),
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}
