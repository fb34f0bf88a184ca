//! The README's first command, run as a newcomer would: `./quickstart.sh` starts a collector,
//! an agent and the simulator; the objectives the README says fire do, and those it says stay
//! ok do; the status page shows them, and why, in a real browser; Ctrl-C (SIGINT) stops all
//! three and the script exits 0.
//!
//! Run-time ports, a temporary data folder, the test's own binaries (no release build) and a
//! shortened switch-over and window come from the script's environment overrides.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aims_e2e::{binary, free_port, get_json, get_text, repo_root, require_tool, tail, Process};
use serde_json::Value;

/// Objectives of `config/quickstart/objectives.yaml` that are firing.
fn firing(collector: &str) -> Vec<String> {
    get_json(&format!("{collector}/v1/objectives"))
        .and_then(|v| v["objectives"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o["state"] == "firing")
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
}

/// The state of every objective, by id.
fn states(collector: &str) -> Vec<(String, String)> {
    get_json(&format!("{collector}/v1/objectives"))
        .and_then(|v| v["objectives"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| {
            Some((
                o["id"].as_str()?.to_owned(),
                o["state"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The ids in `config/quickstart/objectives.yaml`.
fn quickstart_ids() -> Vec<String> {
    let yaml = std::fs::read_to_string(repo_root().join("config/quickstart/objectives.yaml"))
        .expect("the quickstart's objectives");
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- id:"))
        .map(|id| id.trim().to_owned())
        .collect()
}

/// What the README's quickstart section promises: the objectives it says go `pending`, then
/// `firing`, and those it says stay `ok` (its "Expected:" paragraph).
fn readme_promises(ids: &[String]) -> (Vec<String>, Vec<String>) {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let paragraph = readme
        .split("\n\n")
        .find(|p| p.starts_with("Expected:"))
        .expect("the README's quickstart has an \"Expected:\" paragraph")
        .replace('\n', " ");
    let named = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| ids.iter().any(|id| id == w))
            .map(str::to_owned)
            .collect()
    };
    let (fire, rest) = paragraph
        .split_once("go `pending`, then `firing`")
        .expect("the paragraph says which objectives go pending, then firing");
    let (ok, _) = rest
        .split_once("stay `ok`")
        .expect("the paragraph says which objectives stay ok");
    (named(fire), named(ok))
}

/// `aims_objective_breaches_total` of `objective` (how often it started firing).
fn breaches(collector: &str, objective: &str) -> Option<f64> {
    let text = get_text(&format!("{collector}/metrics"))?;
    aims_testkit::prom::sample(
        &text,
        "aims_objective_breaches_total",
        &[("objective", objective)],
    )
}

/// The pids the script prints (`pids  collector=1 agent=2 simulator=3`).
fn child_pids(output: &str) -> Vec<(String, u32)> {
    output
        .lines()
        .find(|l| l.trim_start().starts_with("pids"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .filter_map(|(name, pid)| Some((name.to_owned(), pid.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs headless Chromium with `args` then `url`, killing it after 60 s; returns its stdout.
fn chromium(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new(browser)
        .args(aims_e2e::CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("stdout file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "chromium {args:?} failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(out.path()).unwrap_or_default()
}

/// The status page in headless Chromium: it renders, shows `objective` firing, and its
/// screenshot is kept in `tests/artifacts/status-page.png`.
fn check_in_browser(page: &str, objective: &str) {
    let Some(browser) = require_tool("chromium", "chromium") else {
        return;
    };
    let profile = tempfile::tempdir().expect("browser profile dir");
    let dom = chromium(&browser, profile.path(), &["--dump-dom"], page);
    assert!(
        dom.contains("<h1>AIMS Monitor</h1>") && dom.contains(objective),
        "the page renders with the objective:\n{dom}"
    );
    assert!(
        dom.contains("badge state-firing"),
        "the page shows a firing objective:\n{dom}"
    );
    assert!(
        dom.contains("class=\"disadvantaged\"") && dom.contains("class=\"ci\""),
        "the browser renders the groups with their interval bars:\n{dom}"
    );
    let artifacts: PathBuf = repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
        ],
        page,
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "the screenshot is a real PNG ({} bytes)",
        png.len()
    );
}

#[test]
fn quickstart_fires_an_objective_shows_it_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cport, aport) = (free_port(), free_port());
    let agent = binary("aims-agent");
    binary("aims-collector");
    let bin_dir = agent.parent().expect("binary dir").display().to_string();
    let data = dir.path().join("data").display().to_string();
    let (cport_s, aport_s) = (cport.to_string(), aport.to_string());
    let script = repo_root().join("quickstart.sh");
    let mut quickstart = Process::spawn(
        "quickstart",
        &script,
        &[],
        dir.path(),
        &[
            ("AIMS_QUICKSTART_BIN_DIR", &bin_dir),
            ("AIMS_QUICKSTART_DATA", &data),
            ("AIMS_QUICKSTART_COLLECTOR_PORT", &cport_s),
            ("AIMS_QUICKSTART_AGENT_PORT", &aport_s),
            ("AIMS_QUICKSTART_SWITCH_AFTER", "2s"),
            ("AIMS_QUICKSTART_WINDOW", "1s"),
            ("AIMS_QUICKSTART_EVALUATION_INTERVAL", "1s"),
            ("AIMS_QUICKSTART_RATE", "200"),
        ],
    );
    let collector = format!("http://127.0.0.1:{cport}");
    let logs = |q: &Process| {
        let mut all = format!("--- quickstart ---\n{}", tail(&q.log()));
        for name in ["collector", "agent", "simulator"] {
            let log =
                std::fs::read_to_string(format!("{data}/logs/{name}.log")).unwrap_or_default();
            all.push_str(&format!("\n--- {name} ---\n{}", tail(&log)));
        }
        all
    };

    // The README's list of what fires and what stays ok covers every objective of the demo.
    let ids = quickstart_ids();
    let (fire, stay_ok) = readme_promises(&ids);
    let mut named: Vec<String> = fire.iter().chain(&stay_ok).cloned().collect();
    named.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(
        named, all,
        "the README names each quickstart objective once, as firing or staying ok"
    );
    assert!(!fire.is_empty(), "the README says something fires");

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now_firing = firing(&collector);
        if fire.iter().all(|id| now_firing.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the README's {fire:?} did not all fire within 120 s (firing: {now_firing:?})\n{}",
            logs(&quickstart)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The others are ok and never fired (the counter counts every start of firing).
    for (id, state) in states(&collector) {
        if stay_ok.contains(&id) {
            assert_eq!(
                state,
                "ok",
                "the README says {id} stays ok\n{}",
                logs(&quickstart)
            );
            assert_eq!(
                breaches(&collector, &id),
                Some(0.0),
                "{id} never fired\n{}",
                logs(&quickstart)
            );
        }
    }
    let fired = fire[0].clone();

    let page = format!("{collector}/");
    let html = get_text(&page).expect("the status page answers");
    assert!(
        html.contains(&fired) && html.contains("state-firing"),
        "{html}"
    );
    // The page says why: the disadvantaged group of the parity objective, and income as a
    // drifted feature of the income-stability one.
    assert!(
        html.contains("disadvantaged: <strong class=\"disadvantaged\">F</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"feature\"><td>income</td>"),
        "{html}"
    );
    check_in_browser(&page, &fired);

    let pids = child_pids(&quickstart.log());
    assert_eq!(
        pids.len(),
        3,
        "the script names its three processes\n{}",
        logs(&quickstart)
    );
    let status = quickstart.stop_with("INT").expect("the script ran");
    assert!(
        status.success(),
        "Ctrl-C exits 0, got {status}\n{}",
        logs(&quickstart)
    );
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} ({pid}) is still running after Ctrl-C");
    }
    let out = quickstart.log();
    for name in ["simulator", "agent", "collector"] {
        assert!(out.contains(&format!("{name} stopped")), "{out}");
    }
    let value: Option<Value> = get_json(&format!("{collector}/healthz"));
    assert!(value.is_none(), "the collector no longer answers");
    // The demo is consistent with itself: no objective names a receiver it cannot deliver to.
    let log = std::fs::read_to_string(format!("{data}/logs/collector.log")).unwrap_or_default();
    assert!(
        !log.is_empty() && !log.contains("go nowhere"),
        "the collector's log warns of undeliverable alerts:\n{}",
        tail(&log)
    );
    // Logs written to a file carry no ANSI colour codes.
    for name in ["collector", "agent", "simulator"] {
        let log = std::fs::read_to_string(format!("{data}/logs/{name}.log")).unwrap_or_default();
        assert!(
            !log.contains('\u{1b}'),
            "{name}.log has terminal escape codes:\n{}",
            tail(&log)
        );
    }
}
