//! Harness for end-to-end tests: run the real `aims-agent` and `aims-collector` binaries on
//! 127.0.0.1 with ports chosen at run time, each in its own temporary directory, and wait on
//! conditions with deadlines instead of sleeping.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod alertmanager;
pub mod simulated;

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a workspace binary. `cargo test --workspace` builds every binary before any test
/// runs; when only this crate's tests were asked for and a binary is missing, it is built once.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_owned))
        .expect("test binaries live in target/<profile>/deps");
    let path = dir.join(name);
    if !path.exists() {
        BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "aims-agent",
                    "-p",
                    "aims-collector",
                    "--bins",
                ])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the binaries failed");
        });
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub use aims_testkit::net::free_port;
pub use aims_testkit::process::Process;
pub use aims_testkit::wait_until;

pub use aims_testkit::skip::{in_ci, require_tool, skip};

/// A blocking HTTP client with a short timeout.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// GETs `url` as JSON; `None` while the server is not answering or answers an error.
pub fn get_json(url: &str) -> Option<Value> {
    let resp = http().get(url).send().ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().ok()
}

/// GETs `url` as text; `None` while the server is not answering.
pub fn get_text(url: &str) -> Option<String> {
    let resp = http().get(url).send().ok()?;
    resp.status()
        .is_success()
        .then(|| resp.text().ok())
        .flatten()
}

/// A collector, an agent and the simulator wired together in one temporary directory, with
/// the example credit-scoring model and profile.
pub struct Stack {
    /// The temporary directory (configs, data, logs).
    pub dir: tempfile::TempDir,
    /// Collector base URL.
    pub collector_url: String,
    /// Agent base URL.
    pub agent_url: String,
    /// The collector process.
    pub collector: Process,
    /// The agent process.
    pub agent: Option<Process>,
    /// The agent's environment, so it can be started again after a stop.
    agent_env: Vec<(String, String)>,
}

/// Settings of a [`Stack`].
pub struct StackConfig<'a> {
    /// Objectives YAML text.
    pub objectives: &'a str,
    /// Extra TOML appended to the collector config (sections not set by the stack).
    pub collector_extra: &'a str,
    /// Agent window length, e.g. `"1s"`.
    pub window: &'a str,
    /// Collector evaluation interval, e.g. `"1s"`.
    pub evaluation_interval: &'a str,
    /// Collector `stale_after`.
    pub stale_after: &'a str,
    /// Extra TOML appended to the agent config (for example a `[cloudevents]` section).
    pub agent_extra: &'a str,
    /// The reference profile the agent uploads (default: the example profile, which carries
    /// neither CBPE calibration nor a PCA model; see [`simulated::reference`]).
    pub profile: Option<&'a Path>,
}

impl Default for StackConfig<'_> {
    fn default() -> Self {
        StackConfig {
            objectives: "",
            collector_extra: "",
            window: "1s",
            evaluation_interval: "1s",
            stale_after: "5s",
            agent_extra: "",
            profile: None,
        }
    }
}

impl Stack {
    /// Starts the collector and then the agent, and waits until both answer.
    pub fn start(cfg: &StackConfig) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = repo_root();
        std::fs::write(dir.path().join("objectives.yaml"), cfg.objectives).expect("objectives");
        std::fs::write(
            dir.path().join("collector.toml"),
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"data/collector\"\n\n[evaluation]\nobjectives = \"objectives.yaml\"\ninterval = \"{}\"\nstale_after = \"{}\"\n{}\n",
                cfg.evaluation_interval, cfg.stale_after, cfg.collector_extra
            ),
        )
        .expect("collector config");
        let agent_toml =
            std::fs::read_to_string(root.join("config/agent.toml")).expect("example agent config");
        std::fs::write(
            dir.path().join("agent.toml"),
            format!("{agent_toml}\n{}\n", cfg.agent_extra),
        )
        .expect("agent config");
        let profile = cfg
            .profile
            .map_or_else(|| root.join("config/examples/profile.json"), Path::to_owned);
        let collector = Process::spawn(
            "collector",
            &binary("aims-collector"),
            &["run", "--config", "collector.toml"],
            dir.path(),
            &[],
        );
        // Both binaries bind port 0 and say in their log where they listen.
        let collector_url = format!("http://{}", listening(&collector, 0));
        wait_until(
            Duration::from_secs(60),
            "the collector to answer /healthz",
            || get_text(&format!("{collector_url}/healthz")),
        );
        let mut stack = Stack {
            collector_url,
            agent_url: String::new(),
            collector,
            agent: None,
            agent_env: Vec::new(),
            dir,
        };
        let env = [
            ("AIMS_AGENT__SERVER__LISTEN", "127.0.0.1:0".to_owned()),
            (
                "AIMS_AGENT__SHIP__COLLECTOR_URL",
                stack.collector_url.clone(),
            ),
            ("AIMS_AGENT__REFERENCE__PATH", profile.display().to_string()),
            ("AIMS_AGENT__WINDOW__LENGTH", cfg.window.to_owned()),
            ("AIMS_AGENT__WINDOW__GRACE", "200ms".to_owned()),
            ("AIMS_AGENT__SPOOL__DIR", "data/agent/spool".to_owned()),
        ];
        stack.agent_env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        stack.restart_agent();
        stack
    }

    /// Starts the agent (again, after [`stop_agent`](Self::stop_agent)) with the stack's
    /// settings, and waits until it answers.
    pub fn restart_agent(&mut self) {
        let env = self.agent_env.clone();
        self.start_agent(
            &env.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
    }

    fn start_agent(&mut self, env: &[(&str, &str)]) {
        let log = self.dir.path().join("agent.log");
        let seen =
            aims_testkit::net::listening_count(&std::fs::read_to_string(&log).unwrap_or_default());
        let agent = Process::spawn(
            "agent",
            &binary("aims-agent"),
            &["run", "--config", "agent.toml"],
            self.dir.path(),
            env,
        );
        self.agent_url = format!("http://{}", listening(&agent, seen));
        let url = self.agent_url.clone();
        wait_until(
            Duration::from_secs(60),
            "the agent to answer /healthz",
            || get_text(&format!("{url}/healthz")),
        );
        self.agent = Some(agent);
    }

    /// Runs the simulator against the agent until it exits; `args` add to `--target`.
    pub fn simulate(&self, args: &[&str]) -> Process {
        let mut all = vec!["simulate", "--target", &self.agent_url];
        all.extend_from_slice(args);
        Process::spawn(
            "simulate",
            &binary("aims-agent"),
            &all,
            self.dir.path(),
            &[],
        )
    }

    /// `GET /v1/objectives` as a list.
    pub fn objectives(&self) -> Vec<Value> {
        get_json(&format!("{}/v1/objectives", self.collector_url))
            .and_then(|v| match v {
                Value::Array(a) => Some(a),
                Value::Object(mut o) => o.remove("objectives").and_then(|a| a.as_array().cloned()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The current state of objective `id`.
    pub fn state(&self, id: &str) -> Option<String> {
        self.objectives()
            .into_iter()
            .find(|o| o["id"] == id)
            .and_then(|o| o["state"].as_str().map(str::to_owned))
    }

    /// Waits until objective `id` reaches `state`, showing the logs on timeout.
    pub fn wait_state(&self, id: &str, state: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.state(id).as_deref() == Some(state) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "objective {id} did not reach {state} within {within:?} (now {:?})\n--- collector ---\n{}\n--- agent ---\n{}",
                    self.state(id),
                    tail(&self.collector.log()),
                    self.agent.as_ref().map(|a| tail(&a.log())).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the agent (SIGTERM), so summaries stop arriving.
    pub fn stop_agent(&mut self) -> Option<ExitStatus> {
        self.agent.as_mut().and_then(Process::stop)
    }
}

/// The address `process` reports in its log's "listening" line after the first `seen` ones.
fn listening(process: &Process, seen: usize) -> std::net::SocketAddr {
    wait_until(
        Duration::from_secs(60),
        "a listening address in the log",
        || {
            let log = process.log();
            (aims_testkit::net::listening_count(&log) > seen)
                .then(|| aims_testkit::net::listening_address(&log))
                .flatten()
        },
    )
}

/// Headless Chromium as every browser test runs it: no sandbox (CI runs as root), no GPU, and
/// nothing that reaches the network on its own (updates, sync, QUIC); its log to stderr.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
];

/// The DOM of `html` (a file) as headless Chromium renders it (`--dump-dom`), or `None` (skip)
/// off CI when Chromium is missing. Fails on a script error or when Chromium does not finish
/// within two minutes.
pub fn chromium_dom(html: &Path) -> Option<String> {
    let chromium = require_tool("chromium", "chromium")?;
    let dir = tempfile::tempdir().expect("chromium temp dir");
    let out_path = dir.path().join("dom.html");
    let err_path = dir.path().join("stderr.log");
    let mut child = Command::new(&chromium)
        .args(CHROMIUM_FLAGS)
        .arg("--dump-dom")
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("dom file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium --dump-dom did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium --dump-dom failed: {}",
        tail(&stderr)
    );
    assert!(
        !stderr.contains("Uncaught"),
        "no script errors: {}",
        tail(&stderr)
    );
    Some(std::fs::read_to_string(&out_path).expect("the DOM"))
}

/// The last 60 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
