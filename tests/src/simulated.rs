//! Reference profiles built the way a data scientist builds one: the simulator writes a
//! labelled dataset (`aims-agent simulate --output`, in virtual time) and the real
//! `aims-agent reference build` profiles it, CBPE calibration and PCA model included.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{binary, repo_root};

/// Runs the agent CLI in `dir` and panics with its output unless it succeeds.
fn agent_cli(dir: &Path, args: &[&str]) {
    let out = Command::new(binary("aims-agent"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("aims-agent runs");
    assert!(
        out.status.success(),
        "aims-agent {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `events` simulated events of `scenario` (with `seed`) to `dir/reference.ndjson`,
/// builds `dir/profile.json` from them with the example agent configuration, and returns the
/// profile's path and its JSON.
pub fn reference(dir: &Path, scenario: &str, seed: u64, events: u64) -> (PathBuf, Value) {
    let rate = 1000;
    let duration = format!("{}ms", events * 1000 / rate);
    agent_cli(
        dir,
        &[
            "simulate",
            "--output",
            "reference.ndjson",
            "--scenario",
            scenario,
            "--rate",
            &rate.to_string(),
            "--duration",
            &duration,
            "--seed",
            &seed.to_string(),
        ],
    );
    let config = repo_root().join("config/agent.toml");
    agent_cli(
        dir,
        &[
            "reference",
            "build",
            "--config",
            &config.display().to_string(),
            "--data",
            "reference.ndjson",
            "--output",
            "profile.json",
        ],
    );
    let path = dir.join("profile.json");
    let text = std::fs::read_to_string(&path).expect("profile written");
    let json: Value = serde_json::from_str(&text).expect("profile JSON");
    assert_eq!(
        json["rows"].as_u64(),
        Some(events),
        "every simulated event profiled"
    );
    (path, json)
}
