//! Reports that scale (issue 19): a log of `BENCH_RECORDS` evidence records (default
//! 10,000,000) spread over a year, with report snapshots kept every 10,000 records as the
//! collector keeps them; then the report over its last week, the evidence log's open (the
//! tree's right edge rebuilt from every record) and a pack's tree proofs.
//!
//! `cargo bench -p aims-collector --bench report` (BENCH_RECORDS, BENCH_WEEKS, BENCH_DIR to keep the
//! database elsewhere; BENCH_FULL=1 also times the report with no snapshots, i.e. the scan
//! from record 1, and deletes the snapshots). It writes a multi-gigabyte database to a
//! temporary folder, removed after; BENCH_DB=FILE keeps it there instead (and reuses it when
//! it exists, skipping the generation; delete it by hand). BENCH_REPORT_RUNS (default 5) sets
//! the report runs; BENCH_TREE=0 skips the log open and pack proof timings; BENCH_REPORT_OUT=FILE
//! writes the first report's JSON there.

use std::time::{Duration, Instant};

use aims_collector::config::Synchronous;
use aims_collector::evidence::{Entry, EvidenceLog};
use aims_collector::metrics::Metrics;
use aims_collector::services::report::{self, snapshot, Request};
use aims_collector::services::{pack_tree, report::period_records};
use aims_collector::store::{Store, StoredCheckpoint};
use aims_core::checkpoint::SigningKey;
use aims_core::evidence::payload::{Evaluation, ObjectiveVersion, Payload, Transition, Window};
use aims_core::lifecycle::State;
use aims_core::metrics::Measured;
use aims_core::objective::Objective;
use serde_json::json;

const OBJECTIVES: usize = 100;
const WEEK_MS: i64 = 7 * 24 * 3_600_000;
const YEAR_MS: i64 = 52 * WEEK_MS;

/// CPU seconds of this process so far (user + system), from /proc.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set of this process since start or the last [`reset_peak_rss`], MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak resident set to the current one (Linux: `5` into `clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn definition(id: &str) -> Objective {
    serde_json::from_value(json!({"id": id, "title": id, "model": "m", "metric": "demographic_parity_ratio",
           "attribute": "gender", "target": {"op": ">=", "threshold": 0.8},
           "window": 3600, "min_samples": 10, "for": 0, "severity": "critical", "owner": "owner@example.com",
           "rationale": "", "plan": {"actions": "a", "resources": "r", "due": "2027", "evaluation": "e"},
           "controls": ["A.6.2.6"], "notify": []}))
    .unwrap()
}

fn evaluation(id: &str, i: u64) -> Entry {
    let breached = i % 97 < 3;
    Entry::objective(
        id,
        Payload::Evaluation(Evaluation {
            objective: id.into(),
            version: "v1".into(),
            model: "m".into(),
            metric: "demographic_parity_ratio".into(),
            selector: Default::default(),
            value: Some(Measured::Value(if breached { 0.7 } else { 0.9 })),
            target: ">= 0.8".into(),
            warning: None,
            verdict: if breached { "breached" } else { "met" }.into(),
            samples: Some(1_000),
            min_samples: 10,
            window: Window {
                from_ms: 0,
                to_ms: 0,
            },
            model_versions: Some(vec!["1".into()]),
            profile_hash: None,
            state: State::Ok,
            interval: None,
            reading: None,
            too_small: Default::default(),
            why: None,
        }),
    )
}

fn transition(id: &str, from: State, to: State, at_ms: i64) -> Entry {
    Entry::objective(
        id,
        Payload::Transition(Transition {
            objective: id.into(),
            version: "v1".into(),
            from,
            to,
            at_ms,
            value: None,
            target: ">= 0.8".into(),
            severity: "critical".into(),
        }),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let records: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let full = std::env::var("BENCH_FULL").is_ok_and(|v| v == "1");
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    // BENCH_DB keeps the database (and reuses it when it exists, skipping the generation),
    // so a report can be measured again after a change; delete it by hand afterwards.
    let kept = std::env::var("BENCH_DB").ok().map(std::path::PathBuf::from);
    let db = kept
        .clone()
        .unwrap_or_else(|| dir.path().join("collector.db"));
    let reuse = kept.is_some() && db.exists();
    let report_runs: usize = std::env::var("BENCH_REPORT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tree_too = std::env::var("BENCH_TREE").map_or(true, |v| v != "0");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&db, Synchronous::Normal).await.unwrap();
        let ids: Vec<String> = (0..OBJECTIVES).map(|i| format!("objective-{i:03}")).collect();
        let start_ms = 1_735_689_600_000i64; // 2025-01-01
        // BENCH_WEEKS shortens the span so a smaller log has a 10M-record year's weekly volume
        // (10,000,000 / 52 = 192,308 records a week): BENCH_RECORDS=2000000 BENCH_WEEKS=10.4.
        let span_ms = std::env::var("BENCH_WEEKS")
            .ok()
            .and_then(|w| w.parse::<f64>().ok())
            .map_or(YEAR_MS, |w| (w * WEEK_MS as f64) as i64);
        let step_ms = span_ms / (records / OBJECTIVES as u64).max(1) as i64;

        // The log: one batch of evaluations (one per objective) per step, over a year, with
        // an alert firing and resolving now and then; GROUP steps (10,000 records) per
        // transaction, each step at its own time, through the log's own append path; a
        // snapshot (and its `report_snapshot` record) every 10,000 records, as the collector
        // keeps them after checkpoints.
        const GROUP: u64 = 100;
        let at = if reuse {
            let (head, _) = store.evidence_head().await.unwrap().expect("a kept log");
            let row = store.evidence_record(head).await.unwrap().unwrap();
            println!("reusing {} ({head} records)", db.display());
            row.at_ms
        } else {
            let (t, c) = (Instant::now(), cpu());
            let log = EvidenceLog::open(store.clone(), Metrics::new()).await.unwrap();
            let versions = ids
                .iter()
                .map(|id| {
                    Entry::objective(
                        id,
                        Payload::ObjectiveVersion(ObjectiveVersion {
                            objective: id.clone(),
                            version: "v1".into(),
                            previous_version: None,
                            file_version: "f".into(),
                            policy: "P".into(),
                            definition: definition(id),
                        }),
                    )
                })
                .collect();
            log.append(versions, &[], start_ms).await.unwrap();
            let mut at = start_ms;
            let mut i = 0u64;
            let mut appended = OBJECTIVES as u64;
            let (mut append_s, mut snapshot_s) = (Vec::new(), 0.0);
            while appended < records {
                let mut batches = Vec::with_capacity(GROUP as usize);
                while appended < records && batches.len() < GROUP as usize {
                    at += step_ms;
                    i += 1;
                    let mut entries: Vec<Entry> = ids.iter().map(|id| evaluation(id, i)).collect();
                    if i.is_multiple_of(500) {
                        entries.push(transition(&ids[0], State::Ok, State::Firing, at));
                    } else if i % 500 == 3 {
                        entries.push(transition(&ids[0], State::Firing, State::Resolved, at));
                    }
                    appended += entries.len() as u64;
                    batches.push((at, entries));
                }
                let a = Instant::now();
                let (head, _) = log.append_batches(&batches).await.unwrap();
                append_s.push(a.elapsed().as_secs_f64());
                let s = Instant::now();
                snapshot::refresh(&log, &store, head, at).await.unwrap();
                snapshot_s += s.elapsed().as_secs_f64();
                if i.is_multiple_of(10 * GROUP) {
                    eprintln!("  {appended} records, {:.0} s", t.elapsed().as_secs_f64());
                }
            }
            let (wall, cpu_s) = (t.elapsed().as_secs_f64(), cpu() - c);
            println!(
                "generate {appended} records over {:.1} weeks ({OBJECTIVES} per step, {GROUP} steps per transaction, snapshots every {}): {wall:.1} s wall, {cpu_s:.1} CPU-s; median transaction {:.1} ms; snapshots {snapshot_s:.1} s in all; peak RSS {:.0} MiB",
                span_ms as f64 / WEEK_MS as f64,
                snapshot::EVERY,
                median(append_s) * 1e3,
                peak_rss_mib()
            );
            at
        };
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
        println!("database: {:.2} GB", size as f64 / 1e9);

        // The report over the last week: wall, CPU and the peak RSS of the runs alone.
        let req = Request {
            from_ms: at - WEEK_MS,
            to_ms: at,
            model: None,
            now_ms: at + 1,
            interval: Duration::from_millis(step_ms as u64),
            config_path: None,
        };
        reset_peak_rss();
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for run in 0..report_runs {
            let (t, c) = (Instant::now(), cpu());
            let r = report::build(&store, &req).await.unwrap();
            walls.push(t.elapsed().as_secs_f64());
            cpus.push(cpu() - c);
            println!(
                "  report run {}: {:.3} s wall, {:.3} CPU-s",
                run + 1,
                walls[run],
                cpus[run]
            );
            if run == 0 {
                // BENCH_REPORT_OUT=FILE writes the first run's JSON, to compare before and
                // after a change on the same log (`cmp`).
                if let Ok(out) = std::env::var("BENCH_REPORT_OUT") {
                    std::fs::write(&out, report::Format::Json.render(&r)).unwrap();
                }
                println!(
                    "  report: {} records in the week, {} objectives, chain {} -> {}",
                    r.document.records,
                    r.objectives.len(),
                    r.document.chain_start.seq,
                    r.document.chain_end.seq
                );
            }
        }
        println!(
            "report over the last week (median of {report_runs}): {:.3} s wall, {:.3} CPU-s; peak RSS during the reports {:.0} MiB",
            median(walls),
            median(cpus),
            peak_rss_mib()
        );
        let (anchor, _) = period_records(&store, req.from_ms, req.to_ms).await.unwrap();
        let s = snapshot::state_at(&store, anchor.seq).await.unwrap();
        println!("  its start state folded {} records after the nearest snapshot", s.folded);
        if !tree_too {
            store.close().await;
            return;
        }

        // Opening the log: the tree's right edge from every record, then from the edge kept
        // with a checkpoint.
        let (t, c) = (Instant::now(), cpu());
        let reopened = EvidenceLog::open(store.clone(), Metrics::new()).await.unwrap();
        println!(
            "evidence log open, no checkpoint ({} records, tree edge rebuilt from every record): {:.1} s wall, {:.1} CPU-s",
            reopened.tree_head("o").size,
            t.elapsed().as_secs_f64(),
            cpu() - c
        );
        let key = SigningKey::from_seed("bench", [1; 32]).unwrap();
        let edge = reopened.frontier();
        let (t, c) = (Instant::now(), cpu());
        let note = reopened.tree_head("bench").sign(&key).unwrap();
        let sign_s = (t.elapsed().as_secs_f64(), cpu() - c);
        store
            .put_checkpoint(&StoredCheckpoint {
                size: edge.size(),
                at_ms: at,
                note,
                peaks: aims_collector::tree::peaks_text(&edge),
            })
            .await
            .unwrap();
        println!(
            "checkpoint at {} records (root from the kept edge + Ed25519 signature): {:.1} us wall",
            edge.size(),
            sign_s.0 * 1e6
        );
        let (t, c) = (Instant::now(), cpu());
        EvidenceLog::open(store.clone(), Metrics::new()).await.unwrap();
        println!(
            "evidence log open from the checkpoint's kept edge: {:.3} s wall, {:.3} CPU-s",
            t.elapsed().as_secs_f64(),
            cpu() - c
        );

        // A pack's tree proofs for the week (reads every leaf hash).
        let end = anchor.seq + 1;
        let (t, c) = (Instant::now(), cpu());
        let proofs = pack_tree::build(&store, &key, "bench", anchor.seq, end.max(anchor.seq), None)
            .await
            .unwrap();
        println!(
            "pack tree proofs (all leaf hashes read): {:.1} s wall, {:.1} CPU-s, {} peaks",
            t.elapsed().as_secs_f64(),
            cpu() - c,
            proofs.prefix_peaks.len()
        );

        if full {
            sqlx_clear(&db).await;
            let store = Store::open(&db, Synchronous::Normal).await.unwrap();
            let (t, c) = (Instant::now(), cpu());
            report::build(&store, &req).await.unwrap();
            println!(
                "report with no snapshots (scan from record 1): {:.1} s wall, {:.1} CPU-s",
                t.elapsed().as_secs_f64(),
                cpu() - c
            );
            store.close().await;
        }
        store.close().await;
    });
}

/// Deletes the report snapshots (derived data), for the scan-from-record-1 comparison.
async fn sqlx_clear(db: &std::path::Path) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM report_snapshots")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}
