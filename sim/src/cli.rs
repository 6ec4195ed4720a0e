//! Command line of `keel-sim`: argument parsing, the seed loop over worker threads, the progress
//! bar and the summary.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use keel_sim::disk::FaultCounts;
use keel_sim::runner::{run_seed, RunOptions, SeedOutcome};

const SEEDS_DEFAULT: u64 = 100;
const USAGE: &str = "usage: keel-sim [--seeds N] [--from S] [--ops K] [--jobs J]
       keel-sim --seed S [--trace] [--ops K]
       keel-sim --check-determinism [--seed S] [--ops K]
       --workload log|broker|compact|mixed picks the server (mixed: each seed chooses;
       compact: the storage node with cleanup.policy=compact and its cleaner)
       --brokers N runs the metadata quorum of N voters instead (kills, power losses,
       partitions, an isolated leader, restart storms)
       (--lying-fsync and --bit-rot P change the disk for proof runs)";

#[derive(Debug)]
struct Args {
    seeds: u64,
    from: u64,
    seed: Option<u64>,
    jobs: usize,
    determinism: bool,
    options: RunOptions,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        seeds: SEEDS_DEFAULT,
        from: 0,
        seed: None,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        determinism: false,
        options: RunOptions::default(),
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--seeds" => args.seeds = number(&value("--seeds")?)?,
            "--from" => args.from = number(&value("--from")?)?,
            "--seed" => args.seed = Some(number(&value("--seed")?)?),
            "--ops" => args.options.operations = number(&value("--ops")?)?,
            "--jobs" => args.jobs = number(&value("--jobs")?)? as usize,
            "--trace" => args.options.trace = true,
            "--workload" => {
                (args.options.broker, args.options.compact) = match value("--workload")?.as_str() {
                    "log" => (Some(false), Some(false)),
                    "broker" => (Some(true), Some(false)),
                    "compact" => (Some(false), Some(true)),
                    "mixed" => (None, None),
                    other => {
                        return Err(format!("--workload log|broker|compact|mixed, not {other}"))
                    }
                }
            }
            "--brokers" => {
                let voters = number(&value("--brokers")?)?;
                if !(1..=9).contains(&voters) {
                    return Err(format!("--brokers 1 to 9, not {voters}"));
                }
                args.options.voters = Some(voters);
            }
            "--check-determinism" => args.determinism = true,
            "--lying-fsync" => args.options.lying_fsync = true,
            "--bit-rot" => {
                let rate = value("--bit-rot")?;
                let rate: f64 = rate.parse().map_err(|_| format!("bad rate {rate}"))?;
                args.options.constant_bit_rot = Some(rate);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    args.jobs = args.jobs.max(1);
    Ok(args)
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

pub fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if args.determinism {
        return check_determinism(args.seed.unwrap_or(1), &args.options);
    }
    if let Some(seed) = args.seed {
        if args.options.trace {
            // The engine's own log lines (recovery cuts, retention) interleave with the events.
            tracing_subscriber::fmt()
                .with_writer(std::io::stdout)
                .without_time()
                .init();
        }
        return replay(seed, &args.options);
    }
    run_many(&args)
}

/// The `--workload` value that gives `options` (`None` for mixed).
fn workload_name(options: &RunOptions) -> Option<&'static str> {
    match (options.broker, options.compact) {
        (None, None) => None,
        (Some(true), _) => Some("broker"),
        (_, Some(true)) => Some("compact"),
        _ => Some("log"),
    }
}

fn replay_command(seed: u64, options: &RunOptions) -> String {
    let mut command = format!("cargo xtask sim --seed {seed} --ops {}", options.operations);
    if options.lying_fsync {
        command.push_str(" --lying-fsync");
    }
    if let Some(rate) = options.constant_bit_rot {
        command.push_str(&format!(" --bit-rot {rate}"));
    }
    if let Some(workload) = workload_name(options) {
        command.push_str(&format!(" --workload {workload}"));
    }
    if let Some(voters) = options.voters {
        command.push_str(&format!(" --brokers {voters}"));
    }
    command + " --trace"
}

fn report_failure(outcome: &SeedOutcome, options: &RunOptions) {
    let violation = outcome.violation.as_ref().expect("a failed seed");
    println!(
        "FAILED seed {} ({}, flush {})",
        outcome.seed, outcome.target, outcome.flush
    );
    println!("  invariant: {}", violation.checker);
    println!("  {}", violation.message);
    println!("  replay: {}", replay_command(outcome.seed, options));
}

fn replay(seed: u64, options: &RunOptions) -> ExitCode {
    let outcome = run_seed_alone(seed, options);
    println!(
        "seed {seed}: {}, flush {}, {} operations, {} ms simulated, faults: {}, trace hash {:016x}",
        outcome.target,
        outcome.flush,
        outcome.operations,
        outcome.simulated_ms,
        outcome.faults,
        outcome.trace_hash
    );
    if outcome.violation.is_some() {
        report_failure(&outcome, options);
        return ExitCode::from(1);
    }
    println!("seed {seed}: all invariants hold");
    ExitCode::SUCCESS
}

/// Runs `seed` twice, each in a fresh process (as a replay would), then once more in this
/// process after another seed (as `--seeds` runs it), and compares the three trace hashes: a
/// failure found among many seeds must come back when its seed is replayed alone.
fn check_determinism(seed: u64, options: &RunOptions) -> ExitCode {
    let mut hashes: Vec<Option<String>> = (0..2).map(|_| replay_hash(seed, options)).collect();
    run_seed_alone(seed.wrapping_add(1), options);
    hashes.push(Some(format!(
        "{:016x}",
        run_seed_alone(seed, options).trace_hash
    )));
    println!(
        "seed {seed}: trace hashes {} and {} alone, {} after seed {}",
        hashes[0].as_deref().unwrap_or("?"),
        hashes[1].as_deref().unwrap_or("?"),
        hashes[2].as_deref().unwrap_or("?"),
        seed.wrapping_add(1)
    );
    if hashes[0].is_some() && hashes.iter().all(|hash| *hash == hashes[0]) {
        println!("deterministic");
        ExitCode::SUCCESS
    } else {
        println!("NOT deterministic: the same seed gave different histories");
        ExitCode::from(1)
    }
}

/// The trace hash a fresh `keel-sim --seed S` process prints.
fn replay_hash(seed: u64, options: &RunOptions) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let mut command = std::process::Command::new(exe);
    command.args([
        "--seed",
        &seed.to_string(),
        "--ops",
        &options.operations.to_string(),
    ]);
    if let Some(workload) = workload_name(options) {
        command.args(["--workload", workload]);
    }
    if let Some(voters) = options.voters {
        command.args(["--brokers", &voters.to_string()]);
    }
    let output = command.output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let at = text.find("trace hash ")?;
    Some(
        text[at + "trace hash ".len()..]
            .split_whitespace()
            .next()?
            .to_owned(),
    )
}

/// Runs `seed` on a thread of its own. The standard library derives each `HashMap`'s keys from
/// a per-thread pair that it draws once and then counts up, so a seed run on a thread that ran
/// others before would see keys, and iteration orders, that depend on those others: a failure
/// found among many seeds might then not come back under `--seed S`. A fresh thread draws its
/// pair inside the seed's runtime, from the seed.
fn run_seed_alone(seed: u64, options: &RunOptions) -> SeedOutcome {
    let options = options.clone();
    std::thread::spawn(move || run_seed(seed, &options))
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Totals over the seeds run so far.
#[derive(Default)]
struct Totals {
    seeds: u64,
    operations: u64,
    simulated_ms: u64,
    faults: FaultCounts,
    lost_to_damage: u64,
    failures: Vec<SeedOutcome>,
    /// Every seed below this one has finished (workers finish seeds out of order).
    done_below: u64,
    /// Finished seeds at or above `done_below`.
    done_above: std::collections::BTreeSet<u64>,
}

impl Totals {
    fn add(&mut self, outcome: SeedOutcome) {
        self.done_above.insert(outcome.seed);
        while self.done_above.remove(&self.done_below) {
            self.done_below += 1;
        }
        self.seeds += 1;
        self.operations += outcome.operations;
        self.simulated_ms += outcome.simulated_ms;
        self.lost_to_damage += outcome.lost_to_damage;
        self.faults += outcome.faults;
        if outcome.violation.is_some() {
            self.failures.push(outcome);
        }
    }
}

/// How often a long run says where to resume it from (and what failed so far).
const RESUME_EVERY: u64 = 5_000;

fn run_many(args: &Args) -> ExitCode {
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(args.seeds);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed} {msg}")
            .expect("template"),
    );
    let next = Arc::new(AtomicU64::new(0));
    let totals = Arc::new(Mutex::new(Totals {
        done_below: args.from,
        ..Totals::default()
    }));
    let workers: Vec<_> = (0..args.jobs)
        .map(|_| {
            let (next, totals, bar) = (next.clone(), totals.clone(), bar.clone());
            let (from, seeds, options) = (args.from, args.seeds, args.options.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= seeds {
                    return;
                }
                let outcome = run_seed_alone(from + i, &options);
                if outcome.violation.is_some() {
                    bar.println(format!("seed {} failed", outcome.seed));
                }
                let mut totals = totals.lock().expect("totals");
                totals.add(outcome);
                if totals.seeds.is_multiple_of(RESUME_EVERY) && totals.seeds < seeds {
                    bar.println(format!(
                        "{} seeds done, {} failed; to resume from here: --from {} --seeds {}",
                        totals.seeds,
                        totals.failures.len(),
                        totals.done_below,
                        from + seeds - totals.done_below
                    ));
                }
                drop(totals);
                bar.inc(1);
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .expect("a seed worker panicked outside a seed");
    }
    bar.finish_and_clear();
    let totals = totals.lock().expect("totals");
    summarize(&totals, started.elapsed().as_secs_f64(), args)
}

fn summarize(totals: &Totals, wall_s: f64, args: &Args) -> ExitCode {
    let simulated_s = totals.simulated_ms as f64 / 1000.0;
    println!(
        "{} seeds ({}..{}) in {wall_s:.1} s wall on {} threads: {:.0} seeds/min",
        totals.seeds,
        args.from,
        args.from + args.seeds,
        args.jobs,
        totals.seeds as f64 * 60.0 / wall_s
    );
    println!(
        "operations {}; simulated {simulated_s:.0} s, {:.0}x wall time",
        totals.operations,
        simulated_s / wall_s
    );
    println!("faults: {}", totals.faults);
    if let Some(peak_kb) = peak_resident_kb() {
        println!(
            "peak memory {:.0} MB resident ({:.1} KB per seed)",
            peak_kb as f64 / 1024.0,
            peak_kb as f64 / totals.seeds.max(1) as f64
        );
    }
    println!(
        "records truly lost (acknowledged, in batches rotted at rest): {}",
        totals.lost_to_damage
    );
    let mut failures: Vec<&SeedOutcome> = totals.failures.iter().collect();
    failures.sort_by_key(|o| o.seed);
    for outcome in &failures {
        report_failure(outcome, &args.options);
    }
    println!(
        "{} passed, {} failed",
        totals.seeds - failures.len() as u64,
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The process's peak resident set (Linux's VmHWM), in KiB; `None` where /proc does not say.
fn peak_resident_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
