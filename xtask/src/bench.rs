//! Benchmarks: each is an example program of the crate it measures, or the separate `bench/`
//! workspace, run in release mode, so xtask itself stays free of the benchmarked code and its
//! dependencies. `bench/` is its own workspace because it bundles librdkafka (a C build), which
//! the main workspace and CI must not pay for.

use crate::{cmd, Error, Result};
use std::path::Path;

/// One benchmark: the name given to `cargo xtask bench`, and the program that implements it.
struct Bench {
    name: &'static str,
    runner: Runner,
    about: &'static str,
}

/// What runs a benchmark.
enum Runner {
    /// An example of a package of the main workspace.
    Example {
        package: &'static str,
        example: &'static str,
    },
    /// The `keel-bench` binary of the `bench/` workspace, given the release `keel` binary.
    BrokerBench,
}

/// Where the broker benchmark's workspace lives, and where it keeps the broker's data.
const BROKER_BENCH_MANIFEST: &str = "bench/Cargo.toml";
const BROKER_BENCH_DATA: &str = "target/bench-broker";

const BENCHES: &[Bench] = &[
    Bench {
        name: "engine",
        runner: Runner::Example {
            package: "keel",
            example: "bench_engine",
        },
        about: "the storage engine",
    },
    Bench {
        name: "broker",
        runner: Runner::BrokerBench,
        about: "the release broker under librdkafka vs raw sendfile [--bytes N]",
    },
];

/// `cargo xtask bench`: lists the benchmarks. `cargo xtask bench NAME ARGS...`: runs NAME,
/// passing ARGS to the benchmark program.
pub fn run(root: &Path, args: &[String]) -> Result {
    let Some((name, rest)) = args.split_first() else {
        list();
        return Ok(());
    };
    let Some(bench) = BENCHES.iter().find(|bench| bench.name == name) else {
        let names: Vec<&str> = BENCHES.iter().map(|bench| bench.name).collect();
        return Err(Error::Usage(format!(
            "unknown benchmark `{name}` (available: {})",
            names.join(", ")
        )));
    };
    match bench.runner {
        Runner::Example { package, example } => run_example(root, package, example, rest),
        Runner::BrokerBench => run_broker(root, rest),
    }
}

fn run_example(root: &Path, package: &str, example: &str, rest: &[String]) -> Result {
    let mut cargo_args = vec!["run", "--release", "-p", package, "--example", example];
    cargo_args.push("--");
    cargo_args.extend(rest.iter().map(String::as_str));
    cmd::run(cmd::cargo(root, &cargo_args))
}

/// Builds the release broker first (the benchmark runs that binary, not a library copy of it),
/// then runs `keel-bench` from the repository root with absolute paths, so it does not matter
/// which directory `cargo run --manifest-path` leaves it in.
fn run_broker(root: &Path, rest: &[String]) -> Result {
    cmd::run(cmd::cargo(root, &["build", "--release", "-p", "keel"]))?;
    let keel = root.join("target/release/keel");
    let data_dir = root.join(BROKER_BENCH_DATA);
    let (keel, data_dir) = (keel.to_string_lossy(), data_dir.to_string_lossy());
    let mut cargo_args = vec![
        "run",
        "--release",
        "--manifest-path",
        BROKER_BENCH_MANIFEST,
        "--",
        "--keel",
        &keel,
        "--data-dir",
        &data_dir,
    ];
    cargo_args.extend(rest.iter().map(String::as_str));
    cmd::run(cmd::cargo(root, &cargo_args))
}

fn list() {
    println!("benchmarks (cargo xtask bench NAME [ARGS...]):");
    for bench in BENCHES {
        let program = match bench.runner {
            Runner::Example { package, example } => {
                format!("example `{example}` of package `{package}`")
            }
            Runner::BrokerBench => format!("`keel-bench` of {BROKER_BENCH_MANIFEST}"),
        };
        println!("  {:<8} {} ({program})", bench.name, bench.about);
    }
}
