//! A real Alertmanager (Debian's `prometheus-alertmanager`) for the alert tests: started on a
//! loopback port chosen at run time, with its own storage and no clustering.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{get_json, get_text, require_tool, wait_until, Process};

/// The Alertmanager binary and amtool, or `None` (skip) off CI when the package is missing.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let am = require_tool("prometheus-alertmanager", "prometheus-alertmanager")?;
    let amtool = require_tool("amtool", "prometheus-alertmanager")?;
    Some((am, amtool))
}

/// Starts an Alertmanager on 127.0.0.1:`port` with its own storage under `dir`, no clustering,
/// and a configuration `amtool check-config` accepted; waits until it is ready.
pub fn start(tools: &(PathBuf, PathBuf), dir: &Path, port: u16) -> Process {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .expect("alertmanager config");
    let checked = Command::new(&tools.1)
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("amtool runs");
    assert!(
        checked.status.success(),
        "amtool check-config: {}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let storage = dir.join("alertmanager-data");
    std::fs::create_dir_all(&storage).expect("alertmanager storage");
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", storage.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_owned(),
    ];
    let am = Process::spawn(
        "alertmanager",
        &tools.0,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir,
        &[],
    );
    wait_until(Duration::from_secs(30), "Alertmanager to be ready", || {
        get_text(&format!("http://127.0.0.1:{port}/-/ready"))
    });
    am
}

/// The alert of `objective` Alertmanager holds as active (its `endsAt` not yet passed), if any.
pub fn active_alert(am_url: &str, objective: &str) -> Option<Value> {
    get_json(&format!("{am_url}/api/v2/alerts"))?
        .as_array()?
        .iter()
        .find(|a| a["labels"]["objective"] == objective)
        .filter(|a| {
            let ends = a["endsAt"].as_str().and_then(rfc3339_ms);
            ends.is_none_or(|e| e > aims_testkit::fixtures::now_ms())
        })
        .cloned()
}

/// Milliseconds of an RFC 3339 time as Alertmanager prints it (`2026-11-29T06:40:01.123Z`).
pub fn rfc3339_ms(t: &str) -> Option<i64> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let frac_ms = format!("{:0<3}", &frac[..frac.len().min(3)])
        .parse::<i64>()
        .ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h[0]) * 60 + h[1]) * 60_000 + h[2] * 1000 + frac_ms)
}
