//! The end-to-end harness: real `keel serve` processes on 127.0.0.1, driven by real Kafka clients
//! (kcat, confluent-kafka and kafka-python from Python, sarama from Go).
//!
//! # Finding the keel binary
//!
//! Cargo builds a binary for a test only when the binary belongs to the test's own package
//! (`CARGO_BIN_EXE_<name>`); keel's `keel` binary belongs to package `keel`, and depending on that
//! package builds its library, never its binaries. So the harness builds the binary itself, once
//! per test process, with `cargo build -p keel --bin keel` into the target directory and profile
//! the running test was built in (both read off the test executable's path,
//! `<target>/<profile>/deps/<test>-<hash>`). It always asks cargo rather than comparing file times:
//! cargo's fingerprints are the exact answer to "is the binary older than the engine sources",
//! an up-to-date build costs a fraction of a second, and cargo's own lock on the target directory
//! serializes test processes that build at the same moment. Within a process a `OnceLock` makes
//! the build happen once, whatever number of tests run in parallel. `cargo test` releases its lock
//! on the target directory before it runs the tests, so the nested build does not wait for it.
//! Set `KEEL_BIN` to test a binary built elsewhere; then nothing is built.
//!
//! # Brokers
//!
//! [`Broker::start`] runs `keel serve` on a free port (bind port 0, read the port, close it, hand
//! it to keel; another free port when keel then finds it taken) with a fresh data directory under
//! `<target>/tmp/keel-tests/`, waits (bounded) until keel logs that it serves and the port accepts
//! connections, and on drop stops it with SIGTERM. Dropping also checks the broker's exit: a
//! broker that does not exit 0 within [`STOP_TIMEOUT`] or logged an ERROR fails the test. Keel's
//! log (stderr, `RUST_LOG=info,keel=debug` unless `KEEL_TEST_LOG` says otherwise) goes to a file
//! beside the data directory; when a test fails, the drop prints its tail and keeps the directory.
//!
//! # Clients
//!
//! [`python`] runs a script from tests/py/ with the venv at target/py, [`kcat`] runs kcat, [`go`]
//! runs a Go program from tests/go/ (built once per process into `<target>/go/`, against the Go
//! packages Debian installs under /usr/share/gocode, sarama among them); all with a timeout, and
//! all fail the test when the client fails. Nothing is skipped: a missing client fails with a
//! message saying to run `cargo xtask deps`, which installs them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long keel may take from spawn to accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long keel may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one Python client run may take before it is killed and the test fails.
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one kcat run may take before it is killed and the test fails.
pub const KCAT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one Go client run may take before it is killed and the test fails.
pub const GO_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the harness waits for `go build` of one program in tests/go/.
const GO_BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Where Debian's Go library packages (golang-github-shopify-sarama-dev) put their sources: the
/// Go programs in tests/go/ build in GOPATH mode against exactly those.
const GOPATH: &str = "/usr/share/gocode";
/// How long the harness waits for `cargo build -p keel --bin keel`.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// Attempts at finding a port nobody takes between our probe and keel's bind.
const PORT_ATTEMPTS: u32 = 8;

const DEPS_HINT: &str = "run `cargo xtask deps` to install the end-to-end tests' clients";

/// The workspace root (this crate sits in tests/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace root")
        .to_path_buf()
}

/// The target directory and profile directory the running test executable was built into.
fn build_dirs() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in <target>/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .expect("a profile directory sits in the target directory")
        .to_path_buf();
    (target_dir, profile_dir)
}

/// The keel binary, built (or confirmed up to date) once per process. Panics when it cannot be.
pub fn keel_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_keel) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

fn build_keel() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("KEEL_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("KEEL_BIN={} is not a file", bin.display()))
        };
    }
    let (target_dir, profile_dir) = build_dirs();
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(name) => name.to_string(),
        None => return Err(format!("no profile in {}", profile_dir.display())),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args([
            "build",
            "-p",
            "keel",
            "--bin",
            "keel",
            "--profile",
            &profile,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    let shown = format!(
        "cargo build -p keel --bin keel --profile {profile} --target-dir {}",
        target_dir.display()
    );
    let run = run_bounded(command, None, BUILD_TIMEOUT)
        .map_err(|message| format!("`{shown}`: {message}"))?;
    if !run.status.success() {
        return Err(format!(
            "`{shown}` failed ({}):\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    let bin = profile_dir.join("keel");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "`{shown}` succeeded but {} is missing",
            bin.display()
        ))
    }
}

/// What a bounded child process run produced.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

/// Runs `command` with `stdin` fed to it and its output collected, killing it after `timeout`.
/// Errors when it cannot start or times out (with what it printed so far).
pub fn run_bounded(
    mut command: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Run, String> {
    let started = Instant::now();
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|err| format!("could not start: {err}"))?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => Some(thread::spawn(move || {
            // A child that exits without reading all of it is its own failure, seen by status.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let out = stdout.join().unwrap_or_default();
                let err = stderr.join().unwrap_or_default();
                return Err(format!(
                    "timed out after {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(err) => return Err(format!("waiting for it: {err}")),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(Run {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    })
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The venv's python, checked once to import both client libraries.
fn python_bin() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let checked = PYTHON.get_or_init(|| {
        let python = match std::env::var_os("KEEL_PYTHON") {
            Some(path) => PathBuf::from(path),
            None => repo_root().join("target/py/bin/python"),
        };
        if !python.exists() {
            return Err(format!("{} does not exist: {DEPS_HINT}", python.display()));
        }
        let mut command = Command::new(&python);
        command.args(["-c", "import confluent_kafka, kafka"]);
        match run_bounded(command, None, Duration::from_secs(60)) {
            Ok(run) if run.status.success() => Ok(python),
            Ok(run) => Err(format!(
                "{} cannot import confluent_kafka and kafka ({}): {}\n{DEPS_HINT}",
                python.display(),
                run.status,
                String::from_utf8_lossy(&run.stderr)
            )),
            Err(message) => Err(format!("{}: {message}\n{DEPS_HINT}", python.display())),
        }
    });
    match checked {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// Runs tests/py/`script` with `args` in the venv at target/py and returns its stdout. Fails the
/// test when the script exits non-zero or runs longer than [`PYTHON_TIMEOUT`], showing all it
/// printed. Its output is printed (and so shown by the test harness when the test fails).
pub fn python(script: &str, args: &[&str]) -> String {
    let path = repo_root().join("tests/py").join(script);
    assert!(path.is_file(), "{} is missing", path.display());
    let mut command = Command::new(python_bin());
    command
        .arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let shown = format!("python tests/py/{script} {}", args.join(" "));
    run_client(command, &shown, PYTHON_TIMEOUT)
}

/// Runs a client (`shown` as the command line), bounded by `timeout`, prints what it printed,
/// and returns its stdout; fails the test when it fails or runs too long.
fn run_client(command: Command, shown: &str, timeout: Duration) -> String {
    let run = match run_bounded(command, None, timeout) {
        Ok(run) => run,
        Err(message) => panic!("`{shown}`: {message}"),
    };
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!(
        "$ {shown}  ({:.1}s, {})\n{stdout}{stderr}",
        run.elapsed.as_secs_f64(),
        run.status
    );
    assert!(
        run.status.success(),
        "`{shown}` failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        run.status
    );
    stdout
}

/// [`python`] in a thread, so a test can crash and restart the broker while the script runs.
/// Join the handle to get its stdout; a failure of the script is a panic there.
pub fn python_background(script: &str, args: &[&str]) -> thread::JoinHandle<String> {
    let script = script.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python(&script, &args)
    })
}

/// kcat, checked once to run.
fn kcat_bin() -> &'static str {
    static KCAT: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = KCAT.get_or_init(|| {
        let mut command = Command::new("kcat");
        command.arg("-V");
        match run_bounded(command, None, Duration::from_secs(30)) {
            Ok(run) if run.status.success() => Ok(()),
            Ok(run) => Err(format!("`kcat -V` failed ({}): {DEPS_HINT}", run.status)),
            Err(message) => Err(format!("kcat: {message}; {DEPS_HINT}")),
        }
    });
    if let Err(message) = checked {
        panic!("{message}");
    }
    "kcat"
}

/// Runs `kcat ARGS` with `stdin`, returning its stdout; fails the test when kcat exits non-zero
/// or runs longer than [`KCAT_TIMEOUT`].
pub fn kcat(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut command = Command::new(kcat_bin());
    command.args(args);
    let shown = format!("kcat {}", args.join(" "));
    let run = match run_bounded(command, stdin.map(<[u8]>::to_vec), KCAT_TIMEOUT) {
        Ok(run) => run,
        Err(message) => panic!("`{shown}`: {message}"),
    };
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!(
        "$ {shown}  ({:.1}s, {}, {} bytes out)\n{stderr}",
        run.elapsed.as_secs_f64(),
        run.status,
        run.stdout.len()
    );
    assert!(
        run.status.success(),
        "`{shown}` failed ({}):\n--- stdout\n{}--- stderr\n{stderr}",
        run.status,
        String::from_utf8_lossy(&run.stdout)
    );
    run.stdout
}

/// The program built from tests/go/`name`/, once per process per program, at
/// `<target>/go/<name>`. `go build` decides what is stale (its cache makes an up-to-date build
/// cost a fraction of a second), as cargo does for keel. Panics when it cannot be built.
fn go_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = built
        .entry(name.to_owned())
        .or_insert_with(|| build_go(name));
    match result {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn build_go(name: &str) -> Result<PathBuf, String> {
    let source = repo_root().join("tests/go").join(name);
    if !source.is_dir() {
        return Err(format!("{} is missing", source.display()));
    }
    let (target_dir, _) = build_dirs();
    let bin = target_dir.join("go").join(name);
    let mut command = Command::new("go");
    command
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".");
    let shown = format!(
        "GO111MODULE=off GOPATH={GOPATH} go build -o {} . (in tests/go/{name})",
        bin.display()
    );
    let run = run_bounded(command, None, GO_BUILD_TIMEOUT)
        .map_err(|message| format!("`{shown}`: {message}; {DEPS_HINT}"))?;
    if !run.status.success() {
        return Err(format!(
            "`{shown}` failed ({}):\n{}\n{DEPS_HINT}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    Ok(bin)
}

/// Runs the Go program tests/go/`program` with `args` and returns its stdout; fails the test
/// when it cannot be built, exits non-zero, or runs longer than [`GO_TIMEOUT`], showing all it
/// printed.
pub fn go(program: &str, args: &[&str]) -> String {
    let mut command = Command::new(go_bin(program));
    command.args(args);
    let shown = format!("tests/go/{program} {}", args.join(" "));
    run_client(command, &shown, GO_TIMEOUT)
}

/// Milliseconds since the epoch, for explicit record timestamps close to now (so that retention
/// never has a reason to touch them).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis()
        .try_into()
        .expect("milliseconds fit i64")
}

/// A name unique to this test run: `prefix` plus the process id and a counter.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory for one broker: `<target>/tmp/keel-tests/<test name>-<pid>-<n>`.
fn scratch_dir() -> PathBuf {
    let (target_dir, _) = build_dirs();
    let test = thread::current()
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>();
    let dir = target_dir.join("tmp/keel-tests").join(unique_name(&test));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("removing a stale scratch directory");
    }
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}

/// A port that was free a moment ago (nothing reserves it until keel binds it).
pub fn probably_free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("the bound address").port()
}

/// One `keel serve` process, its port, data directory and log. See the crate docs.
pub struct Broker {
    scratch: PathBuf,
    port: u16,
    settings: Vec<String>,
    child: Option<Child>,
    starts: u32,
}

/// Why one attempt at starting keel failed.
enum StartError {
    /// The port was taken between the probe and keel's bind: another port may do.
    PortTaken(String),
    Other(String),
}

impl Broker {
    /// Starts a broker with `settings` (Kafka names, `NAME=VALUE`, passed as `--set`) on a free
    /// port and a fresh data directory; returns once it accepts connections.
    pub fn start(settings: &[&str]) -> Broker {
        let mut broker = Broker {
            scratch: scratch_dir(),
            port: 0,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            child: None,
            starts: 0,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            broker.port = probably_free_port();
            match broker.spawn() {
                Ok(()) => return broker,
                Err(StartError::PortTaken(message)) => last = message,
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
        panic!("no free port after {PORT_ATTEMPTS} attempts; last: {last}");
    }

    /// `127.0.0.1:PORT`, for bootstrap.servers.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's data directory (log.dirs).
    pub fn data_dir(&self) -> PathBuf {
        self.scratch.join("data")
    }

    /// The directory of one partition's log: `<data dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    /// A path in this broker's scratch directory (beside the data directory) for a test's own
    /// files; removed with the rest when the test passes.
    pub fn scratch_file(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    fn log_path(&self) -> PathBuf {
        self.scratch.join("keel.log")
    }

    /// Everything keel logged so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The running process's id. Panics when the broker is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is running").id()
    }

    /// One attempt at spawning keel on `self.port` and waiting until it serves.
    fn spawn(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "spawn with a broker still running");
        self.starts += 1;
        let log_path = self.log_path();
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening the broker log");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        writeln!(
            log,
            "=== keel-tests: start #{} on {}",
            self.starts,
            self.address()
        )
        .expect("writing the broker log");
        let mut command = Command::new(keel_bin());
        command
            .arg("serve")
            .arg("--listen")
            .arg(self.address())
            .arg("--data-dir")
            .arg(self.data_dir());
        // Tests run in parallel: the metrics endpoint takes a port the OS picks (its address
        // is in the log) unless a test chooses one.
        if !self
            .settings
            .iter()
            .any(|s| s.starts_with("metrics.listen="))
        {
            command.arg("--set").arg("metrics.listen=127.0.0.1:0");
        }
        for setting in &self.settings {
            command.arg("--set").arg(setting);
        }
        let filter =
            std::env::var("KEEL_TEST_LOG").unwrap_or_else(|_| "info,keel=debug".to_string());
        command
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("cloning the log file")))
            .stderr(Stdio::from(log));
        let child = command.spawn().map_err(|err| {
            StartError::Other(format!("starting {}: {err}", keel_bin().display()))
        })?;
        self.child = Some(child);
        let log_path = self.log_path();
        let this_run = || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            text.get(log_start as usize..).unwrap_or("").to_string()
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let address: SocketAddr = self.address().parse().expect("a socket address");
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("just spawned")
                .try_wait()
                .expect("waiting for keel");
            if let Some(status) = exited {
                self.child = None;
                let output = this_run();
                let message = format!(
                    "keel serve on {} exited ({status}) before serving:\n{output}",
                    self.address()
                );
                return Err(if output.contains("Address already in use") {
                    StartError::PortTaken(message)
                } else {
                    StartError::Other(message)
                });
            }
            // Our keel says it serves, and the port accepts: it is ours (a port taken by another
            // process would have made keel exit above).
            if this_run().contains("keel is serving")
                && TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill9_quietly();
                return Err(StartError::Other(format!(
                    "keel serve on {} did not serve within {START_TIMEOUT:?}:\n{}",
                    self.address(),
                    this_run()
                )));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the broker with SIGKILL (a process crash: the page cache survives) and reaps it.
    pub fn kill9(&mut self) {
        let status = self.kill9_quietly().expect("the broker is running");
        println!("keel killed with SIGKILL ({status})");
    }

    fn kill9_quietly(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Sends SIGTERM and waits up to [`STOP_TIMEOUT`] for the broker to exit, returning how it
    /// exited; `Err` (after a SIGKILL) when it did not exit in time.
    pub fn try_stop(&mut self) -> Result<ExitStatus, String> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| "the broker is not running".to_string())?;
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if !matches!(sent, Ok(status) if status.success()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`kill -TERM {}` failed: {sent:?}", child.id()));
        }
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    println!(
                        "keel stopped with SIGTERM in {:.2}s ({status})",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(status);
                }
                Ok(None) if started.elapsed() >= STOP_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "keel did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed with SIGKILL"
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(err) => return Err(format!("waiting for keel: {err}")),
            }
        }
    }

    /// [`Broker::try_stop`], failing the test unless the broker exits 0 in time.
    pub fn stop(&mut self) -> ExitStatus {
        match self.try_stop() {
            Ok(status) if status.success() => status,
            Ok(status) => panic!(
                "keel exited with {status} after SIGTERM; log:\n{}",
                self.log()
            ),
            Err(message) => panic!("{message}; log:\n{}", self.log()),
        }
    }

    /// Starts the broker again on the same port and data directory, stopping it first (SIGTERM,
    /// as [`Broker::stop`]) if it still runs.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        // The port was ours a moment ago; someone may grab it in between, so try a few times.
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match self.spawn() {
                Ok(()) => return,
                Err(StartError::PortTaken(message)) => {
                    last = message;
                    thread::sleep(Duration::from_millis(250));
                }
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
        panic!("restart: port {} stayed taken: {last}", self.port);
    }

    /// The last `lines` lines of the log.
    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let stopped = if self.child.is_some() {
            Some(self.try_stop())
        } else {
            None
        };
        if thread::panicking() {
            eprintln!(
                "keel-tests: kept {} for inspection; keel log tail:\n{}",
                self.scratch.display(),
                self.log_tail(80)
            );
            return;
        }
        let mut problems = Vec::new();
        match stopped {
            Some(Ok(status)) if !status.success() => {
                problems.push(format!("keel exited with {status} after SIGTERM"));
            }
            Some(Err(message)) => problems.push(message),
            _ => {}
        }
        let errors: Vec<String> = self
            .log()
            .lines()
            .filter(|line| line.contains(" ERROR "))
            .map(str::to_string)
            .collect();
        if !errors.is_empty() {
            problems.push(format!("keel logged errors:\n{}", errors.join("\n")));
        }
        if problems.is_empty() {
            let _ = std::fs::remove_dir_all(&self.scratch);
        } else {
            panic!(
                "{}\n(kept {}; log tail:\n{})",
                problems.join("\n"),
                self.scratch.display(),
                self.log_tail(80)
            );
        }
    }
}
