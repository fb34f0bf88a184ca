//! Collector benchmarks against the real (optimised) binary over loopback HTTP:
//!
//! - ingest: gzip-compressed 20-feature summaries from 50 concurrent clients, summaries/s;
//! - evaluation: 1,000 objectives over 1-hour windows fed by 100 agents' one-minute summaries,
//!   seconds per evaluation cycle (from the collector's own log) and resident memory.
//!
//! - on PostgreSQL (`AIMS_TEST_POSTGRES_URL`, e.g. from `.ci/postgres start DIR`): ingest into
//!   two replicas sharing one database, the evaluation cycle of 1,000 objectives, and the
//!   takeover time after kill -9 of the leader (5 tries).
//!
//! Run with `cargo bench -p aims-collector --bench collector`. Results go to stdout as the
//! lines BENCHMARKS.md quotes.

use std::time::{Duration, Instant};

use aims_core::wire::SummaryEnvelope;
use aims_core::ModelSchema;
use aims_testkit::collector::Collector;
use aims_testkit::fixtures::{minute, profile, schema, summary, Traffic};

const BUILT: &str = env!("CARGO_BIN_EXE_aims-collector");

/// The collector binary driven: this build's, or the copy `AIMS_BENCH_COLLECTOR` names (another
/// build's, so two collectors meet the same load generator in the same minutes).
fn bin() -> String {
    std::env::var("AIMS_BENCH_COLLECTOR").unwrap_or_else(|_| BUILT.to_owned())
}

const AGENTS: usize = 50;
const PER_RUN: usize = 10_000;
const RUNS: usize = 5;

fn gzip(envelope: &SummaryEnvelope) -> (Vec<u8>, usize) {
    let json = serde_json::to_vec(envelope).unwrap();
    (aims_runtime::gzip::encode(&json), json.len())
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
    post_spread(&[url.to_owned()], bodies)
}

/// [`post_all`], client `a` posting to `urls[a % urls.len()]` (agents spread over replicas).
///
/// The load generator runs on the same two cores as what it measures, so it is kept as lean as
/// `wrk`: every request (headers and pre-compressed body, one summary per POST as agents send
/// them) is built before the clock starts, and each of the `AGENTS` clients is one keep-alive
/// HTTP/1.1 connection on a single-threaded runtime that writes a request whole and reads the
/// answer (parsed by `httparse`, hyper's parser) before the next: no pipelining, no pool, no
/// wake-ups across threads. Returns (seconds, 429 answers); panics on any other status.
fn post_spread(urls: &[String], bodies: Vec<Vec<u8>>) -> (f64, usize) {
    let targets: Vec<(String, String)> = urls
        .iter()
        .map(|u| {
            let rest = u.strip_prefix("http://").expect("an http:// URL");
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (authority.to_owned(), path.to_owned())
        })
        .collect();
    // Client `a` posts bodies a, a + AGENTS, ...; its requests are built now, off the clock.
    let mut per_client: Vec<Vec<Vec<u8>>> = vec![Vec::new(); AGENTS];
    for (i, body) in bodies.into_iter().enumerate() {
        let (authority, path) = &targets[(i % AGENTS) % targets.len()];
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
             content-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        per_client[i % AGENTS].push(request);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = per_client
            .into_iter()
            .enumerate()
            .map(|(a, requests)| {
                let authority = targets[a % targets.len()].0.clone();
                tokio::spawn(client(authority, requests))
            })
            .collect();
        let mut throttled = 0;
        for t in tasks {
            throttled += t.await.unwrap();
        }
        (started.elapsed().as_secs_f64(), throttled)
    })
}

/// One client of [`post_spread`]: its requests in order on one connection, each retried after
/// 50 ms while answered 429. Returns the number of 429 answers.
async fn client(authority: String, requests: Vec<Vec<u8>>) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut throttled = 0;
    for request in &requests {
        loop {
            stream.write_all(request).await.unwrap();
            // Read until the status line, the headers and `content-length` bytes of body are in.
            let mut filled = 0;
            let (status, end) = loop {
                let n = stream.read(&mut buf[filled..]).await.unwrap();
                assert!(n > 0, "{authority} closed the connection");
                filled += n;
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut response = httparse::Response::new(&mut headers);
                if let httparse::Status::Complete(head) = response.parse(&buf[..filled]).unwrap() {
                    let length: usize = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                        .expect("a content-length");
                    let end = head + length;
                    assert!(end <= buf.len(), "answer of {end} B");
                    if filled >= end {
                        break (response.code.unwrap(), end);
                    }
                }
            };
            assert_eq!(filled, end, "one answer per request");
            match status {
                202 => break,
                429 => {
                    throttled += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                s => panic!(
                    "unexpected {s} from {authority}: {}",
                    String::from_utf8_lossy(&buf[..end])
                ),
            }
        }
    }
    throttled
}

/// The `[storage]` lines of a replica named `name` on the PostgreSQL database at `url`.
fn postgres_storage(url: &str, name: &str) -> String {
    format!(
        "backend = \"postgres\"\nurl = \"{url}\"\nreplica = \"{name}\"\nlock_timeout = \"3s\"\n"
    )
}

fn ingest(synchronous: &str) {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::prepare_sqlite(&bin(), dir.path(), "");
    ingest_into(vec![c], &format!("synchronous={synchronous}"), synchronous);
}

/// Ingest into two replicas on one fresh PostgreSQL database.
fn ingest_postgres(server: &str) {
    let database = aims_testkit::postgres::fresh_database(server);
    let url = database.url().to_owned();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let replicas = ["a", "b"]
        .iter()
        .zip(&dirs)
        .map(|(name, d)| {
            Collector::prepare_with(&bin(), d.path(), &postgres_storage(&url, name), "")
        })
        .collect();
    ingest_into(replicas, "postgres, 2 replicas", "full");
}

fn ingest_into(mut replicas: Vec<Collector>, label: &str, synchronous: &str) {
    for c in &mut replicas {
        c.extra_env.push((
            "AIMS_COLLECTOR__STORAGE__SYNCHRONOUS".into(),
            synchronous.into(),
        ));
        c.extra_env
            .push(("AIMS_COLLECTOR__EVALUATION__INTERVAL".into(), "30s".into()));
        c.start();
    }
    let c = &replicas[0];
    let urls: Vec<String> = replicas.iter().map(|c| c.url("/v1/summaries")).collect();
    let schema = model(aims_testkit::fixtures::MODEL);
    let profile = profile(&schema);
    assert!(c.put_profile(&profile, None).status().is_success());
    let base = summary(&schema, &profile, Traffic::Normal, 100, 1);
    let mut rates = Vec::new();
    let mut raw = 0;
    let mut sent = 0;
    // One base minute for all runs: ids stay distinct when a run crosses a minute boundary.
    let base_minute = minute();
    for run in 0..RUNS {
        let bodies: Vec<Vec<u8>> = (0..PER_RUN)
            .map(|i| {
                let window = base_minute - ((run * PER_RUN + i) / AGENTS) as i64 * 60_000;
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
        let (cpu, own) = (cpu_seconds(&replicas), process_cpu_seconds("self"));
        let (seconds, throttled) = post_spread(&urls, bodies);
        let cpu = cpu_seconds(&replicas) - cpu;
        let own = process_cpu_seconds("self") - own;
        let rate = PER_RUN as f64 / seconds;
        println!("ingest {label} run {run}: {PER_RUN} summaries in {seconds:.2} s = {rate:.0}/s, collector CPU {cpu:.2} s, load generator CPU {own:.2} s ({throttled} answered 429 and retried)");
        rates.push(rate);
    }
    println!(
        "ingest {label}: median {:.0} summaries/s over {RUNS} runs of {PER_RUN}; summary {raw} B JSON, {sent} B gzip; collector RSS {} MiB",
        median(rates),
        rss_kib(c.pid(), "VmHWM:") / 1024
    );
}

/// User + system CPU seconds the replicas' processes have used so far.
fn cpu_seconds(replicas: &[Collector]) -> f64 {
    replicas
        .iter()
        .map(|c| process_cpu_seconds(&c.pid().to_string()))
        .sum()
}

/// User + system CPU seconds process `pid` (or `self`) has used so far.
fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

/// kill -9 of the leader, 5 times: seconds until the other replica reports leading.
fn takeover(server: &str) {
    let database = aims_testkit::postgres::fresh_database(server);
    let url = database.url().to_owned();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut replicas: Vec<Collector> = ["a", "b"]
        .iter()
        .zip(&dirs)
        .map(|(name, d)| {
            let mut c =
                Collector::prepare_with(&bin(), d.path(), &postgres_storage(&url, name), "");
            c.extra_env
                .push(("AIMS_COLLECTOR__EVALUATION__INTERVAL".into(), "1s".into()));
            c.start();
            c
        })
        .collect();
    let leads = |c: &Collector| -> Option<bool> {
        let page = aims_testkit::collector::client()
            .get(c.url("/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        aims_testkit::prom::sample(&page, "aims_collector_leader", &[]).map(|v| v == 1.0)
    };
    let mut took = Vec::new();
    for attempt in 0..5 {
        let leader = aims_testkit::wait_until(Duration::from_secs(60), "one leader", || {
            match (leads(&replicas[0]), leads(&replicas[1])) {
                (Some(true), Some(false)) => Some(0),
                (Some(false), Some(true)) => Some(1),
                _ => None,
            }
        });
        let other = 1 - leader;
        replicas[leader].kill9();
        let killed = Instant::now();
        aims_testkit::wait_until(Duration::from_secs(60), "the other takes over", || {
            (leads(&replicas[other]) == Some(true)).then_some(())
        });
        let seconds = killed.elapsed().as_secs_f64();
        println!("takeover try {attempt}: {seconds:.3} s after kill -9");
        took.push(seconds);
        replicas[leader].start();
    }
    let max = took.iter().copied().fold(0.0, f64::max);
    println!(
        "takeover after kill -9 (evaluation.interval 1s, lock_timeout 3s: bound 5 s): median {:.3} s, max {max:.3} s over 5 tries",
        median(took)
    );
}

/// 1,000 objectives spread over `models` models (and 100 agents over the same models).
fn evaluation(models: usize, storage: &str) {
    let per_model = 1_000 / models;
    const MINUTES: i64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare_with(&bin(), dir.path(), storage, "");
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
        "evaluation{}: {} objectives, median {:.3} s per cycle (max {:.3} s over {} cycles); collector RSS {} MiB, peak {} MiB",
        if storage.is_empty() { "" } else { " on postgres" },
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
        evaluation(10, "");
        evaluation(100, "");
    }
    let postgres = std::env::var(aims_testkit::postgres::URL_VAR).ok();
    match &postgres {
        Some(server) => {
            if run("postgres-ingest") {
                ingest_postgres(server);
            }
            if run("postgres-evaluation") {
                let database = aims_testkit::postgres::fresh_database(server);
                evaluation(10, &postgres_storage(database.url(), "a"));
            }
            if run("takeover") {
                takeover(server);
            }
        }
        None => eprintln!(
            "skipping the PostgreSQL parts: {} is unset (Debian package postgresql; .ci/postgres start DIR)",
            aims_testkit::postgres::URL_VAR
        ),
    }
}
