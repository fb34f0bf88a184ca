//! Both binaries started from a folder other than the repository's root, and other than their
//! configuration's: relative paths in a configuration mean paths next to that file.
//!
//! The agent runs on the repository's own `config/agent.toml`, whose `reference.path` is the
//! relative `examples/profile.json`; before relative paths resolved against the configuration
//! file, this failed with "reference profile: config/examples/profile.json: No such file".

use std::process::Command;
use std::time::Duration;

use aims_e2e::{binary, repo_root};
use aims_testkit::process::Process;
use aims_testkit::{temp_dir, wait_until};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn both_binaries_run_from_another_folder_with_relative_paths() {
    let conf = temp_dir();
    let elsewhere = temp_dir();
    std::fs::copy(
        repo_root().join("config/examples/objectives.yaml"),
        conf.path().join("objectives.yaml"),
    )
    .unwrap();
    std::fs::write(
        conf.path().join("collector.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"data\"\n\n[evaluation]\nobjectives = \"objectives.yaml\"\n",
    )
    .unwrap();

    let mut cmd = Command::new(binary("aims-collector"));
    cmd.args(["run", "--config"])
        .arg(conf.path().join("collector.toml"))
        .current_dir(elsewhere.path())
        .env("RUST_LOG", "info");
    let mut collector = Process::start("collector", cmd, &conf.path().join("collector.log"));
    let collector_addr = collector.listening(0, LONG);
    assert!(
        conf.path().join("data/collector.db").exists(),
        "the database is next to the configuration: {}",
        collector.log()
    );
    assert!(!elsewhere.path().join("data").exists());

    let spool = conf.path().join("spool");
    let mut cmd = Command::new(binary("aims-agent"));
    cmd.args(["run", "--config"])
        .arg(repo_root().join("config/agent.toml"))
        .current_dir(elsewhere.path())
        .env("RUST_LOG", "info")
        .env("AIMS_AGENT__SERVER__LISTEN", "127.0.0.1:0")
        .env(
            "AIMS_AGENT__SHIP__COLLECTOR_URL",
            format!("http://{collector_addr}"),
        )
        .env("AIMS_AGENT__SPOOL__DIR", &spool);
    let mut agent = Process::start("agent", cmd, &conf.path().join("agent.log"));
    agent.listening(0, LONG);

    // The agent read config/examples/profile.json through the relative path and uploaded it.
    let url = format!("http://{collector_addr}/v1/models/credit-scoring/reference");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let profile: serde_json::Value =
        wait_until(LONG, "the agent's profile at the collector", || {
            client
                .get(&url)
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.json().ok())
        });
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("config/examples/profile.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(profile["hash"], shipped["hash"]);

    assert!(
        agent.terminate(LONG).is_some_and(|s| s.success()),
        "{}",
        agent.log()
    );
    assert!(
        collector.terminate(LONG).is_some_and(|s| s.success()),
        "{}",
        collector.log()
    );
}
