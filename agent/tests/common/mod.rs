//! Shared harness of the agent's end-to-end tests: the real `aims-agent` binary on a port it
//! picks itself, a test collector (a real axum server) that can misbehave on demand, temp dirs,
//! and polling with deadlines instead of sleeps.
//!
//! These tests live in `agent/tests/` rather than the workspace `tests/` crate because Cargo
//! provides `CARGO_BIN_EXE_aims-agent` (the freshly built binary) only to the binary's own
//! package.
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aims_agent::config::AgentConfig;
use aims_agent::simulate::{Generator, Scenario};
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::wire::SummaryEnvelope;
use aims_testkit::process::Process;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;

/// A fresh directory under the system temp dir, from tempfile, kept after the test: an agent's
/// spool and log there are what a failing test's reader looks at.
pub fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("aims-agent-{name}-"))
        .tempdir()
        .expect("a temporary folder")
        .keep()
}

/// The `[model]` section of the shipped `config/agent.toml`.
pub fn model_section() -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
            .unwrap();
    let start = text.find("[model]").unwrap();
    let end = text.find("[reference]").unwrap();
    text[start..end].to_owned()
}

/// Writes a reference profile built from simulated steady traffic; returns it too.
pub fn write_profile(dir: &Path) -> (PathBuf, ReferenceProfile) {
    let cfg_path = dir.join("model-only.toml");
    std::fs::write(&cfg_path, model_section()).unwrap();
    let cfg = AgentConfig::load(&cfg_path).unwrap();
    let mut builder = ProfileBuilder::new(&cfg.model);
    let mut g = Generator::new(1);
    for _ in 0..3000 {
        let ev = g
            .event(&[Scenario::Steady], std::time::SystemTime::now())
            .event;
        let raw = serde_json::from_value(ev).unwrap();
        builder.add(&cfg.model.validate(raw, 0).unwrap());
    }
    let profile = builder.finish();
    let path = dir.join("profile.json");
    std::fs::write(&path, serde_json::to_vec(&profile).unwrap()).unwrap();
    (path, profile)
}

/// Settings that differ between tests.
pub struct Setup {
    pub collector_url: String,
    pub reference_path: Option<PathBuf>,
    pub window: &'static str,
    pub max_body_bytes: usize,
    pub extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            collector_url: String::new(),
            reference_path: None,
            window: "1s",
            max_body_bytes: 1 << 20,
            extra: String::new(),
        }
    }
}

/// Writes an agent config into `dir`; returns its path.
pub fn write_config(dir: &Path, setup: &Setup) -> PathBuf {
    let reference = match &setup.reference_path {
        Some(p) => format!(
            "path = {:?}\ncache = {:?}",
            p,
            dir.join("reference-cache.json")
        ),
        None => format!("cache = {:?}", dir.join("reference-cache.json")),
    };
    let text = format!(
        r#"agent_id = "test-agent"
{model}
[reference]
{reference}

[server]
listen = "127.0.0.1:0"
max_body_bytes = {max_body}

[window]
length = "{window}"
grace = "150ms"
max_lateness = "1m"

[labels]
join_capacity = 10000
join_ttl = "1m"

[ship]
collector_url = "{url}"
timeout = "700ms"
initial_backoff = "50ms"
max_backoff = "400ms"
shutdown_timeout = "3s"

[spool]
dir = {spool:?}
max_bytes = 104857600
{extra}
"#,
        model = model_section(),
        max_body = setup.max_body_bytes,
        window = setup.window,
        url = setup.collector_url,
        spool = dir.join("spool"),
        extra = setup.extra,
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `aims-agent run`, its output in a log of its own.
pub struct Agent {
    process: Process,
    pub addr: SocketAddr,
}

impl Agent {
    /// Starts the agent and waits for its "listening on" line.
    pub fn start(config: &Path) -> Agent {
        Self::start_with_env(config, &[])
    }

    /// Starts the agent with extra environment variables (configuration overrides).
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aims-agent"));
        cmd.args(["run", "--config"]).arg(config);
        Self::spawn(cmd, config, env)
    }

    /// Starts the agent with its open-file limit lowered to `fds` (`ulimit -n` in a shell that
    /// then becomes the agent, so the child's pid is the agent's).
    pub fn start_with_fd_limit(config: &Path, fds: u32, env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -n {fds} && exec \"$0\" run --config \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_aims-agent"))
            .arg(config);
        Self::spawn(cmd, config, env)
    }

    /// Each start logs to a file of its own in a fresh temporary folder (kept, for a failing
    /// test's reader), never beside the configuration, which may be the repository's.
    fn spawn(mut cmd: Command, config: &Path, env: &[(&str, &str)]) -> Agent {
        cmd.envs(env.iter().copied()).env("RUST_LOG", "info");
        let name = config
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("agent");
        let log = temp_dir(name).join("agent.log");
        let mut process = Process::start("agent", cmd, &log);
        let addr = process.listening(0, Duration::from_secs(30));
        Agent { process, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) {
        let status = self
            .process
            .terminate(Duration::from_secs(30))
            .expect("a running agent");
        assert!(status.success(), "agent exit {status}: {}", self.log_text());
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.process.kill();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.running()
    }

    /// The pid of the running agent.
    pub fn pid(&self) -> u32 {
        self.process.pid().expect("a running agent")
    }

    pub fn log_text(&self) -> String {
        self.process.log()
    }

    /// The agent's `/metrics` text.
    pub async fn metrics(&self) -> String {
        aims_testkit::prom::scrape(&self.url("/metrics")).await
    }

    /// Peak resident set size so far (`VmHWM`), bytes; Linux only.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Agent {
    /// Killed, not stopped: a test that is done with an agent does not wait for its shutdown
    /// to ship to a test collector that may be gone.
    fn drop(&mut self) {
        self.process.kill();
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F: FnMut() -> bool>(within: Duration, what: &str, mut check: F) {
    aims_testkit::eventually(within, what, || {
        let done = check();
        async move { done.then_some(()) }
    })
    .await;
}

/// How the test collector answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Error500 = 1,
    TooMany429 = 2,
    Stall = 3,
    BadRequest400 = 4,
}

/// What the test collector saw.
#[derive(Default)]
pub struct Seen {
    /// Every summary POST that it acknowledged, in order (duplicates included).
    pub acknowledged: Vec<SummaryEnvelope>,
    /// Every summary POST attempt, whatever the answer.
    pub attempts: usize,
    /// Reference profiles PUT.
    pub references: Vec<ReferenceProfile>,
    /// Authorization headers seen.
    pub auth: Vec<String>,
}

#[derive(Clone)]
struct CollectorState {
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Seen>>,
    serve_reference: Option<Arc<ReferenceProfile>>,
}

/// A test collector endpoint on a loopback port that can also go away and come back.
pub struct TestCollector {
    pub addr: SocketAddr,
    pub mode: Arc<AtomicU8>,
    pub seen: Arc<Mutex<Seen>>,
    state: CollectorState,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn gunzip(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    }
}

async fn summaries(State(s): State<CollectorState>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = s.mode.load(Ordering::SeqCst);
    s.seen.lock().unwrap().attempts += 1;
    if let Some(a) = headers.get("authorization") {
        s.seen
            .lock()
            .unwrap()
            .auth
            .push(a.to_str().unwrap().to_owned());
    }
    match mode {
        1 => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        2 => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response()
        }
        3 => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return (StatusCode::SERVICE_UNAVAILABLE, "stalled").into_response();
        }
        4 => return (StatusCode::BAD_REQUEST, "schema mismatch").into_response(),
        _ => {}
    }
    let envelope: SummaryEnvelope = match serde_json::from_slice(&gunzip(&headers, &body)) {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if let Err(e) = envelope.validate() {
        return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
    }
    s.seen.lock().unwrap().acknowledged.push(envelope);
    StatusCode::ACCEPTED.into_response()
}

async fn put_reference(
    State(s): State<CollectorState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.mode.load(Ordering::SeqCst) != 0 {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let profile: ReferenceProfile = serde_json::from_slice(&gunzip(&headers, &body)).unwrap();
    s.seen.lock().unwrap().references.push(profile);
    StatusCode::NO_CONTENT.into_response()
}

async fn readyz(State(s): State<CollectorState>) -> Response {
    if s.mode.load(Ordering::SeqCst) == 0 {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

async fn get_reference(State(s): State<CollectorState>) -> Response {
    match &s.serve_reference {
        Some(p) => axum::Json(p.as_ref().clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl TestCollector {
    /// Starts on a port chosen by the system.
    pub async fn start(serve_reference: Option<ReferenceProfile>) -> TestCollector {
        let state = CollectorState {
            mode: Arc::new(AtomicU8::new(0)),
            seen: Arc::new(Mutex::new(Seen::default())),
            serve_reference: serve_reference.map(Arc::new),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = TestCollector {
            addr,
            mode: Arc::clone(&state.mode),
            seen: Arc::clone(&state.seen),
            state,
            task: None,
        };
        c.serve(listener);
        c
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/v1/summaries", routing::post(summaries))
            .route("/readyz", routing::get(readyz))
            .route(
                "/v1/models/{model}/reference",
                routing::put(put_reference).get(get_reference),
            )
            .with_state(self.state.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Stops listening: connections are refused.
    pub async fn go_down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn come_back(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot rebind {}: {e}",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }

    /// Acknowledged summaries, de-duplicated by id.
    pub fn unique(&self) -> std::collections::BTreeMap<String, SummaryEnvelope> {
        self.seen
            .lock()
            .unwrap()
            .acknowledged
            .iter()
            .map(|e| (e.id.clone(), e.clone()))
            .collect()
    }
}

/// POSTs a body; returns the status and the JSON reply.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = client
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The value of one sample in a Prometheus text exposition.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series}"))
        .trim()
        .parse()
        .unwrap()
}

/// `n` valid NDJSON events timestamped now, ids `{prefix}-{i}`, without labels.
pub fn events(prefix: &str, n: usize) -> Vec<u8> {
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            r#"{{"id": "{prefix}-{i}", "ts": "{ts}", "features": {{"income": 50000, "age": 40, "debt_ratio": 0.3, "credit_history_months": 80, "num_accounts": 4, "region": "north", "employment": "employed"}}, "attributes": {{"gender": "F", "age_band": "40-49"}}, "prediction": {{"label": 1, "score": 0.7}}, "latency_ms": 10}}"#
        ));
        out.push('\n');
    }
    out.into_bytes()
}
