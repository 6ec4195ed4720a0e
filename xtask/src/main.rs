//! `cargo xtask`: the repository's own tooling, in plain Rust so it needs nothing but cargo.
//!
//! Subcommands: `tidy` (source rules no compiler lint can express), `ci` (everything a change
//! must pass, in order, failing fast), `deps` (the end-to-end tests' clients), `sim` (the
//! deterministic simulator), `bench` and `fuzz`.
//! Each lives in its own module; this file only parses the command line and turns errors into
//! exit codes.

mod bench;
mod ci;
mod cmd;
mod deps;
mod fuzz;
mod sim;
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
usage: cargo xtask <command> [args...]

commands:
  tidy                    check engine/src and sim/src: no OS access outside engine/src/io/os.rs,
                          and every file starts with a //! module doc
  ci                      fmt, clippy, tidy, deps, test, fuzz (20 s a target), simulator,
                          determinism check; stops at the first failure
  deps                    install what the end-to-end tests (tests/) need when missing: kcat, Go
                          and sarama (apt, as root) and a Python venv at target/py with
                          confluent-kafka and kafka-python (pip)
  sim [ARGS...]           build keel-sim (release, --cfg madsim, target/sim) and run it with ARGS
  bench [NAME [ARGS...]]  run benchmark NAME with ARGS; without NAME, list the benchmarks
  fuzz TARGET|--all [--seconds N]
                          run libFuzzer on TARGET (batch_decode, segment_recover, index_lookup,
                          log_ops, request_decode, request_structured) or on each in turn, N
                          seconds each (default 60), from the seeds in fuzz/corpus/TARGET;
                          installs cargo-fuzz if missing. libFuzzer adds the inputs it finds to
                          that directory: commit only small seeds (seed-*), and minimized crashes
                          to fuzz/regressions/TARGET
  fuzz --ci               what ci runs: every target for 20 s, from the committed inputs into a
                          scratch corpus (fuzz/target/ci-corpus), each one's numbers on one line
  help                    print this text";

/// Why a subcommand stopped before succeeding.
pub enum Error {
    /// The command line was wrong: print the message and the help text, exit 2.
    Usage(String),
    /// A check or a child process failed: print the message, exit with `code`.
    Failed { message: String, code: u8 },
}

impl Error {
    /// A failure that exits 1, for checks that have no child exit code to pass on.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            code: 1,
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(message)) => {
            eprintln!("xtask: {message}\n\n{HELP}");
            ExitCode::from(2)
        }
        Err(Error::Failed { message, code }) => {
            eprintln!("xtask: {message}");
            ExitCode::from(code)
        }
    }
}

fn dispatch(args: &[String]) -> Result {
    let Some((command, rest)) = args.split_first() else {
        return Err(Error::Usage("missing command".into()));
    };
    match command.as_str() {
        "tidy" => no_args("tidy", rest).and_then(|()| tidy::run(&repo_root())),
        "ci" => no_args("ci", rest).and_then(|()| ci::run(&repo_root())),
        "deps" => no_args("deps", rest).and_then(|()| deps::run(&repo_root())),
        "sim" => sim::run(&repo_root(), rest),
        "bench" => bench::run(&repo_root(), rest),
        "fuzz" => fuzz::run(&repo_root(), rest),
        "help" | "-h" | "--help" => {
            println!("{HELP}");
            Ok(())
        }
        other => Err(Error::Usage(format!("unknown command `{other}`"))),
    }
}

fn no_args(command: &str, rest: &[String]) -> Result {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(Error::Usage(format!(
            "`{command}` takes no arguments, got `{arg}`"
        ))),
    }
}

/// The workspace root, found from where this crate was compiled rather than from the current
/// directory, so `cargo xtask` behaves the same from any subdirectory.
fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask/ sits inside the workspace root")
        .to_path_buf()
}
