//! Test harness: runs the real `aims-collector` binary on a loopback port chosen at run time,
//! in a temporary directory, and builds summaries with aims-core as an agent would.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aims_core::profile::ProfileBuilder;
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::wire::SummaryEnvelope;
use aims_core::{Event, FeatureValue, Prediction, ReferenceProfile, Target, WindowSummary};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_aims-collector");
pub const MODEL: &str = "credit-scoring";

/// A deterministic pseudo-random stream (xorshift), so tests are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A credit-scoring schema with `numeric` numeric features (income first), a categorical
/// region and a gender attribute.
pub fn schema(numeric: usize) -> ModelSchema {
    let mut features: Vec<FeatureSpec> = (0..numeric)
        .map(|i| FeatureSpec {
            name: if i == 0 {
                "income".into()
            } else {
                format!("x{i}")
            },
            kind: FeatureKind::Numeric,
        })
        .collect();
    features.push(FeatureSpec {
        name: "region".into(),
        kind: FeatureKind::Categorical,
    });
    ModelSchema {
        name: MODEL.into(),
        version: "1.0".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features,
        attributes: vec![AttributeSpec {
            name: "gender".into(),
            groups: vec!["F".into(), "M".into()],
            reference_group: Some("M".into()),
        }],
    }
    .validated()
    .unwrap()
}

/// Traffic shapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Traffic {
    Normal,
    Biased,
    Drifted,
}

pub fn event(schema: &ModelSchema, rng: &mut Rng, traffic: Traffic, ts_ms: i64) -> Event {
    let shift = if traffic == Traffic::Drifted {
        3.0
    } else {
        0.0
    };
    let mut features: Vec<FeatureValue> = (0..schema.features.len() - 1)
        .map(|i| {
            let sd = if i == 0 { 10_000.0 } else { 1.0 };
            let mean = if i == 0 { 50_000.0 } else { 0.0 };
            FeatureValue::Numeric(rng.normal(mean + shift * sd, sd))
        })
        .collect();
    let regions = ["north", "south", "east", "west"];
    features.push(FeatureValue::Categorical(
        regions[(rng.unit() * 4.0) as usize % 4].into(),
    ));
    let female = rng.unit() < 0.5;
    let p_approve = match (traffic, female) {
        (Traffic::Biased, true) => 0.2,
        (Traffic::Biased, false) => 0.8,
        _ => 0.5,
    };
    let approved = rng.unit() < p_approve;
    let truth = rng.unit() < 0.5;
    Event {
        id: None,
        ts_ms,
        features,
        groups: vec![if female { 0 } else { 1 }],
        prediction: Prediction::Class {
            class: u32::from(approved),
            score: Some(if approved { 0.75 } else { 0.25 }),
        },
        label: Some(Target::Class(u32::from(truth))),
        latency_ms: Some(5.0 + rng.unit() * 10.0),
    }
}

pub fn profile(schema: &ModelSchema) -> ReferenceProfile {
    let mut rng = Rng::new(7);
    let mut b = ProfileBuilder::new(schema);
    for _ in 0..2_000 {
        b.add(&event(schema, &mut rng, Traffic::Normal, 0));
    }
    b.finish()
}

pub fn summary(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    traffic: Traffic,
    events: usize,
    seed: u64,
) -> WindowSummary {
    let mut rng = Rng::new(seed);
    let mut s = WindowSummary::new(schema, profile);
    let now = now_ms();
    for _ in 0..events {
        s.record(schema, profile, &event(schema, &mut rng, traffic, now));
    }
    s
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The current one-minute window start.
pub fn minute() -> i64 {
    now_ms() / 60_000 * 60_000
}

pub fn envelope(
    agent: &str,
    window_start_ms: i64,
    seq: u64,
    summary: WindowSummary,
) -> SummaryEnvelope {
    SummaryEnvelope::new(agent, MODEL, "1.0", window_start_ms, 60_000, seq, summary)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The objectives the end-to-end tests evaluate.
pub const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 1h
    min_samples: 200
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: income-drift
    title: Income stays close to training
    model: credit-scoring
    metric: psi
    feature: income
    target: "<= 0.2"
    window: 1h
    min_samples: 200
    for: 1s
    owner: ml-platform@example.com
  - id: accuracy
    title: Accurate on labelled outcomes
    model: credit-scoring
    metric: accuracy
    target: ">= 0.4"
    window: 1h
    min_samples: 1000000
    owner: ml-platform@example.com
  - id: heartbeat
    title: Summaries keep arriving
    model: credit-scoring
    metric: no_data
    target: "< 2"
    owner: ml-platform@example.com
"#;

/// A running collector; killed when dropped.
pub struct Collector {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub tls: bool,
    pub extra_env: Vec<(String, String)>,
}

impl Collector {
    /// Writes a config (with `extra` appended to its sections) and the objectives into `dir`.
    pub fn prepare(dir: &Path, extra: &str) -> Self {
        std::fs::write(dir.join("objectives.yaml"), OBJECTIVES).unwrap();
        let config = dir.join("collector.toml");
        let text = format!(
            "[storage]\ndata_dir = \"{data}\"\nmaintenance_interval = \"1h\"\n\n[evaluation]\nobjectives = \"{obj}\"\ninterval = \"300ms\"\nstale_after = \"3s\"\nresolved_hold = \"2s\"\n\n{extra}\n",
            data = dir.join("data").display(),
            obj = dir.join("objectives.yaml").display(),
        );
        std::fs::write(&config, text).unwrap();
        Self {
            dir: dir.to_owned(),
            config,
            port: free_port(),
            child: None,
            tls: false,
            extra_env: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Starts the binary (the port comes through an environment override) and waits for
    /// `/healthz`.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("collector.log"))
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .env(
                "AIMS_COLLECTOR__SERVER__LISTEN",
                format!("127.0.0.1:{}", self.port),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
        if !self.tls {
            let client = client();
            wait_until(Duration::from_secs(60), "collector /healthz", || {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
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

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                c.kill().ok();
                c.wait().ok();
                panic!("collector did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
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
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&serde_json::to_vec(envelope).unwrap())
            .unwrap();
        let mut req = client()
            .post(self.url("/v1/summaries"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gz.finish().unwrap());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    }

    /// Runs the binary with other arguments against the same config.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
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

/// Polls `f` until it returns `Some`, or panics naming `what` after `within`.
pub fn wait_until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Value of the first sample of `name` with all `labels` in the exposition `text`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A blocking HTTP client with a short timeout, so a hung collector fails the test.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
