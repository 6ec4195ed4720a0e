//! The `keel` binary: the only place that wires the engine to real IO (`OsDisk`, the system
//! clock).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keel::io::os::OsDisk;
use keel::log::dump;

/// keel: a Kafka-compatible message broker whose storage engine is tested under a fault-injecting
/// simulator.
#[derive(Parser)]
#[command(name = "keel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the batches of a segment `.log` file (or the entries of a `.index` / `.timeindex`),
    /// with their offsets, timestamps, codec, record count and whether their CRC is valid, like
    /// kafka-dump-log.
    DumpLog {
        /// Segment files to print.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Verify a data directory (or one partition's directory) offline: every batch's CRC and
    /// records, offset order within and across segments, and every index entry. Exits 1 when
    /// anything is damaged, naming the file and position.
    Check {
        /// The data directory, or a partition directory inside it.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DumpLog { files } => dump_log(&files),
        Command::Check { dir } => check(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keel: {e}");
            ExitCode::from(2)
        }
    }
}

fn dump_log(files: &[PathBuf]) -> std::io::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut damaged = false;
    for file in files {
        let summary = dump::dump_file(&OsDisk, file, &mut out)?;
        damaged |= summary.invalid_batches > 0 || summary.stopped.is_some();
    }
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(dir: &std::path::Path) -> std::io::Result<ExitCode> {
    let report = dump::check_dir(&OsDisk, dir)?;
    for problem in &report.problems {
        println!(
            "{}: position {}: {}",
            problem.path.display(),
            problem.position,
            problem.reason
        );
    }
    println!(
        "checked {} logs, {} segments, {} batches, {} records: {} problems",
        report.logs,
        report.segments,
        report.batches,
        report.records,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
