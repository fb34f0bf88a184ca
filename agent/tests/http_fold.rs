//! The events endpoint folds each request's events on the thread that parsed them (through the
//! recorder's shards), not through the queue to the windowing task: the reply comes once the
//! events are folded and counted, the summaries are the queue's (to the bit, one request at a
//! time), labels posted after the reply join, and a shutdown while clients post loses no
//! acknowledged event.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aims_agent::config::AgentConfig;
use aims_agent::metrics::AgentMetrics;
use aims_agent::Monitor;
use aims_core::event::{RawEvent, Target};
use aims_core::profile::ReferenceProfile;
use serde_json::Value;

#[path = "common/fold.rs"]
mod fold;

use fold::{profile, spooled, summaries};

fn config(dir: &Path, agent_id: &str, queue_events: usize) -> AgentConfig {
    let sections = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[window]\nlength = \"1h\"\ncheckpoint = \"0s\"\nqueue_events = {queue_events}"
    );
    fold::config(dir, agent_id, "fold", &sections)
}

fn line(i: u64, ts: &str) -> String {
    fold::line(i, Some(ts))
}

/// [`fold::next_hour`] as RFC 3339 and in ms.
fn next_hour() -> (String, i64) {
    let at = fold::next_hour();
    (aims_core::time::rfc3339_millis(at), at)
}

/// The agent's server in process on port 0, until `stop` is sent.
struct Served {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    monitor: Monitor,
}

async fn serve(cfg: &AgentConfig, profile: &ReferenceProfile, metrics: &AgentMetrics) -> Served {
    let monitor = Monitor::with_profile(cfg, profile.clone(), false, metrics.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let routes = aims_agent::server::router(monitor.recorder(), &cfg.server, &cfg.limits);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (server, metrics) = (cfg.server.clone(), metrics.clone());
    let served = tokio::spawn(async move {
        aims_agent::server::serve(listener, routes, metrics, &server, async {
            let _ = stopped.await;
        })
        .await
    });
    Served {
        url,
        stop,
        served,
        monitor,
    }
}

impl Served {
    /// Stops the server (requests in progress finish), then the monitor (windows spooled).
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.served.await.unwrap().unwrap();
        self.monitor.shutdown().await;
    }
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let resp = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fold_before_their_reply_into_the_queues_summary() {
    let dir = tempfile::tempdir().unwrap();
    // A queue of 500: a request of 1,000 events through it would be dropped as overload. The
    // labels still take the queue, in requests of 200: the windowing task answers a request's
    // labels just before it frees their slots, so the previous request's may still count.
    let (http, queue) = (
        config(dir.path(), "http", 500),
        config(dir.path(), "queue", 100_000),
    );
    let profile = profile(&http);
    let (ts, at) = next_hour();
    let n = 5000u64;

    let metrics = AgentMetrics::new();
    let agent = serve(&http, &profile, &metrics).await;
    let client = reqwest::Client::new();
    for chunk in 0..5 {
        let body: String = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| line(i, &ts) + "\n")
            .collect();
        let (status, reply) = post(&client, &format!("{}/v1/events", agent.url), body).await;
        assert_eq!(status, 202, "{reply}");
        assert_eq!(
            (reply["accepted"].as_u64(), reply["dropped"].as_u64()),
            (Some(1000), Some(0))
        );
        // Folded and counted before the reply: nothing waits in the queue.
        let done = (chunk + 1) * 1000;
        assert_eq!(metrics.events_received.get(), done);
        assert_eq!(metrics.events_accepted.get(), done);
        assert_eq!(metrics.events_summarised.get(), done);
        assert_eq!(metrics.queue_events.get(), 0);
    }
    // Labels for the unlabelled ones, posted after their predictions' replies, all join.
    let ids: Vec<u64> = (0..n).filter(|i| i % 3 == 2).collect();
    let mut joined = 0;
    for part in ids.chunks(200) {
        let labels: String = part
            .iter()
            .map(|i| format!("{{\"id\":\"e{i}\",\"label\":1}}\n"))
            .collect();
        let (status, reply) = post(&client, &format!("{}/v1/labels", agent.url), labels).await;
        assert_eq!(status, 202, "{reply}");
        assert_eq!(reply["dropped"], 0, "{reply}");
        assert_eq!(reply["labels"]["unmatched"], 0, "{reply}");
        joined += reply["labels"]["joined"].as_u64().unwrap();
    }
    assert_eq!(joined, n / 3);
    agent.shutdown().await;
    assert_eq!(
        metrics
            .events_dropped
            .with_label_values(&["overload"])
            .get(),
        0
    );

    // The same events and labels through the queue to the windowing task.
    {
        let monitor =
            Monitor::with_profile(&queue, profile.clone(), false, AgentMetrics::new()).unwrap();
        let recorder = monitor.recorder();
        for i in 0..n {
            let raw: RawEvent = serde_json::from_str(&line(i, &ts)).unwrap();
            assert!(recorder.record(queue.model.validate(raw, at).unwrap()));
        }
        for i in (0..n).filter(|i| i % 3 == 2) {
            assert!(recorder.label(format!("e{i}"), Target::Class(1)));
        }
        assert!(recorder.flush().await);
        monitor.shutdown().await;
    }
    let (a, b) = (summaries(&queue), summaries(&http));
    assert_eq!(a.len(), 1, "one window");
    assert_eq!(a.len(), b.len());
    let (a, b) = (&a[0], &b[0]);
    assert_eq!(a["events"], n);
    // The late labels are recorded into the window by the windowing task and the events into
    // the shard's summary, merged at the flush: the label-side float sums may differ in the
    // last bit from the queue's interleaving. Everything else is the same to the bit.
    for key in ["log_loss_sum", "brier_sum"] {
        let (u, v) = (
            a["performance"][key].as_f64().unwrap(),
            b["performance"][key].as_f64().unwrap(),
        );
        assert!(
            (u - v).abs() <= 1e-9 * u.abs().max(1.0),
            "{key}: {u} vs {v}"
        );
    }
    let strip = |s: &Value| {
        let mut s = s.clone();
        for key in ["log_loss_sum", "brier_sum"] {
            s["performance"][key] = Value::Null;
        }
        s
    };
    assert_eq!(strip(a), strip(b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_late_and_future_lines_are_named_and_counted_beside_the_folded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "mixed", 100_000);
    let profile = profile(&cfg);
    let (ts, _) = next_hour();
    let metrics = AgentMetrics::new();
    let agent = serve(&cfg, &profile, &metrics).await;
    let body = [
        line(1, &ts),
        r#"{"id":"bad","prediction":{"label":7}}"#.to_owned(),
        line(2, "2020-01-01T00:00:00Z"),
        line(3, "2100-01-01T00:00:00Z"),
        "not json".to_owned(),
        line(4, &ts),
    ]
    .join("\n");
    let (status, reply) = post(
        &reqwest::Client::new(),
        &format!("{}/v1/events", agent.url),
        body,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["accepted"], 4, "{reply}");
    assert_eq!(reply["rejected"], 2, "{reply}");
    assert_eq!(reply["dropped"], 2, "{reply}");
    assert_eq!(reply["errors"][0]["line"], 2);
    assert_eq!(reply["errors"][0]["field"], "prediction.label");
    assert_eq!(reply["errors"][1]["line"], 5);
    assert_eq!(reply["dropped_items"][0]["line"], 3);
    assert_eq!(reply["dropped_items"][0]["reason"], "late");
    assert_eq!(reply["dropped_items"][1]["line"], 4);
    assert_eq!(reply["dropped_items"][1]["reason"], "future");
    assert_eq!(metrics.events_received.get(), 6);
    assert_eq!(metrics.events_accepted.get(), 4);
    assert_eq!(metrics.events_summarised.get(), 2);
    let dropped = |r: &str| metrics.events_dropped.with_label_values(&[r]).get();
    assert_eq!((dropped("late"), dropped("future")), (1, 1));
    let rejected = |r: &str| metrics.events_rejected.with_label_values(&[r]).get();
    assert_eq!(
        (rejected("unknown_class"), rejected("invalid_json")),
        (1, 1)
    );
    agent.shutdown().await;
    // The rejected lines are in the summary of the window they arrived in.
    let spooled = spooled(&cfg);
    let events: u64 = spooled.iter().map(|e| e.summary.events).sum();
    let rejected: u64 = spooled.iter().map(|e| e.summary.rejected).sum();
    assert_eq!((events, rejected), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_while_clients_post_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "shutdown", 100_000);
    let profile = profile(&cfg);
    let (ts, _) = next_hour();
    let metrics = AgentMetrics::new();
    let agent = serve(&cfg, &profile, &metrics).await;
    let url = format!("{}/v1/events", agent.url);
    let body: Arc<String> = Arc::new((0..500).map(|i| line(i, &ts) + "\n").collect());
    let (acked, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (url, body, acked, stop) = (
                url.clone(),
                Arc::clone(&body),
                Arc::clone(&acked),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body.as_ref().clone())
                        .send()
                        .await;
                    // After the shutdown began, connections are refused or closed: not acked.
                    let Ok(resp) = sent else { continue };
                    if resp.status() != 202 {
                        continue;
                    }
                    let Ok(reply) = resp.json::<Value>().await else {
                        continue;
                    };
                    let kept =
                        reply["accepted"].as_u64().unwrap() - reply["dropped"].as_u64().unwrap();
                    acked.fetch_add(kept, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Shut down while the clients are in full flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.events_summarised.get() < 5_000 {
        assert!(Instant::now() < deadline, "the clients got no events in");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.shutdown().await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let spooled: u64 = spooled(&cfg).iter().map(|e| e.summary.events).sum();
    let acked = acked.load(Ordering::Relaxed);
    assert!(acked >= 5_000, "acknowledged {acked}");
    assert_eq!(
        spooled,
        metrics.events_summarised.get(),
        "everything folded is spooled"
    );
    assert!(spooled >= acked, "acknowledged {acked}, spooled {spooled}");
}
