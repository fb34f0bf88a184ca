//! Agent benchmarks (`cargo bench -p aims-agent --bench agent`), reported in BENCHMARKS.md:
//!
//! 1. embedded `Recorder::record` throughput, and the windowing task's end-to-end rate;
//! 2. HTTP ingest of NDJSON batches of 1,000 events with 20 features into the real
//!    `aims-agent run` binary, from a load generator in this process, with the agent's CPU time
//!    and peak RSS read from /proc;
//! 3. the idle agent's RSS with the same 20-feature schema;
//! 4. the same HTTP ingest as KServe-style CloudEvents: each inference a binary-mode request
//!    event (one v2 tensor of 1,000 rows × 15 numeric features, BYTES tensors for the
//!    categoricals and attributes) and its response event, joined by the agent.
//!
//! `cargo bench -p aims-agent --bench agent -- cloudevents` runs only the HTTP comparison
//! (native NDJSON, then CloudEvents); `-- http` only the native NDJSON ingest; `-- shards` only the embedded figures: the queue, then
//! per-thread recording with 1 and 2 recording threads (`BENCH_SHARD_EVENTS` per thread, default 1,000,000).
//!
//! `-- decode` runs only the HTTP handler's decoding on one thread (for callgrind); `-- files DIR`
//! writes the agent's config, profile and the HTTP bodies into DIR, for runs of the agent
//! binary outside the bench (callgrind on the whole agent).
//!
//! Each measurement is repeated and the median printed. Environment knobs: `BENCH_SECONDS`
//! (HTTP run length, default 8), `BENCH_ROUNDS` (default 3), `BENCH_CLIENTS` (default 4),
//! `BENCH_QUEUE_EVENTS` (the agent's `window.queue_events`, default 1,000,000), `BENCH_AGENT_BIN`
//! (the agent binary the HTTP runs start, default this build's). The HTTP rate counts events
//! folded into a summary by the end of the load (`aims_agent_events_summarised_total`), not
//! events accepted and still queued.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aims_agent::config::AgentConfig;
use aims_agent::metrics::AgentMetrics;
use aims_agent::Monitor;
use aims_core::profile::ProfileBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NUMERIC: usize = 15;
const CATEGORICAL: usize = 5;
const BATCH: usize = 1000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn config_text(dir: &Path, profile: Option<&Path>) -> String {
    let mut features = String::new();
    for i in 0..NUMERIC {
        features.push_str(&format!("  {{ name = \"n{i}\", kind = \"numeric\" }},\n"));
    }
    for i in 0..CATEGORICAL {
        features.push_str(&format!(
            "  {{ name = \"c{i}\", kind = \"categorical\" }},\n"
        ));
    }
    let reference = profile.map(|p| format!("path = {p:?}")).unwrap_or_default();
    format!(
        r#"agent_id = "bench"
[model]
name = "bench-20"
task = "binary"
features = [
{features}]
attributes = [
  {{ name = "gender", groups = ["F", "M"], reference_group = "M" }},
  {{ name = "age_band", groups = ["18-29", "30-39", "40-49", "50-64", "65+"] }},
]
[reference]
{reference}
[server]
listen = "127.0.0.1:0"
[window]
length = "60s"
queue_events = {queue}
[ship]
collector_url = ""
[spool]
dir = {spool:?}
[cloudevents]
input = "input-0"
columns = [{columns}]
[cloudevents.prediction]
label = "predict"
score = "predict_proba"
"#,
        spool = dir.join("spool"),
        queue = env_or("BENCH_QUEUE_EVENTS", 1_000_000),
        columns = (0..NUMERIC)
            .map(|i| format!("\"n{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn event_json(rng: &mut StdRng, id: u64) -> serde_json::Value {
    let mut features = serde_json::Map::new();
    for i in 0..NUMERIC {
        // Three decimals, like real feature data (the credit example has 2 to 4).
        let x = (rng.gen::<f64>() * 100_000.0).round() / 1000.0;
        features.insert(format!("n{i}"), x.into());
    }
    for i in 0..CATEGORICAL {
        features.insert(
            format!("c{i}"),
            format!("cat{}", rng.gen_range(0..8)).into(),
        );
    }
    let score = (rng.gen::<f64>() * 10_000.0).round() / 10_000.0;
    serde_json::json!({
        "id": format!("e{id}"),
        "features": features,
        "attributes": {"gender": if rng.gen_bool(0.5) { "F" } else { "M" }, "age_band": "30-39"},
        "prediction": {"label": u8::from(score >= 0.5), "score": score},
        "label": u8::from(rng.gen_bool(0.6)),
        "latency_ms": (rng.gen::<f64>() * 300.0).round() / 10.0,
    })
}

/// Writes config + profile into a temp dir; returns (dir, config path).
fn setup() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("aims-agent-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("bare.toml");
    std::fs::write(&bare, config_text(&dir, None)).unwrap();
    let cfg = AgentConfig::load(&bare).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut builder = ProfileBuilder::new(&cfg.model);
    for i in 0..20_000 {
        let raw = serde_json::from_value(event_json(&mut rng, i)).unwrap();
        builder.add(&cfg.model.validate(raw, 0).unwrap());
    }
    let profile = dir.join("profile.json");
    std::fs::write(&profile, serde_json::to_vec(&builder.finish()).unwrap()).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(&config, config_text(&dir, Some(&profile))).unwrap();
    (dir, config)
}

fn embedded(config: &Path, rounds: u64) {
    let cfg = AgentConfig::load(config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let monitor = rt
        .block_on(Monitor::start(&cfg, AgentMetrics::new()))
        .unwrap();
    let recorder = monitor.recorder();
    let mut rng = StdRng::seed_from_u64(2);
    let now = aims_agent::window::now_ms();
    let n = 200_000;
    let (mut call_rates, mut end_to_end) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let events: Vec<_> = (0..n)
            .map(|i| {
                let raw = serde_json::from_value(event_json(&mut rng, i)).unwrap();
                recorder.schema().validate(raw, now).unwrap()
            })
            .collect();
        let started = Instant::now();
        let mut dropped = 0;
        for e in events {
            if !recorder.record(e) {
                dropped += 1;
            }
        }
        let calls = started.elapsed();
        while recorder.metrics().queue_events.get() > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let total = started.elapsed();
        assert_eq!(dropped, 0, "queue big enough for the round");
        call_rates.push(n as f64 / calls.as_secs_f64());
        end_to_end.push(n as f64 / total.as_secs_f64());
    }
    rt.block_on(monitor.shutdown());

    // The summary update alone, on this thread: the windowing task's per-event work.
    let profile: aims_core::ReferenceProfile =
        serde_json::from_slice(&std::fs::read(cfg.reference.path.as_ref().unwrap()).unwrap())
            .unwrap();
    let events: Vec<_> = (0..n)
        .map(|i| {
            let raw = serde_json::from_value(event_json(&mut rng, i)).unwrap();
            cfg.model.validate(raw, now).unwrap()
        })
        .collect();
    let mut summary = aims_core::WindowSummary::new(&cfg.model, &profile);
    let started = Instant::now();
    for e in &events {
        summary.record(&cfg.model, &profile, e);
    }
    let record_only = n as f64 / started.elapsed().as_secs_f64();
    // The HTTP path's per-event work on one thread: parse an NDJSON batch, then validate.
    let mut body = Vec::new();
    for i in 0..BATCH as u64 {
        serde_json::to_writer(&mut body, &event_json(&mut rng, i)).unwrap();
        body.push(b'\n');
    }
    let reps = 50;
    let started = Instant::now();
    let mut parsed = Vec::new();
    for _ in 0..reps {
        parsed = aims_agent::ingest::parse_events(
            aims_agent::ingest::BodyFormat::Ndjson,
            &body,
            &cfg.limits,
        )
        .unwrap();
    }
    let parse_ns = started.elapsed().as_nanos() as f64 / (reps * BATCH) as f64;
    let started = Instant::now();
    let mut valid = 0;
    for _ in 0..reps {
        for (_, raw) in parsed.clone() {
            valid += usize::from(cfg.model.validate(raw.unwrap(), now).is_ok());
        }
    }
    let validate_ns = started.elapsed().as_nanos() as f64 / (reps * BATCH) as f64;
    assert_eq!(valid, reps * BATCH);
    let fast = aims_agent::ingest::FastDecoder::new(&cfg.model);
    let started = Instant::now();
    for _ in 0..reps {
        let items = aims_agent::ingest::decode_events(
            aims_agent::ingest::BodyFormat::Ndjson,
            &body,
            &cfg.model,
            &fast,
            &cfg.limits,
            now,
        )
        .unwrap();
        assert!(items.iter().all(|(_, e)| e.is_ok()));
    }
    let fast_ns = started.elapsed().as_nanos() as f64 / (reps * BATCH) as f64;
    println!("per event on one thread: NDJSON decode + validate on the agent's fast path {fast_ns:.0} ns");
    println!("per event on one thread, general path: NDJSON parse {parse_ns:.0} ns, validate {validate_ns:.0} ns (incl. clone); summary record {:.0} ns", 1e9 / record_only);
    println!(
        "embedded record() calls:              median {:>12.0} events/s",
        median(call_rates)
    );
    println!(
        "embedded record() end to end (summarised): median {:>12.0} events/s",
        median(end_to_end)
    );
    println!(
        "WindowSummary::record alone, one thread:   {:>12.0} events/s",
        record_only
    );
}

/// Per-thread recording ([`aims_agent::shard`]) with 1 and 2 recording threads: each thread
/// records its events through a shard of its own (one `Shard::record` call per event), and the
/// round ends when `flush` has taken every shard's summary into the window and spooled it. The
/// rate is events over that wall time; CPU is the process's utime + stime over the same span
/// (both recording threads and the windowing task).
fn embedded_shards(config: &Path, rounds: u64) {
    let cfg = AgentConfig::load(config).unwrap();
    let per_thread = env_or("BENCH_SHARD_EVENTS", 1_000_000) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let monitor = rt
        .block_on(Monitor::start(&cfg, AgentMetrics::new()))
        .unwrap();
    let recorder = monitor.recorder();
    let mut rng = StdRng::seed_from_u64(3);
    let now = aims_agent::window::now_ms();
    // 50,000 distinct events, cycled.
    let distinct: Vec<aims_core::Event> = (0..50_000)
        .map(|i| {
            let raw = serde_json::from_value(event_json(&mut rng, i)).unwrap();
            recorder.schema().validate(raw, now).unwrap()
        })
        .collect();
    for threads in [1usize, 2] {
        embedded_shard_columns(&rt, &recorder, &distinct, threads, per_thread, rounds);
        let (mut rates, mut cpu_per_m) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let inputs: Vec<Vec<aims_core::Event>> = (0..threads)
                .map(|t| {
                    (0..per_thread)
                        .map(|i| distinct[(i * threads + t) % distinct.len()].clone())
                        .collect()
                })
                .collect();
            let (rate, cpu) = shard_round(
                &rt,
                &recorder,
                inputs,
                threads * per_thread,
                |shard, events| {
                    for e in events {
                        shard.record(e);
                    }
                },
            );
            rates.push(rate);
            cpu_per_m.push(cpu);
        }
        println!(
            "embedded shards, {threads} recording thread(s), end to end (flushed): median {:>12.0} events/s, {:.2} CPU-s per million events (rounds: {})",
            median(rates.clone()),
            median(cpu_per_m),
            rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / ")
        );
    }
    rt.block_on(monitor.shutdown());
}

/// One timed round of the embedded-shard benches: each input recorded on its own thread
/// through its own shard (`record`), then the flush; the events per second (wall) and the
/// CPU-seconds per million events, with a check that all `n` events were summarised.
fn shard_round<T: Send>(
    rt: &tokio::runtime::Runtime,
    recorder: &aims_agent::Recorder,
    inputs: Vec<T>,
    n: usize,
    record: impl Fn(&aims_agent::shard::Shard, T) + Sync,
) -> (f64, f64) {
    let summarised = recorder.metrics().events_summarised.get();
    let cpu = cpu_seconds(std::process::id());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for input in inputs {
            let (shard, record) = (recorder.shard(), &record);
            scope.spawn(move || record(&shard, input));
        }
    });
    assert!(rt.block_on(recorder.flush()));
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(std::process::id()) - cpu;
    assert_eq!(
        recorder.metrics().events_summarised.get() - summarised,
        n as u64,
        "every event summarised"
    );
    let n = n as f64;
    (n / wall, cpu / n * 1e6)
}

/// [`embedded_shards`] through the batch path: each recording thread hands its shard column
/// batches of 4,096 rows (`ShardBatch::record_columns`), filled before the clock starts (as
/// a caller holding columns, an Arrow table say, has them); the windowing, the label buffer's
/// ids and the flush are the same.
fn embedded_shard_columns(
    rt: &tokio::runtime::Runtime,
    recorder: &aims_agent::Recorder,
    distinct: &[aims_core::Event],
    threads: usize,
    per_thread: usize,
    rounds: u64,
) {
    use aims_core::summary::ColumnBuffers;
    const BATCH: usize = 4096;
    let (mut rates, mut cpu_per_m) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let inputs: Vec<(Vec<aims_core::Event>, Vec<ColumnBuffers>)> = (0..threads)
            .map(|t| {
                let events: Vec<aims_core::Event> = (0..per_thread)
                    .map(|i| distinct[(i * threads + t) % distinct.len()].clone())
                    .collect();
                let batches = events
                    .chunks(BATCH)
                    .map(|chunk| {
                        let mut b = ColumnBuffers::new(recorder.schema());
                        chunk.iter().for_each(|e| b.push(e, None));
                        b
                    })
                    .collect();
                (events, batches)
            })
            .collect();
        let (rate, cpu) = shard_round(
            rt,
            recorder,
            inputs.iter().collect(),
            threads * per_thread,
            |shard, (events, batches)| {
                for (k, b) in batches.iter().enumerate() {
                    let dictionaries = b.dictionaries();
                    let ids = &events[k * BATCH..];
                    shard
                        .batch()
                        .record_columns(&b.columns(&dictionaries), |i| ids[i].id.clone())
                        .unwrap();
                }
            },
        );
        rates.push(rate);
        cpu_per_m.push(cpu);
    }
    println!(
        "embedded shards, column batches, {threads} recording thread(s), end to end (flushed): median {:>12.0} events/s, {:.2} CPU-s per million events (rounds: {})",
        median(rates.clone()),
        median(cpu_per_m),
        rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / ")
    );
}

struct Proc {
    child: Child,
    addr: String,
}

fn start_agent(config: &Path) -> Proc {
    // `BENCH_AGENT_BIN`: another agent binary to drive with the same load (a before/after
    // comparison runs the two alternately).
    let bin = std::env::var("BENCH_AGENT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_aims-agent").to_owned());
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.split("listening on http://").nth(1) {
                let _ = tx.send(a.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("agent started");
    Proc { child, addr }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// utime + stime in seconds (clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// One inference of `BATCH` rows as the v2 request and response bodies KServe logs.
fn v2_pair(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let events: Vec<serde_json::Value> = (0..BATCH as u64).map(|i| event_json(rng, i)).collect();
    let numeric: Vec<Vec<serde_json::Value>> = events
        .iter()
        .map(|e| {
            (0..NUMERIC)
                .map(|i| e["features"][format!("n{i}")].clone())
                .collect()
        })
        .collect();
    let mut inputs = vec![serde_json::json!({
        "name": "input-0", "shape": [BATCH, NUMERIC], "datatype": "FP64", "data": numeric,
    })];
    let column = |f: &dyn Fn(&serde_json::Value) -> serde_json::Value| -> Vec<serde_json::Value> {
        events.iter().map(f).collect()
    };
    for i in 0..CATEGORICAL {
        let name = format!("c{i}");
        inputs.push(serde_json::json!({
            "name": name, "shape": [BATCH], "datatype": "BYTES",
            "data": column(&|e| e["features"][&name].clone()),
        }));
    }
    for name in ["gender", "age_band"] {
        inputs.push(serde_json::json!({
            "name": name, "shape": [BATCH], "datatype": "BYTES",
            "data": column(&|e| e["attributes"][name].clone()),
        }));
    }
    let request = serde_json::json!({"id": "r", "inputs": inputs});
    let scores = column(&|e| e["prediction"]["score"].clone());
    let response = serde_json::json!({
        "model_name": "bench-20", "model_version": "0", "id": "r",
        "outputs": [
            {"name": "predict", "shape": [BATCH], "datatype": "INT64",
             "data": column(&|e| e["prediction"]["label"].clone())},
            {"name": "predict_proba", "shape": [BATCH, 2], "datatype": "FP64",
             "data": scores.iter().map(|s| {
                 let s = s.as_f64().unwrap();
                 serde_json::json!([((1.0 - s) * 10_000.0).round() / 10_000.0, s])
             }).collect::<Vec<_>>()},
        ],
    });
    (
        serde_json::to_vec(&request).unwrap(),
        serde_json::to_vec(&response).unwrap(),
    )
}

/// What the HTTP load sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// NDJSON batches on `/v1/events`.
    Native,
    /// Binary-mode CloudEvent pairs on `/v1/cloudevents`.
    CloudEvents,
}

fn http(config: &Path, rounds: u64, seconds: u64, clients: u64, load: Load) {
    let mut rng = StdRng::seed_from_u64(3);
    let pairs: Vec<Arc<(Vec<u8>, Vec<u8>)>> = if load == Load::CloudEvents {
        (0..4).map(|_| Arc::new(v2_pair(&mut rng))).collect()
    } else {
        Vec::new()
    };
    let bodies: Vec<Arc<Vec<u8>>> = (0..8)
        .map(|b| {
            let mut body = Vec::new();
            for i in 0..BATCH {
                serde_json::to_writer(&mut body, &event_json(&mut rng, (b * BATCH + i) as u64))
                    .unwrap();
                body.push(b'\n');
            }
            Arc::new(body)
        })
        .collect();
    match load {
        Load::Native => println!(
            "HTTP body: {BATCH} events, {} KiB per request, {clients} concurrent clients, {seconds} s per round",
            bodies[0].len() / 1024
        ),
        Load::CloudEvents => println!(
            "CloudEvents: {BATCH}-row v2 request of {} KiB + response of {} KiB per inference, {clients} concurrent clients, {seconds} s per round",
            pairs[0].0.len() / 1024,
            pairs[0].1.len() / 1024
        ),
    }
    let (mut rates, mut cpus, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu_per_m = Vec::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..rounds {
        let mut agent = start_agent(config);
        let pid = agent.child.id();
        let url = match load {
            Load::Native => format!("http://{}/v1/events", agent.addr),
            Load::CloudEvents => format!("http://{}/v1/cloudevents", agent.addr),
        };
        let accepted = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let cpu_before = cpu_seconds(pid);
        let load_cpu_before = cpu_seconds(std::process::id());
        let started = Instant::now();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let tasks: Vec<_> = (0..clients)
                .map(|c| {
                    let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
                    let pairs = pairs.clone();
                    let (accepted, dropped, stop) =
                        (accepted.clone(), dropped.clone(), stop.clone());
                    tokio::spawn(async move {
                        let mut k = c as usize;
                        while !stop.load(Ordering::Relaxed) && load == Load::CloudEvents {
                            let pair = &pairs[k % pairs.len()];
                            let id = format!("c{c}-{k}");
                            k += 1;
                            let mut events = 0;
                            for (kind, body) in [
                                ("org.kubeflow.serving.inference.request", &pair.0),
                                ("org.kubeflow.serving.inference.response", &pair.1),
                            ] {
                                let resp = client
                                    .post(&url)
                                    .header("content-type", "application/json")
                                    .header("ce-specversion", "1.0")
                                    .header("ce-id", &id)
                                    .header("ce-type", kind)
                                    .header("ce-source", "http://localhost:9081/")
                                    .header("ce-inferenceservicename", "bench-20")
                                    .body(body.clone())
                                    .send()
                                    .await
                                    .unwrap();
                                let reply: serde_json::Value = resp.json().await.unwrap();
                                events += reply["events"].as_u64().unwrap_or(0);
                            }
                            assert_eq!(events, BATCH as u64, "every row recorded");
                            accepted.fetch_add(events, Ordering::Relaxed);
                        }
                        while !stop.load(Ordering::Relaxed) && load == Load::Native {
                            let body = bodies[k % bodies.len()].as_ref().clone();
                            k += 1;
                            let resp = client
                                .post(&url)
                                .header("content-type", "application/x-ndjson")
                                .body(body)
                                .send()
                                .await
                                .unwrap();
                            let reply: serde_json::Value = resp.json().await.unwrap();
                            accepted.fetch_add(
                                reply["accepted"].as_u64().unwrap_or(0),
                                Ordering::Relaxed,
                            );
                            dropped.fetch_add(
                                reply["dropped"].as_u64().unwrap_or(0),
                                Ordering::Relaxed,
                            );
                        }
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await.unwrap();
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu_before;
        let load_cpu = cpu_seconds(std::process::id()) - load_cpu_before;
        let text = rt.block_on(async {
            reqwest::get(format!("http://{}/metrics", agent.addr))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        let series = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let queued = series("aims_agent_queue_events");
        // Sustained: events folded into a summary by the end of the load, not those accepted
        // and still queued for the windowing task.
        let folded = series("aims_agent_events_summarised_total");
        let kept = accepted.load(Ordering::Relaxed) - dropped.load(Ordering::Relaxed);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load.split_whitespace().next().unwrap_or("?").to_owned();
        rates.push(folded / elapsed);
        cpus.push(cpu / elapsed);
        cpu_per_m.push(cpu / folded.max(1.0) * 1e6);
        rss.push(proc_status(pid, "VmHWM:") as f64 / 1024.0);
        println!(
            "  round: {:.0} events/s folded ({:.0}/s acknowledged, {} dropped, {queued} still queued), agent CPU {:.2} cores, {:.2} CPU-s per million folded, load generator {:.2} CPU-s per million, peak RSS {:.1} MiB, load {load}",
            folded / elapsed,
            kept as f64 / elapsed,
            dropped.load(Ordering::Relaxed),
            cpu / elapsed,
            cpu / folded.max(1.0) * 1e6,
            load_cpu / folded.max(1.0) * 1e6,
            proc_status(pid, "VmHWM:") as f64 / 1024.0
        );
        let _ = agent.child.kill();
        let _ = agent.child.wait();
    }
    let name = match load {
        Load::Native => "native NDJSON",
        Load::CloudEvents => "CloudEvents",
    };
    println!(
        "HTTP ingest ({name}): median {:>10.0} events/s folded",
        median(rates)
    );
    println!("agent CPU:   median {:>10.2} cores", median(cpus));
    println!(
        "agent CPU-s per million folded events: median {:.2}",
        median(cpu_per_m)
    );
    println!("agent peak RSS: median {:>7.1} MiB", median(rss));
}

fn idle(config: &Path, rounds: u64) {
    let mut rss = Vec::new();
    for _ in 0..rounds {
        let mut agent = start_agent(config);
        std::thread::sleep(Duration::from_secs(2));
        rss.push(proc_status(agent.child.id(), "VmRSS:") as f64 / 1024.0);
        let _ = agent.child.kill();
        let _ = agent.child.wait();
    }
    println!(
        "idle agent RSS (20 features): median {:.1} MiB",
        median(rss)
    );
}

/// Per-event decoding cost on one thread: a 1,000-row v2 request and its response through the
/// CloudEvents mapping, against the same rows as NDJSON through the native fast path.
fn cloudevents_per_event(config: &Path) {
    use aims_agent::cloudevents::{tensor, Mapping};
    let cfg = AgentConfig::load(config).unwrap();
    let mapping = Mapping::compile(cfg.cloudevents.as_ref().unwrap(), &cfg.model).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let (request, response) = v2_pair(&mut rng);
    let event = aims_agent::cloudevents::envelope::CloudEvent {
        id: "r".into(),
        kind: "k".into(),
        time: None,
        extensions: Default::default(),
        data: None,
    };
    let reps = 50;
    let (mut parse_q, mut map_q, mut resp) = (0.0, 0.0, 0.0);
    for _ in 0..reps {
        let t = Instant::now();
        let mut frame = tensor::parse_bytes(&request, tensor::Half::Request).unwrap();
        parse_q += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut errors = Vec::new();
        let rows = mapping
            .request_rows(&cfg.model, &event, &mut frame, &mut errors)
            .unwrap();
        map_q += t.elapsed().as_secs_f64();
        assert!(errors.is_empty() && rows.len() == BATCH);
        let t = Instant::now();
        let frame = tensor::parse_bytes(&response, tensor::Half::Response).unwrap();
        let preds = mapping
            .response_rows(&cfg.model, &frame, &mut errors)
            .unwrap();
        resp += t.elapsed().as_secs_f64();
        assert!(errors.is_empty() && preds.len() == BATCH);
    }
    let mut body = Vec::new();
    for i in 0..BATCH as u64 {
        serde_json::to_writer(&mut body, &event_json(&mut rng, i)).unwrap();
        body.push(b'\n');
    }
    let fast = aims_agent::ingest::FastDecoder::new(&cfg.model);
    let t = Instant::now();
    for _ in 0..reps {
        let items = aims_agent::ingest::decode_events(
            aims_agent::ingest::BodyFormat::Ndjson,
            &body,
            &cfg.model,
            &fast,
            &cfg.limits,
            0,
        )
        .unwrap();
        assert!(items.iter().all(|(_, e)| e.is_ok()));
    }
    let native = t.elapsed().as_secs_f64();
    let per = |s: f64| s * 1e9 / (reps * BATCH) as f64;
    println!(
        "per event on one thread: CloudEvents v2 request parse {:.0} ns + mapping {:.0} ns, response parse + mapping {:.0} ns; native NDJSON fast path {:.0} ns",
        per(parse_q),
        per(map_q),
        per(resp),
        per(native)
    );
}

/// The HTTP handler's decoding alone, on this thread: NDJSON bodies of `BATCH` events through
/// `ingest::for_each_event_into` (the scanner, the reused event, the length caps), as the
/// events endpoint runs it before the fold (`BENCH_DECODE_REPS` bodies, default 200). For
/// instruction counts: `valgrind --tool=callgrind --toggle-collect='*for_each_event_into*'`.
fn decode(config: &Path) {
    let cfg = AgentConfig::load(config).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let mut body = Vec::new();
    for i in 0..BATCH as u64 {
        serde_json::to_writer(&mut body, &event_json(&mut rng, i)).unwrap();
        body.push(b'\n');
    }
    let fast = aims_agent::ingest::FastDecoder::new(&cfg.model);
    let reps = env_or("BENCH_DECODE_REPS", 200);
    let mut event = aims_core::Event::blank(0);
    let (mut ok, mut checksum) = (0u64, 0.0);
    let cpu = cpu_seconds(std::process::id());
    let started = Instant::now();
    for _ in 0..reps {
        aims_agent::ingest::for_each_event_into(
            aims_agent::ingest::BodyFormat::Ndjson,
            &body,
            &fast,
            &cfg.limits,
            0,
            &mut event,
            &mut |_, decoded| {
                if let Ok((e, _)) = decoded {
                    ok += 1;
                    checksum += e.latency_ms.unwrap_or(0.0);
                }
            },
        )
        .unwrap();
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(std::process::id()) - cpu;
    assert_eq!(ok, reps * BATCH as u64, "every event decoded ({checksum})");
    let n = (reps * BATCH as u64) as f64;
    println!(
        "HTTP decode alone, one thread: {:.0} ns per event wall, {:.2} CPU-s per million events",
        wall * 1e9 / n,
        cpu / n * 1e6
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 3);
    let (dir, config) = setup();
    if let Some(out) = std::env::args().skip_while(|a| a != "files").nth(1) {
        // The agent's config and profile, and the HTTP bodies, written to `out` for runs
        // outside this process (callgrind on the agent binary).
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace(&*dir.to_string_lossy(), &out.to_string_lossy());
        std::fs::copy(dir.join("profile.json"), out.join("profile.json")).unwrap();
        std::fs::write(out.join("agent.toml"), text).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        for b in 0..8 {
            let mut body = Vec::new();
            for i in 0..BATCH {
                serde_json::to_writer(&mut body, &event_json(&mut rng, (b * BATCH + i) as u64))
                    .unwrap();
                body.push(b'\n');
            }
            std::fs::write(out.join(format!("body-{b}.ndjson")), body).unwrap();
        }
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if std::env::args().any(|a| a == "decode") {
        decode(&config);
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if std::env::args().any(|a| a == "shards") {
        embedded(&config, rounds);
        embedded_shards(&config, rounds);
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if std::env::args().any(|a| a == "http") {
        let (seconds, clients) = (env_or("BENCH_SECONDS", 8), env_or("BENCH_CLIENTS", 4));
        http(&config, rounds, seconds, clients, Load::Native);
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if std::env::args().any(|a| a == "cloudevents") {
        cloudevents_per_event(&config);
        let (seconds, clients) = (env_or("BENCH_SECONDS", 8), env_or("BENCH_CLIENTS", 4));
        http(&config, rounds, seconds, clients, Load::Native);
        http(&config, rounds, seconds, clients, Load::CloudEvents);
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    embedded(&config, rounds);
    embedded_shards(&config, rounds);
    idle(&config, rounds);
    http(
        &config,
        rounds,
        env_or("BENCH_SECONDS", 8),
        env_or("BENCH_CLIENTS", 4),
        Load::Native,
    );
    let _ = std::fs::remove_dir_all(dir);
}
