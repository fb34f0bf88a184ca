//! Delivery that loses nothing: collector outages of every kind, kill -9 with a full spool,
//! the reference profile from the collector with a cache, and the embedded monitor.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aims_agent::config::AgentConfig;
use aims_agent::metrics::AgentMetrics;
use aims_agent::Monitor;
use common::*;

/// Posts 10 events every 100 ms until stopped; returns the number accepted.
fn traffic(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let accepted = AtomicU64::new(0);
        let mut batch = 0;
        while !stop.load(Ordering::SeqCst) {
            let (status, body) = post(
                &client,
                &url,
                "application/x-ndjson",
                None,
                events(&format!("b{batch}"), 10),
            )
            .await;
            assert_eq!(status, 202, "{body}");
            accepted.fetch_add(body["accepted"].as_u64().unwrap(), Ordering::SeqCst);
            batch += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        accepted.load(Ordering::SeqCst)
    })
}

/// Per window, the merged event count of every unique summary.
fn events_per_window(c: &TestCollector) -> BTreeMap<i64, u64> {
    let mut out = BTreeMap::new();
    for e in c.unique().values() {
        *out.entry(e.window_start_ms).or_insert(0) += e.summary.events;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_outages_lose_and_double_nothing() {
    let mut collector = TestCollector::start(None).await;
    let dir = temp_dir("outage");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: Some(profile),
            extra: String::new(),
            ..Setup::default()
        },
    );
    let agent = Agent::start(&config);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(agent.url("/v1/events"), Arc::clone(&stop));

    eventually(Duration::from_secs(30), "two windows delivered", || {
        collector.unique().len() >= 2
    })
    .await;
    // Refused connections for a stretch of windows: two windows close, and their delivery
    // fails and is scheduled for retry, while the collector is down.
    let before = agent.metrics().await;
    collector.go_down().await;
    aims_testkit::eventually(
        Duration::from_secs(30),
        "two windows closed and a delivery retried while the collector is down",
        || async {
            let now = agent.metrics().await;
            let grew = |series: &str, by: f64| sample(&now, series) >= sample(&before, series) + by;
            (grew("aims_agent_windows_closed_total", 2.0)
                && grew("aims_agent_summaries_retried_total", 1.0))
            .then_some(())
        },
    )
    .await;
    collector.come_back().await;
    // Server errors, rate limiting with Retry-After, then a stalled collector.
    for mode in [Mode::Error500, Mode::TooMany429, Mode::Stall] {
        collector.set_mode(mode);
        let before = collector.seen.lock().unwrap().attempts;
        eventually(Duration::from_secs(30), "the agent retries", || {
            collector.seen.lock().unwrap().attempts > before + 1
        })
        .await;
    }
    collector.set_mode(Mode::Ok);
    let recovered = collector.unique().len();
    eventually(
        Duration::from_secs(30),
        "a window delivered after the collector recovered",
        || collector.unique().len() > recovered,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let accepted = sender.await.unwrap();
    let spool = dir.join("spool");
    agent.terminate();

    let per_window = events_per_window(&collector);
    let delivered: u64 = per_window.values().sum();
    assert_eq!(
        delivered, accepted,
        "every accepted event delivered exactly once after de-duplication"
    );
    // Every window from the first to the last is there, none missing (empty ones included).
    let starts: Vec<i64> = per_window.keys().copied().collect();
    for pair in starts.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1000,
            "no window missing between {} and {}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        starts.len() >= 8,
        "the test spanned several windows: {}",
        starts.len()
    );
    let unique = collector.unique();
    let seq0 = unique.values().filter(|e| e.seq == 0).count();
    assert_eq!(seq0, starts.len(), "one seq-0 summary per window");
    let s = collector.seen.lock().unwrap();
    assert!(s.acknowledged.len() >= unique.len());
    let leftovers: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "window-sequences.json")
        .collect();
    assert!(leftovers.is_empty(), "spool drained: {leftovers:?}");
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_full_spool_then_everything_is_delivered_after_restart() {
    let mut collector = TestCollector::start(None).await;
    collector.go_down().await;
    let dir = temp_dir("kill9");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: Some(profile),
            ..Setup::default()
        },
    );
    let agent = Agent::start(&config);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(agent.url("/v1/events"), Arc::clone(&stop));
    let spool = dir.join("spool");
    let spooled = || -> Vec<String> {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && n != "window-sequences.json" && !n.starts_with('.'))
            .collect()
    };
    eventually(Duration::from_secs(30), "four summaries spooled", || {
        spooled().len() >= 4
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    agent.kill9();
    let mut ids: Vec<String> = spooled()
        .iter()
        .map(|n| {
            let e: aims_core::wire::SummaryEnvelope =
                serde_json::from_slice(&std::fs::read(spool.join(n)).unwrap()).unwrap();
            e.id
        })
        .collect();
    ids.sort();
    assert!(ids.len() >= 4);

    collector.come_back().await;
    let agent = Agent::start(&config);
    eventually(
        Duration::from_secs(15),
        "every spooled summary delivered after restart",
        || {
            let unique = collector.unique();
            ids.iter().all(|id| unique.contains_key(id))
        },
    )
    .await;
    assert_eq!(
        collector.seen.lock().unwrap().references.len(),
        1,
        "profile uploaded after restart"
    );
    eventually(
        Duration::from_secs(30),
        "the spool drained after restart",
        || spooled().is_empty(),
    )
    .await;
    let metrics = agent.metrics().await;
    assert_eq!(
        sample(&metrics, "aims_agent_summaries_dead_lettered_total"),
        0.0
    );
    assert!(
        spool.join("window-sequences.json").exists(),
        "state is never shipped"
    );
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_summaries_go_to_dead_letters_and_bearer_token_is_sent() {
    let collector = TestCollector::start(None).await;
    let dir = temp_dir("dead");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: Some(profile),
            ..Setup::default()
        },
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[ship]\n", "[ship]\ntoken = \"s3cret\"\n");
    std::fs::write(&config, text).unwrap();
    let agent = Agent::start(&config);
    eventually(Duration::from_secs(30), "a window delivered", || {
        !collector.unique().is_empty()
    })
    .await;
    collector.set_mode(Mode::BadRequest400);
    let dead = dir.join("spool").join("dead");
    eventually(
        Duration::from_secs(10),
        "a refused summary dead-lettered",
        || {
            std::fs::read_dir(&dead).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".reason")
            })
        },
    )
    .await;
    let reason_file = std::fs::read_dir(&dead)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "reason"))
        .unwrap();
    assert!(std::fs::read_to_string(reason_file)
        .unwrap()
        .contains("400"));
    assert!(collector
        .seen
        .lock()
        .unwrap()
        .auth
        .iter()
        .all(|a| a == "Bearer s3cret"));
    let metrics = agent.metrics().await;
    assert!(sample(&metrics, "aims_agent_summaries_dead_lettered_total") >= 1.0);
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_from_the_collector_is_cached_for_restarts_while_it_is_down() {
    let dir = temp_dir("fetch");
    let (_, profile) = write_profile(&dir);
    let mut collector = TestCollector::start(Some(profile.clone())).await;
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: None,
            ..Setup::default()
        },
    );
    let agent = Agent::start(&config);
    assert!(agent.log_text().contains(&profile.hash));
    agent.terminate();
    assert!(dir.join("reference-cache.json").exists());
    collector.go_down().await;
    let agent = Agent::start(&config);
    assert!(agent
        .log_text()
        .contains("using the cached reference profile"));
    assert!(agent.log_text().contains(&profile.hash));
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_monitor_records_and_flushes_on_shutdown() {
    let collector = TestCollector::start(None).await;
    let dir = temp_dir("embedded");
    let (profile_path, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: Some(profile_path),
            window: "60s",
            ..Setup::default()
        },
    );
    let cfg = AgentConfig::load(&config).unwrap();
    let monitor = Monitor::start(&cfg, AgentMetrics::new()).await.unwrap();
    let recorder = monitor.recorder();
    let mut g = aims_agent::simulate::Generator::new(5);
    for _ in 0..500 {
        let raw = serde_json::from_value(
            g.event(
                &[aims_agent::simulate::Scenario::Steady],
                std::time::SystemTime::now(),
            )
            .event,
        )
        .unwrap();
        let event = recorder.schema().validate(raw, 0).unwrap();
        assert!(recorder.record(event));
    }
    monitor.shutdown().await;
    let delivered: u64 = collector.unique().values().map(|e| e.summary.events).sum();
    assert_eq!(
        delivered, 500,
        "the open window was flushed and shipped at shutdown"
    );
    let _ = std::fs::remove_dir_all(dir);
}
