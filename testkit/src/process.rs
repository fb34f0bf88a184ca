//! One harness for the binaries under test: started with stderr to a log file, asked where
//! they listen, stopped with SIGTERM or SIGKILL, and killed when dropped so a failing test
//! leaves nothing running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::net;

/// A running child process with its log.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    log: PathBuf,
    name: String,
}

impl Process {
    /// Spawns `command` with stdout discarded and stderr appended to `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            child: Some(child),
            log: log.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits until it logs a "listening" line beyond the first `seen` ones and returns that
    /// address; panics with the log if it exits or `within` passes first.
    pub fn listening(&mut self, seen: usize, within: Duration) -> SocketAddr {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if net::listening_count(&log) > seen {
                if let Some(addr) = net::listening_address(&log) {
                    return addr;
                }
            }
            if let Some(status) = self.exited() {
                panic!("{} exited with {status}:\n{log}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not report listening within {within:?}:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) by the `kill` command.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status()
                .expect("running kill");
        }
    }

    /// SIGTERM, then waits up to `within` for the exit; SIGKILL and panic after that.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = child.try_wait().ok().flatten() {
                return Some(s);
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("{} did not stop on SIGTERM within {within:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
