//! One harness for the binaries under test, and for the outside programs the end-to-end tests
//! run beside them: started with stdout and stderr to a log file, asked where they listen,
//! stopped with SIGTERM (then SIGKILL) or killed at once, and stopped when dropped so a failing
//! test leaves nothing running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::net;

/// How long a process stopped by [`Process::stop`] (or by drop) may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A running child process with its log.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    log: PathBuf,
    name: String,
}

impl Process {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            child: Some(child),
            log: log.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Runs `program args…` in `dir` with `env` added (and `RUST_LOG=info`), logging to
    /// `dir/<name>.log`: how the end-to-end tests start a binary in its own folder.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Self::start(name, command, &dir.join(format!("{name}.log")))
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

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
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

    /// Sends `signal` (`TERM`, `INT`, `HUP`, `STOP`, `CONT`, ...) by the `kill` command.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            send_signal(pid, signal);
        }
    }

    /// SIGTERM, then waits up to 20 s for the exit status, and SIGKILL after that.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with("TERM")
    }

    /// Sends `signal` and waits for the exit status as [`stop`](Self::stop) does.
    pub fn stop_with(&mut self, signal: &str) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        send_signal(child.id(), signal);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return Some(status);
            }
            if Instant::now() > deadline {
                eprintln!("{} ignored SIG{signal}; killing it", self.name);
                child.kill().ok();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(25));
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
                panic!(
                    "{} did not stop on SIGTERM within {within:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

/// `kill -SIGNAL pid`; never pid 0, which would signal the test's own process group.
fn send_signal(pid: u32, signal: &str) {
    if pid != 0 {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok();
    }
}

impl Drop for Process {
    /// Stopped gracefully, so a script it runs (the quickstart) can stop its own children; a
    /// process paused with SIGSTOP is woken first so it can hear the SIGTERM.
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("CONT");
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_the_log_and_stop_reports_the_exit() {
        let dir = crate::temp_dir();
        let mut p = Process::spawn(
            "echo",
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; echo $RUST_LOG"],
            dir.path(),
            &[],
        );
        crate::wait_until(Duration::from_secs(30), "sh exits", || p.exited());
        let log = p.log();
        assert!(
            log.contains("out") && log.contains("err") && log.contains("info"),
            "{log}"
        );
        assert!(p.stop().expect("status").success());
    }

    #[test]
    fn stop_ends_a_process_that_waits_for_a_signal() {
        let dir = crate::temp_dir();
        let mut p = Process::spawn("sleep", Path::new("sleep"), &["600"], dir.path(), &[]);
        assert!(p.running());
        let status = p.stop().expect("status");
        assert!(!status.success(), "sleep was ended by SIGTERM");
        assert!(p.pid().is_none());
    }
}
