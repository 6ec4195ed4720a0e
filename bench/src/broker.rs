//! The keel broker under test: started as a child process on a free loopback port with a fresh
//! data directory, and stopped (SIGTERM, then SIGKILL) when the guard drops, so that no error
//! path of the benchmark leaves a broker running.

use nix::sys::signal::{kill, Signal};
use nix::unistd::{sysconf, Pid, SysconfVar};
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A running broker; dropping it stops the process.
pub struct Broker {
    child: Child,
    pub address: String,
    pub data_dir: PathBuf,
}

impl Broker {
    /// Starts `keel serve` on a free port with an emptied `data_dir`, and waits until it accepts
    /// connections. Its output goes to `data_dir`/../keel.log, outside the data directory so that
    /// keel does not mistake it for a topic.
    pub fn start(keel: &Path, data_dir: &Path) -> Self {
        if data_dir.exists() {
            fs::remove_dir_all(data_dir)
                .unwrap_or_else(|err| panic!("removing {}: {err}", data_dir.display()));
        }
        fs::create_dir_all(data_dir)
            .unwrap_or_else(|err| panic!("creating {}: {err}", data_dir.display()));
        let log_path = data_dir.with_extension("log");
        let log = File::create(&log_path)
            .unwrap_or_else(|err| panic!("creating {}: {err}", log_path.display()));
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(keel)
            .args(["serve", "--listen", &address, "--data-dir"])
            .arg(data_dir)
            // Any free port: a broker already on the default one must not stop the benchmark.
            .args(["--set", "metrics.listen=127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the broker log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", keel.display()));
        let broker = Broker {
            child,
            address,
            data_dir: data_dir.to_path_buf(),
        };
        broker.wait_ready(&log_path);
        broker
    }

    /// Polls the port: keel binds before it serves, so an accepted connection means ready.
    fn wait_ready(&self, log_path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "keel did not listen on {} within 20 s (see {})",
                self.address,
                log_path.display()
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// The broker's CPU time so far (user + system), from /proc/PID/stat.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        // SIGTERM first so keel flushes and exits cleanly; SIGKILL if it has not within 10 s.
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        eprintln!("keel did not stop within 10 s of SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the kernel just handed out. Racy in principle (it is free again once the listener
/// drops), but nothing else on a bench machine is grabbing loopback ports in that window.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener
        .local_addr()
        .expect("ephemeral port address")
        .port()
}

/// utime + stime of a process, in seconds. Fields 14 and 15 of /proc/PID/stat, counted after the
/// parenthesised command name, which may itself contain spaces.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let after_name = &stat[stat.rfind(')').expect("/proc stat has a (comm)") + 2..];
    // after_name starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .expect("sysconf(CLK_TCK)") as f64
}
