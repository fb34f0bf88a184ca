//! The collector harness: runs the real `aims-collector` binary on a loopback port it binds
//! itself (port 0), in a temporary folder, and talks to it over blocking HTTP.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use aims_core::wire::SummaryEnvelope;
use aims_core::ReferenceProfile;
use serde_json::Value;

use crate::fixtures::{MODEL, OBJECTIVES};
use crate::process::Process;
use crate::wait_until;

/// A running collector; killed when dropped.
pub struct Collector {
    /// The binary (`env!("CARGO_BIN_EXE_aims-collector")` in the collector's tests).
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The port it listens on: bound by the collector itself on port 0, read from its log.
    pub port: u16,
    pub process: Option<Process>,
    pub tls: bool,
    pub extra_env: Vec<(String, String)>,
    /// The PostgreSQL database [`Collector::prepare`] created under `AIMS_TEST_BACKEND=postgres`,
    /// dropped after the process is killed.
    pub database: Option<crate::postgres::TestDatabase>,
}

impl Collector {
    /// Writes a config (with `extra` appended to its sections) and the objectives into `dir`.
    /// With `AIMS_TEST_BACKEND=postgres` it stores in a fresh PostgreSQL database
    /// ([`crate::postgres::suite_database`]); otherwise in SQLite under `dir`.
    pub fn prepare(bin: &str, dir: &Path, extra: &str) -> Self {
        let database = crate::postgres::suite_database();
        let storage = database.as_ref().map_or_else(String::new, |db| {
            format!(
                "backend = \"postgres\"\nurl = \"{}\"\nlock_timeout = \"2s\"\n",
                db.url()
            )
        });
        let mut c = Self::prepare_with(bin, dir, &storage, extra);
        c.database = database;
        c
    }

    /// [`Collector::prepare`] on SQLite whatever `AIMS_TEST_BACKEND` says (tests that open the
    /// SQLite file themselves).
    pub fn prepare_sqlite(bin: &str, dir: &Path, extra: &str) -> Self {
        Self::prepare_with(bin, dir, "", extra)
    }

    /// [`Collector::prepare`] with `storage` (TOML lines) added to the `[storage]` section.
    pub fn prepare_with(bin: &str, dir: &Path, storage: &str, extra: &str) -> Self {
        std::fs::write(dir.join("objectives.yaml"), OBJECTIVES).unwrap();
        let config = dir.join("collector.toml");
        let text = format!(
            "[storage]\ndata_dir = \"{data}\"\nmaintenance_interval = \"1h\"\n{storage}\n[evaluation]\nobjectives = \"{obj}\"\ninterval = \"300ms\"\nstale_after = \"3s\"\nresolved_hold = \"2s\"\n\n{extra}\n",
            data = dir.join("data").display(),
            obj = dir.join("objectives.yaml").display(),
        );
        std::fs::write(&config, text).unwrap();
        Self {
            bin: PathBuf::from(bin),
            dir: dir.to_owned(),
            config,
            port: 0,
            process: None,
            tls: false,
            extra_env: Vec::new(),
            database: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Starts the binary on port 0 (through an environment override), reads the port it
    /// bound from its log, and waits for `/healthz`.
    pub fn start(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .env("AIMS_COLLECTOR__SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        // Counted before the start: a restart appends to the same log, and the new process may
        // say where it listens before this line runs.
        let seen = crate::net::listening_count(&self.log());
        let mut process = Process::start("collector", cmd, &self.dir.join("collector.log"));
        self.port = process.listening(seen, Duration::from_secs(60)).port();
        self.process = Some(process);
        if !self.tls {
            let client = client();
            wait_until(Duration::from_secs(60), "collector /healthz", || {
                if let Some(status) = self.process.as_mut().unwrap().exited() {
                    panic!("collector exited with {status}: {}", self.log());
                }
                client
                    .get(self.url("/healthz"))
                    .send()
                    .ok()
                    .filter(|r| r.status().is_success())
            });
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.log")).unwrap_or_default()
    }

    /// The running collector's process id.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .and_then(Process::pid)
            .expect("a running collector")
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.take()?.terminate(Duration::from_secs(30))
    }

    pub fn signal(&self, sig: &str) {
        self.process
            .as_ref()
            .expect("a running collector")
            .signal(sig);
    }

    pub fn objective(&self, id: &str) -> Value {
        let v: Value = get_json(&self.url("/v1/objectives"), None);
        v["objectives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no objective {id} in {v}"))
    }

    pub fn state(&self, id: &str) -> String {
        self.objective(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls until objective `id` is in `state`, returning the states seen on the way.
    pub fn wait_state(&self, id: &str, state: &str, within: Duration) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        wait_until(within, &format!("objective {id} in state {state}"), || {
            let s = self.state(id);
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            (s == state).then_some(())
        });
        seen
    }

    pub fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// Evidence records (all pages).
    pub fn evidence(&self, token: Option<&str>) -> Vec<Value> {
        let mut after = 0u64;
        let mut out = Vec::new();
        loop {
            let page = get_json(
                &self.url(&format!("/v1/evidence?after={after}&limit=1000")),
                token,
            );
            let items = page["items"].as_array().unwrap().clone();
            out.extend(items);
            match page["next_after"].as_u64() {
                Some(n) => after = n,
                None => return out,
            }
        }
    }

    pub fn put_profile(
        &self,
        profile: &ReferenceProfile,
        token: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut req = client()
            .put(self.url(&format!("/v1/models/{MODEL}/reference")))
            .json(profile);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    }

    pub fn post(
        &self,
        envelope: &SummaryEnvelope,
        token: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut req = client().post(self.url("/v1/summaries")).json(envelope);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    }

    pub fn post_gzip(
        &self,
        envelope: &SummaryEnvelope,
        token: Option<&str>,
    ) -> reqwest::blocking::Response {
        let gz = aims_runtime::gzip::encode(&serde_json::to_vec(envelope).unwrap());
        let mut req = client()
            .post(self.url("/v1/summaries"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gz);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    }

    /// Runs the binary with other arguments against the same config.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().unwrap()
}

/// A blocking HTTP client with a short timeout, so a hung collector fails the test.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
