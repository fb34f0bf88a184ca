//! Collector benchmarks against the real (optimised) binary over loopback HTTP:
//!
//! - ingest: gzip-compressed 20-feature summaries from 50 concurrent clients, summaries/s;
//! - evaluation: 1,000 objectives over 1-hour windows fed by 100 agents' one-minute summaries,
//!   seconds per evaluation cycle (from the collector's own log) and resident memory.
//!
//! Run with `cargo bench -p aims-collector --bench collector`. Results go to stdout as the
//! lines BENCHMARKS.md quotes.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aims_core::wire::SummaryEnvelope;
use aims_core::ModelSchema;
use aims_testkit::collector::Collector;
use aims_testkit::fixtures::{minute, profile, schema, summary, Traffic};

const BIN: &str = env!("CARGO_BIN_EXE_aims-collector");

const AGENTS: usize = 50;
const PER_RUN: usize = 10_000;
const RUNS: usize = 3;

fn gzip(envelope: &SummaryEnvelope) -> (Vec<u8>, usize) {
    let json = serde_json::to_vec(envelope).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json).unwrap();
    (gz.finish().unwrap(), json.len())
}

fn model(name: &str) -> ModelSchema {
    let mut s = schema(19);
    s.name = name.to_owned();
    s
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Posts every body with `AGENTS` concurrent clients; returns (seconds, 429 answers).
fn post_all(url: &str, bodies: Vec<Vec<u8>>) -> (f64, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let bodies = Arc::new(bodies);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for a in 0..AGENTS {
            let (client, bodies, url) = (client.clone(), bodies.clone(), url.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut throttled = 0;
                for body in bodies.iter().skip(a).step_by(AGENTS) {
                    loop {
                        let r = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("content-encoding", "gzip")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        match r.status().as_u16() {
                            202 => break,
                            429 => {
                                throttled += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            s => panic!("unexpected {s}: {}", r.text().await.unwrap_or_default()),
                        }
                    }
                }
                throttled
            }));
        }
        let mut throttled = 0;
        for t in tasks {
            throttled += t.await.unwrap();
        }
        (started.elapsed().as_secs_f64(), throttled)
    })
}

fn ingest(synchronous: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(BIN, dir.path(), "");
    c.extra_env.push((
        "AIMS_COLLECTOR__STORAGE__SYNCHRONOUS".into(),
        synchronous.into(),
    ));
    c.extra_env
        .push(("AIMS_COLLECTOR__EVALUATION__INTERVAL".into(), "30s".into()));
    c.start();
    let schema = model(aims_testkit::fixtures::MODEL);
    let profile = profile(&schema);
    assert!(c.put_profile(&profile, None).status().is_success());
    let base = summary(&schema, &profile, Traffic::Normal, 100, 1);
    let mut rates = Vec::new();
    let mut raw = 0;
    let mut sent = 0;
    for run in 0..RUNS {
        let bodies: Vec<Vec<u8>> = (0..PER_RUN)
            .map(|i| {
                let window = minute() - ((run * PER_RUN + i) / AGENTS) as i64 * 60_000;
                let e = SummaryEnvelope::new(
                    &format!("agent-{}", i % AGENTS),
                    aims_testkit::fixtures::MODEL,
                    "1.0",
                    window,
                    60_000,
                    0,
                    base.clone(),
                );
                let (gz, len) = gzip(&e);
                raw = len;
                sent = gz.len();
                gz
            })
            .collect();
        let (seconds, throttled) = post_all(&c.url("/v1/summaries"), bodies);
        let rate = PER_RUN as f64 / seconds;
        println!("ingest synchronous={synchronous} run {run}: {PER_RUN} summaries in {seconds:.2} s = {rate:.0}/s ({throttled} answered 429 and retried)");
        rates.push(rate);
    }
    println!(
        "ingest synchronous={synchronous}: median {:.0} summaries/s over {RUNS} runs of {PER_RUN}; summary {raw} B JSON, {sent} B gzip; collector RSS {} MiB",
        median(rates),
        rss_kib(c.pid(), "VmHWM:") / 1024
    );
}

/// 1,000 objectives spread over `models` models (and 100 agents over the same models).
fn evaluation(models: usize) {
    let per_model = 1_000 / models;
    const MINUTES: i64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(BIN, dir.path(), "");
    let metrics = ["psi", "ks", "wasserstein", "jensen_shannon", "missing_rate"];
    let mut yaml = String::from("policy: \"benchmark\"\nobjectives:\n");
    for m in 0..models {
        for o in 0..per_model {
            let (metric, selector) = match o % 4 {
                0 => (
                    "demographic_parity_ratio",
                    "    attribute: gender\n".to_owned(),
                ),
                1 => ("accuracy", String::new()),
                _ => (
                    metrics[o % metrics.len()],
                    format!(
                        "    feature: {}\n",
                        if o % 19 == 0 {
                            "income".to_owned()
                        } else {
                            format!("x{}", o % 19)
                        }
                    ),
                ),
            };
            yaml.push_str(&format!(
                "  - id: m{m}-o{o}\n    title: t\n    model: model-{m}\n    metric: {metric}\n{selector}    target: \">= 0\"\n    window: 1h\n    min_samples: 10\n    for: 5m\n    owner: o\n"
            ));
        }
    }
    std::fs::write(dir.path().join("objectives.yaml"), yaml).unwrap();
    c.extra_env
        .push(("AIMS_COLLECTOR__EVALUATION__INTERVAL".into(), "2s".into()));
    c.extra_env.push((
        "AIMS_COLLECTOR__EVALUATION__STALE_AFTER".into(),
        "1h".into(),
    ));
    c.extra_env
        .push(("AIMS_COLLECTOR__LOGGING__FORMAT".into(), "json".into()));
    c.extra_env.push((
        "RUST_LOG".into(),
        "info,aims_collector::evaluate=debug".into(),
    ));
    c.start();
    let mut bodies = Vec::new();
    for m in 0..models {
        let schema = model(&format!("model-{m}"));
        let profile = profile(&schema);
        let r = aims_testkit::collector::client()
            .put(c.url(&format!("/v1/models/model-{m}/reference")))
            .json(&profile)
            .send()
            .unwrap();
        assert!(r.status().is_success());
        let s = summary(&schema, &profile, Traffic::Biased, 100, m as u64);
        for agent in 0..100 / models {
            for k in 0..MINUTES {
                let e = SummaryEnvelope::new(
                    &format!("agent-{m}-{agent}"),
                    &schema.name,
                    "1.0",
                    minute() - k * 60_000,
                    60_000,
                    0,
                    s.clone(),
                );
                bodies.push(gzip(&e).0);
            }
        }
    }
    let n = bodies.len();
    let (seconds, _) = post_all(&c.url("/v1/summaries"), bodies);
    println!("evaluation: fed {n} one-minute summaries (100 agents x 60 min, {models} models) in {seconds:.1} s");
    let pid = c.pid();
    let cycles = |c: &Collector| -> Vec<f64> {
        c.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["fields"]["message"] == "evaluation cycle"
                    && v["fields"]["objectives"] == models * per_model
            })
            .filter_map(|v| v["fields"]["seconds"].as_f64())
            .collect()
    };
    let skip = cycles(&c).len();
    aims_testkit::wait_until(Duration::from_secs(300), "10 evaluation cycles", || {
        (cycles(&c).len() >= skip + 10).then_some(())
    });
    let measured: Vec<f64> = cycles(&c).into_iter().skip(skip).collect();
    let max = measured.iter().copied().fold(0.0, f64::max);
    println!(
        "evaluation: {} objectives, median {:.3} s per cycle (max {:.3} s over {} cycles); collector RSS {} MiB, peak {} MiB",
        models * per_model,
        median(measured.clone()),
        max,
        measured.len(),
        rss_kib(pid, "VmRSS:") / 1024,
        rss_kib(pid, "VmHWM:") / 1024,
    );
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if run("ingest") {
        ingest("full");
        ingest("normal");
    }
    if run("evaluation") {
        evaluation(10);
        evaluation(100);
    }
}
