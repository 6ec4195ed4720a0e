//! `cargo xtask fuzz`: runs keel's libFuzzer targets (`fuzz/`, a cargo-fuzz project with a
//! workspace of its own) for a bounded time each, installing cargo-fuzz first when it is missing.
//! Also the `fuzz` step of `cargo xtask ci`, which fuzzes every target briefly from the committed
//! inputs rather than only replaying them.
//!
//! Every run ends with one line giving libFuzzer's final numbers (executions, `cov:`, `ft:`,
//! corpus size), so a log shows that fuzzing happened and how far it got. A crash leaves its input
//! under `fuzz/artifacts/TARGET/`, and the error names that file.

use crate::{cmd, Error, Result};
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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

/// How long ci fuzzes each target: the slowest target (log_ops, about 1,000 executions a second)
/// still runs some 20,000 inputs past its seeds, and the six together add about two minutes.
const CI_SECONDS_PER_TARGET: u64 = 20;

/// The longest one input may run in ci before libFuzzer reports it as a hang: executions take
/// milliseconds, so this is far above a slow one on a loaded machine, and it keeps a hang from
/// holding ci for libFuzzer's default of 20 minutes.
const CI_INPUT_SECONDS_MAX: u64 = 30;

/// What to fuzz and for how long each.
struct Request {
    targets: Vec<&'static str>,
    seconds: u64,
}

/// Where a run starts from and what it shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `cargo xtask fuzz`: libFuzzer adds what it finds to `fuzz/corpus/TARGET`, and all of its
    /// output is shown.
    Local,
    /// `cargo xtask ci`: libFuzzer writes what it finds to a scratch corpus under
    /// `fuzz/target/ci-corpus/`, emptied first, and reads `fuzz/corpus/TARGET` and
    /// `fuzz/regressions/TARGET` without adding to them. Every ci run thereby starts from the
    /// committed inputs, and the corpora that `cargo test` replays do not grow. libFuzzer's line
    /// per new input (NEW, REDUCE, pulse) is left out of the log.
    Ci,
}

/// `cargo xtask fuzz (TARGET | --all) [--seconds N]`, or `cargo xtask fuzz --ci` for what the ci
/// step runs.
pub fn run(root: &Path, args: &[String]) -> Result {
    if matches!(args, [only] if only == "--ci") {
        return ci(root);
    }
    let request = parse(args)?;
    ensure_cargo_fuzz(root)?;
    run_all(root, &request.targets, request.seconds, Mode::Local)
}

/// The ci step: builds every target, then fuzzes each for `CI_SECONDS_PER_TARGET`.
pub fn ci(root: &Path) -> Result {
    ensure_cargo_fuzz(root)?;
    cmd::run(cmd::cargo(
        &root.join("fuzz"),
        &["fuzz", "build", "-s", "none"],
    ))?;
    run_all(root, TARGETS, CI_SECONDS_PER_TARGET, Mode::Ci)
}

/// What the ci step runs, for its header.
pub fn ci_description() -> String {
    format!(
        "cargo xtask fuzz --ci (in-process): cargo fuzz build -s none, then {CI_SECONDS_PER_TARGET}s \
         of cargo fuzz run -s none for each of {}, from fuzz/corpus/TARGET and \
         fuzz/regressions/TARGET into a scratch corpus",
        TARGETS.join(", ")
    )
}

/// Runs each target in turn, then prints every target's numbers together. A crash in one target
/// does not stop the others: what they would find in the same run should not stay hidden.
fn run_all(root: &Path, targets: &[&'static str], seconds: u64, mode: Mode) -> Result {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for &target in targets {
        match run_target(root, target, seconds, mode) {
            Ok(stats) => done.push((target, stats)),
            Err(err) => failed.push((target, err)),
        }
    }
    if targets.len() > 1 {
        println!("\nfuzz: {} targets, {seconds}s each", targets.len());
        for (target, stats) in &done {
            println!("fuzz: {target:<20} {}", stats.summary());
        }
        for (target, _) in &failed {
            println!("fuzz: {target:<20} FAILED");
        }
    }
    failures(failed)
}

/// One error naming every target that failed and why, with the first failure's exit code.
fn failures(failed: Vec<(&str, Error)>) -> Result {
    let mut first_code = None;
    let mut messages = Vec::new();
    for (target, err) in failed {
        let (message, code) = match err {
            Error::Failed { message, code } => (message, code),
            Error::Usage(message) => (message, 1),
        };
        first_code.get_or_insert(code);
        messages.push(format!("fuzz target `{target}` failed: {message}"));
    }
    match first_code {
        None => Ok(()),
        Some(code) => Err(Error::Failed {
            message: messages.join("\n"),
            code,
        }),
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
            "--ci" => return Err(usage("--ci takes no other arguments")),
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

/// Fuzzes `target` for `seconds` and returns libFuzzer's final numbers.
fn run_target(root: &Path, target: &str, seconds: u64, mode: Mode) -> Result<Stats> {
    let command = fuzz_command(root, target, seconds, mode)?;
    let shown = cmd::display(&command);
    println!("\n==> fuzz {target} for {seconds}s: {shown}");
    let started = Instant::now();
    let ended = watch(command, mode)
        .map_err(|err| Error::failed(format!("could not run `{shown}`: {err}")))?;
    let elapsed = started.elapsed();
    // libFuzzer also saves an input that was merely slow, and goes on: only a failed run counts.
    if let (false, Some(artifact)) = (ended.status.success(), &ended.artifact) {
        return Err(Error::failed(format!(
            "failed after {} ({}) on the input saved as {artifact}. Replay it with `cargo fuzz \
             run -s none {target} {artifact}` from fuzz/, minimize it with `cargo fuzz tmin` \
             likewise, and add the result to fuzz/regressions/{target}/",
            secs(elapsed),
            ended.status
        )));
    }
    cmd::check(&shown, ended.status)?;
    let stats = ended.stats.ok_or_else(|| {
        Error::failed(format!(
            "`{shown}` ended without libFuzzer's final `#N DONE` line"
        ))
    })?;
    println!("==> fuzz {target}: {} ({})", stats.summary(), secs(elapsed));
    Ok(stats)
}

/// `cargo fuzz run -s none TARGET CORPUS... -- -max_total_time=N`, from `fuzz/`. No sanitizer:
/// the bodies run only safe code (on MemDisk, never the mmap of `io/os.rs`), and without one the
/// build works on the stable toolchain.
fn fuzz_command(root: &Path, target: &str, seconds: u64, mode: Mode) -> Result<Command> {
    let fuzz_dir = root.join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    let mut command = cmd::cargo(&fuzz_dir, &["fuzz", "run", "-s", "none", target]);
    match mode {
        Mode::Local => {
            command.arg(&corpus);
        }
        Mode::Ci => {
            // libFuzzer writes new inputs to the first directory only.
            let scratch = fuzz_dir.join("target").join("ci-corpus").join(target);
            empty_dir(&scratch)?;
            command.arg(&scratch).arg(&corpus);
            let regressions = fuzz_dir.join("regressions").join(target);
            if regressions.is_dir() {
                command.arg(&regressions);
            }
        }
    }
    command.arg("--").arg(format!("-max_total_time={seconds}"));
    if mode == Mode::Ci {
        command.arg(format!("-timeout={CI_INPUT_SECONDS_MAX}"));
    }
    Ok(command)
}

/// Makes `dir` an empty directory.
fn empty_dir(dir: &Path) -> Result {
    let shown = dir.display();
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::failed(format!("could not empty {shown}: {err}"))),
    }
    fs::create_dir_all(dir).map_err(|err| Error::failed(format!("could not create {shown}: {err}")))
}

/// How a fuzz run ended, as read from its output.
struct Ended {
    status: ExitStatus,
    /// libFuzzer's final numbers, when it got to print them.
    stats: Option<Stats>,
    /// The input libFuzzer last saved (on a crash, a hang, running out of memory, or a slow
    /// input), as it names it.
    artifact: Option<String>,
}

/// Runs `command` with its stderr (where cargo and libFuzzer write) passed through line by line,
/// noting the final numbers and any saved input on the way. Only those two are kept, so memory
/// stays bounded however long the run.
fn watch(mut command: Command, mode: Mode) -> io::Result<Ended> {
    let mut child = command.stderr(Stdio::piped()).spawn()?;
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut out = io::stderr().lock();
    let mut stats = None;
    let mut artifact = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if stderr.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(done) = Stats::parse(&text) {
            stats = Some(done);
        }
        if let Some(path) = text.split("Test unit written to ").nth(1) {
            artifact = Some(path.trim().to_owned());
        }
        if mode == Mode::Local || !is_progress(&text) {
            out.write_all(&line)?;
        }
    }
    let status = child.wait()?;
    Ok(Ended {
        status,
        stats,
        artifact,
    })
}

/// libFuzzer's line per new or smaller input, or per periodic pulse: `#N\tNEW ...`.
fn is_progress(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let counter = words.next().is_some_and(|w| w.starts_with('#'));
    counter && matches!(words.next(), Some("NEW" | "REDUCE" | "pulse"))
}

/// libFuzzer's final numbers, from its last status line:
/// `#RUNS DONE cov: COV ft: FT corp: INPUTS/SIZE lim: L exec/s: RATE rss: MB`.
#[derive(Debug, PartialEq, Eq)]
struct Stats {
    /// Inputs executed.
    runs: u64,
    /// Executions per second over the run.
    execs_per_sec: u64,
    /// Code edges covered.
    cov: u64,
    /// Features: edges refined by hit counts and comparisons, libFuzzer's finer coverage.
    ft: u64,
    /// Inputs in the corpus at the end.
    corpus_inputs: u64,
}

impl Stats {
    fn parse(line: &str) -> Option<Stats> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let runs = words.first()?.strip_prefix('#')?.parse().ok()?;
        if words.get(1) != Some(&"DONE") {
            return None;
        }
        let field = |name: &str| -> Option<&str> {
            let at = words.iter().position(|w| *w == name)?;
            words.get(at + 1).copied()
        };
        let number = |name: &str| field(name)?.parse().ok();
        Some(Stats {
            runs,
            execs_per_sec: number("exec/s:")?,
            cov: number("cov:")?,
            ft: number("ft:")?,
            corpus_inputs: field("corp:")?.split('/').next()?.parse().ok()?,
        })
    }

    fn summary(&self) -> String {
        format!(
            "{} executions ({}/s), cov {}, ft {}, corpus {} inputs",
            self.runs, self.execs_per_sec, self.cov, self.ft, self.corpus_inputs
        )
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_line_parses() {
        let line =
            "#64619\tDONE   cov: 1664 ft: 10169 corp: 738/209Kb lim: 1024 exec/s: 1059 rss: 50Mb\n";
        let expected = Stats {
            runs: 64619,
            execs_per_sec: 1059,
            cov: 1664,
            ft: 10169,
            corpus_inputs: 738,
        };
        assert_eq!(Stats::parse(line), Some(expected));
    }

    #[test]
    fn other_lines_are_not_final() {
        let lines = [
            "#2\tINITED cov: 1 ft: 1 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#1024\tpulse  cov: 2 ft: 3 corp: 4/5b lim: 4 exec/s: 512 rss: 40Mb",
            "Done 64619 runs in 61 second(s)",
            "#5\tDONE   cov: 1 ft: 2",
            "",
        ];
        for line in lines {
            assert_eq!(Stats::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn progress_lines_are_told_apart() {
        let cases = [
            ("#1214\tNEW    cov: 1 ft: 2 corp: 3/4b lim: 4 exec/s: 0 rss: 30Mb L: 3/3 MS: 1 ChangeBit-", true),
            ("#4096\tpulse  cov: 1 ft: 2 corp: 3/4b lim: 4 exec/s: 2048 rss: 30Mb", true),
            ("#9\tREDUCE cov: 1 ft: 2 corp: 3/4b lim: 4 exec/s: 0 rss: 30Mb L: 2/3 MS: 1 EraseBytes-", true),
            ("#2\tINITED cov: 1 ft: 1 corp: 1/1b exec/s: 0 rss: 30Mb", false),
            ("#64619\tDONE   cov: 1 ft: 2 corp: 3/4b lim: 4 exec/s: 1059 rss: 50Mb", false),
            ("==1234== ERROR: libFuzzer: deadly signal", false),
            ("thread '<unnamed>' panicked at engine/src/fuzz.rs:10:5:", false),
        ];
        for (line, progress) in cases {
            assert_eq!(is_progress(line), progress, "{line:?}");
        }
    }
}
