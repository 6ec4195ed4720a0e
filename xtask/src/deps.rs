//! `cargo xtask deps`: installs what the end-to-end tests (tests/, package keel-tests) need and
//! the machine lacks, saying on one line what it installs, and otherwise only that it is present:
//!
//! - `kcat`, from apt (`apt-get install -y kcat`; `apt-get update` first only when that install
//!   fails, since the package lists are usually fresh enough). Installing needs root, which CI
//!   has; as another user a missing kcat is an error that says what to run.
//! - Go and sarama 1.22, from apt (`golang-go`, `golang-github-shopify-sarama-dev`, the same
//!   way as kcat): the harness builds tests/go/ in GOPATH mode against /usr/share/gocode, where
//!   Debian puts sarama's sources.
//! - a Python venv at target/py holding `confluent-kafka` and `kafka-python` from PyPI, made with
//!   `python3 -m venv` and its own pip. It is left alone when it already imports both. Debian
//!   ships venv support separately (`python3-venv`); when `python3 -m venv` fails as root, that
//!   package is installed and the venv made again.
//!
//! `cargo xtask ci` runs this before its `test` step, so the end-to-end tests never meet a machine
//! without their clients; the tests themselves fail (never skip) when something is missing.

use crate::{Error, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// The venv the end-to-end tests run their Python clients with, relative to the workspace root.
pub const VENV: &str = "target/py";

/// The PyPI packages the end-to-end tests' scripts (tests/py/) import.
const PIP_PACKAGES: &[&str] = &["confluent-kafka", "kafka-python"];

/// The import line that proves the venv is usable.
const IMPORT_CHECK: &str = "import confluent_kafka, kafka";

/// Installs whatever is missing; a no-op (two quick checks) when everything is there.
pub fn run(root: &Path) -> Result {
    ensure_kcat()?;
    ensure_sarama()?;
    ensure_venv(root)?;
    Ok(())
}

fn ensure_kcat() -> Result {
    if let Some(version) = kcat_version() {
        println!("deps: kcat present: {version}");
        return Ok(());
    }
    if !is_root() {
        return Err(Error::failed(
            "kcat is missing and installing it needs root: run `sudo apt-get install -y kcat`, \
             then `cargo xtask deps` again",
        ));
    }
    println!("deps: installing kcat (apt-get install -y kcat)");
    apt_install(&["kcat"])?;
    match kcat_version() {
        Some(version) => {
            println!("deps: kcat installed: {version}");
            Ok(())
        }
        None => Err(Error::failed(
            "`apt-get install -y kcat` succeeded but `kcat -V` still does not run",
        )),
    }
}

/// The Debian packages the Go clients in tests/go/ build with.
const GO_PACKAGES: &[&str] = &["golang-go", "golang-github-shopify-sarama-dev"];

/// Where golang-github-shopify-sarama-dev puts sarama (GOPATH /usr/share/gocode).
const SARAMA_SOURCE: &str = "/usr/share/gocode/src/github.com/Shopify/sarama";

fn ensure_sarama() -> Result {
    if let Some(version) = go_version().filter(|_| Path::new(SARAMA_SOURCE).is_dir()) {
        println!("deps: go and sarama present: {version}, {SARAMA_SOURCE}");
        return Ok(());
    }
    let packages = GO_PACKAGES.join(" ");
    if !is_root() {
        return Err(Error::failed(format!(
            "go or sarama is missing and installing them needs root: run \
             `sudo apt-get install -y {packages}`, then `cargo xtask deps` again"
        )));
    }
    println!("deps: installing go and sarama (apt-get install -y {packages})");
    apt_install(GO_PACKAGES)?;
    match go_version().filter(|_| Path::new(SARAMA_SOURCE).is_dir()) {
        Some(version) => {
            println!("deps: go and sarama installed: {version}, {SARAMA_SOURCE}");
            Ok(())
        }
        None => Err(Error::failed(format!(
            "`apt-get install -y {packages}` succeeded but `go version` does not run or \
             {SARAMA_SOURCE} is missing"
        ))),
    }
}

/// What `program arg` prints, or `None` when it cannot be run or fails.
fn stdout_of(program: &str, arg: &str) -> Option<String> {
    let output = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What `go version` prints ("go version go1.19.8 linux/amd64" → "go1.19.8"), or `None` when
/// go cannot be run.
fn go_version() -> Option<String> {
    let text = stdout_of("go", "version")?;
    Some(
        text.split_whitespace()
            .nth(2)
            .unwrap_or("go (version unknown)")
            .to_owned(),
    )
}

/// The version from `kcat -V` (its `Version ...` line, up to the feature list), or `None` when
/// kcat cannot be run.
fn kcat_version() -> Option<String> {
    let text = stdout_of("kcat", "-V")?;
    let Some(line) = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Version "))
    else {
        return Some("kcat (version unknown)".into());
    };
    // "1.7.1 (JSON, ..., librdkafka 2.0.2 builtin.features=gzip,...)": drop the feature list.
    Some(match line.split_once(" builtin.features") {
        Some((head, _)) => format!("kcat {head})"),
        None => format!("kcat {line}"),
    })
}

/// `apt-get install -y PACKAGES`, and when that fails, `apt-get update` and the install again.
fn apt_install(packages: &[&str]) -> Result {
    let install = || {
        let mut command = apt_get(&["install", "-y"]);
        command.args(packages);
        command
    };
    if run_quietly_on_success(install()).is_ok() {
        return Ok(());
    }
    println!(
        "deps: `apt-get install -y {}` failed; running `apt-get update` and retrying",
        packages.join(" ")
    );
    run_inherited(apt_get(&["update"]))?;
    run_inherited(install())
}

fn apt_get(args: &[&str]) -> Command {
    let mut command = Command::new("apt-get");
    command
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    command
}

fn ensure_venv(root: &Path) -> Result {
    let venv = root.join(VENV);
    let python = venv.join("bin/python");
    if imports_clients(&python) {
        println!("deps: {VENV} present (imports confluent_kafka and kafka)");
        return Ok(());
    }
    println!(
        "deps: installing a Python venv at {VENV} with {} (python3 -m venv {VENV} && {VENV}/bin/pip install {})",
        PIP_PACKAGES.join(" and "),
        PIP_PACKAGES.join(" ")
    );
    if !python.exists() {
        make_venv(&venv)?;
    }
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.arg("install")
        .arg("--disable-pip-version-check")
        .args(PIP_PACKAGES)
        .stdin(Stdio::null());
    run_inherited(pip)?;
    if imports_clients(&python) {
        println!("deps: {VENV} ready");
        Ok(())
    } else {
        Err(Error::failed(format!(
            "pip installed {} but `{} -c \"{IMPORT_CHECK}\"` still fails",
            PIP_PACKAGES.join(" "),
            python.display()
        )))
    }
}

fn make_venv(venv: &Path) -> Result {
    let venv_command = || {
        let mut command = Command::new("python3");
        command.args(["-m", "venv"]).arg(venv).stdin(Stdio::null());
        command
    };
    if run_quietly_on_success(venv_command()).is_ok() {
        return Ok(());
    }
    if !is_root() {
        return Err(Error::failed(format!(
            "`python3 -m venv {}` failed; on Debian it needs the python3-venv package \
             (`sudo apt-get install -y python3-venv`), then run `cargo xtask deps` again",
            venv.display()
        )));
    }
    println!(
        "deps: `python3 -m venv` failed; installing python3-venv (apt-get install -y python3-venv)"
    );
    apt_install(&["python3-venv"])?;
    // A failed attempt can leave a venv without pip behind; --clear starts it over.
    let mut again = venv_command();
    again.arg("--clear");
    run_inherited(again)
}

/// Whether `python` exists and imports both client libraries.
fn imports_clients(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", IMPORT_CHECK])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// Whether this process runs as root (`id -u` prints 0); std has no getuid.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

/// Runs `command` with its output captured, printing that output only when it fails, for
/// attempts whose failure has a fallback (the fallback's own output is what matters).
fn run_quietly_on_success(mut command: Command) -> Result {
    let shown = display(&command);
    let output = command
        .output()
        .map_err(|err| Error::failed(format!("could not start `{shown}`: {err}")))?;
    if output.status.success() {
        return Ok(());
    }
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    Err(Error::failed(format!(
        "`{shown}` failed ({})",
        output.status
    )))
}

/// Runs `command` with its output inherited; a failure names the command line.
fn run_inherited(mut command: Command) -> Result {
    let shown = display(&command);
    let status = command
        .status()
        .map_err(|err| Error::failed(format!("could not start `{shown}`: {err}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::failed(format!("`{shown}` failed ({status})")))
    }
}

/// A command line as a person would type it (cmd::display assumes cargo).
fn display(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
