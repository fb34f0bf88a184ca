//! The deployment examples in `config/deploy/` and the quickstart's files stay loadable: their
//! settings are fed to the real binaries, which reject unknown keys and bad values.

use std::path::Path;
use std::process::{Command, Output};

use aims_e2e::{binary, repo_root};

fn run(program: &Path, args: &[&str], env: &[(String, String)], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// `Environment=KEY=VALUE` lines of a systemd unit (comments skipped).
fn unit_environment(unit: &str) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo_root().join("config/deploy").join(unit)).expect("unit file");
    text.lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_collector_unit_environment_is_a_valid_configuration() {
    let env = unit_environment("aims-collector.service");
    assert!(env
        .iter()
        .any(|(k, _)| k == "AIMS_COLLECTOR__STORAGE__DATA_DIR"));
    let out = run(
        &binary("aims-collector"),
        &["evidence", "verify", "--config", "config/collector.toml"],
        &env,
        &repo_root(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no database at /var/lib/aims-collector"),
        "the configuration loads and points at the state directory: {stderr}"
    );
}

#[test]
fn the_agent_unit_environment_is_a_valid_configuration() {
    let env = unit_environment("aims-agent.service");
    assert!(env.iter().any(|(k, _)| k == "AIMS_AGENT__SPOOL__DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.csv").display().to_string();
    let config = repo_root().join("config/agent.toml").display().to_string();
    let out = run(
        &binary("aims-agent"),
        &[
            "reference",
            "build",
            "--config",
            &config,
            "--data",
            &missing,
            "-o",
            &missing,
        ],
        &env,
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing.csv") && !stderr.contains("agent.toml"),
        "the configuration loads; only the dataset is missing: {stderr}"
    );
}

#[test]
fn the_kubernetes_sidecar_config_is_a_valid_agent_configuration() {
    let manifest = std::fs::read_to_string(repo_root().join("config/deploy/kubernetes.yaml"))
        .expect("manifest");
    let toml: String = manifest
        .lines()
        .skip_while(|l| l.trim() != "agent.toml: |")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    assert!(toml.contains("[model]"), "the ConfigMap holds agent.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("agent.toml"), toml).expect("config");
    let out = run(
        &binary("aims-agent"),
        &[
            "reference",
            "build",
            "--config",
            "agent.toml",
            "--data",
            "missing.csv",
            "-o",
            "profile.json",
        ],
        &[],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing.csv") && !stderr.contains("agent.toml"),
        "the sidecar's configuration loads: {stderr}"
    );
}

/// The demo passes its own check: with the quickstart's collector configuration too, so every
/// receiver its objectives name is one that configuration delivers to.
#[test]
fn the_quickstart_objectives_check() {
    for args in [
        &["check", "config/quickstart/objectives.yaml"][..],
        &[
            "check",
            "config/quickstart/objectives.yaml",
            "--config",
            "config/quickstart/collector.toml",
        ][..],
    ] {
        let out = run(&binary("aims-collector"), args, &[], &repo_root());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The block under `key: |` in a manifest, without its four-space indent.
fn manifest_block(manifest: &str, key: &str) -> String {
    manifest
        .lines()
        .skip_while(|l| l.trim() != format!("{key}: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect()
}

/// The two-replica example: its collector.toml, with the URL and the replica name the
/// Deployment passes through the environment, is a valid PostgreSQL configuration (it gets as
/// far as reading the mounted password file, before any connection), two replicas are asked
/// for, readiness is `/readyz`, and its objectives check.
#[test]
fn the_kubernetes_ha_example_is_a_valid_two_replica_configuration() {
    let manifest = std::fs::read_to_string(repo_root().join("config/deploy/kubernetes-ha.yaml"))
        .expect("manifest");
    assert!(manifest.contains("replicas: 2"), "two replicas");
    assert!(
        manifest.contains("path: /readyz"),
        "readiness follows the database"
    );
    for var in [
        "AIMS_COLLECTOR__STORAGE__URL",
        "AIMS_COLLECTOR__STORAGE__REPLICA",
    ] {
        assert!(manifest.contains(var), "{var} set by the Deployment");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = manifest_block(&manifest, "collector.toml");
    assert!(config.contains("backend = \"postgres\""), "{config}");
    std::fs::write(dir.path().join("collector.toml"), config).expect("config");
    let objectives = manifest_block(&manifest, "objectives.yaml");
    std::fs::write(dir.path().join("objectives.yaml"), objectives).expect("objectives");
    let env = [
        (
            "AIMS_COLLECTOR__STORAGE__URL".to_owned(),
            "postgres://aims@127.0.0.1:1/aims".to_owned(),
        ),
        (
            "AIMS_COLLECTOR__STORAGE__REPLICA".to_owned(),
            "aims-collector-0".to_owned(),
        ),
    ];
    let bin = binary("aims-collector");
    let out = run(
        &bin,
        &["evidence", "verify", "--config", "collector.toml"],
        &env,
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage.password_file: /etc/aims-collector/db/password"),
        "the configuration loads and reads the Secret's password file: {stderr}"
    );
    let out = run(&bin, &["check", "objectives.yaml"], &[], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
