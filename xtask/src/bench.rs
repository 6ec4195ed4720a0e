//! Benchmarks: each is an example program of the crate it measures, run in release mode, so
//! xtask itself stays free of the benchmarked code and its dependencies.

use crate::{cmd, Error, Result};
use std::path::Path;

/// One benchmark: the name given to `cargo xtask bench`, and the example that implements it.
struct Bench {
    name: &'static str,
    package: &'static str,
    example: &'static str,
    about: &'static str,
}

const BENCHES: &[Bench] = &[Bench {
    name: "engine",
    package: "keel",
    example: "bench_engine",
    about: "the storage engine",
}];

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
    let mut cargo_args = vec![
        "run",
        "--release",
        "-p",
        bench.package,
        "--example",
        bench.example,
    ];
    cargo_args.push("--");
    cargo_args.extend(rest.iter().map(String::as_str));
    cmd::run(cmd::cargo(root, &cargo_args))
}

fn list() {
    println!("benchmarks (cargo xtask bench NAME [ARGS...]):");
    for bench in BENCHES {
        println!(
            "  {:<8} {} (example `{}` of package `{}`)",
            bench.name, bench.about, bench.example, bench.package
        );
    }
}
