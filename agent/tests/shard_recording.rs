//! Per-thread recording ([`aims_agent::shard`]): the summaries a shard's events end up in are
//! the ones the queue gives (to the bit for one shard), labels join, nothing is lost when a
//! shard is dropped or the process dies between checkpoints, and two threads record at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aims_agent::config::AgentConfig;
use aims_agent::metrics::AgentMetrics;
use aims_agent::shard::Recorded;
use aims_agent::Monitor;
use aims_core::event::{Event, Target};
use aims_core::profile::ReferenceProfile;

#[path = "common/fold.rs"]
mod fold;

use fold::{next_hour, profile, raw, spooled, summaries};

fn config(dir: &Path, agent_id: &str, checkpoint: &str) -> AgentConfig {
    let sections = format!(
        "[window]\nlength = \"1h\"\ncheckpoint = \"{checkpoint}\"\n[limits]\nmax_id_bytes = 32"
    );
    fold::config(dir, agent_id, "shards", &sections)
}

fn events(cfg: &AgentConfig, n: u64, now: i64) -> Vec<Event> {
    (0..n)
        .map(|i| cfg.model.validate(raw(i), now).unwrap())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn eventually(within: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` events and late labels for the unlabelled ones, through `record` (the queue) or through
/// one shard; returns the monitor's metrics after shutdown.
fn run(
    cfg: &AgentConfig,
    profile: &ReferenceProfile,
    n: u64,
    at: i64,
    shard: bool,
) -> AgentMetrics {
    let rt = runtime();
    let metrics = AgentMetrics::new();
    let monitor = {
        let _guard = rt.enter();
        Monitor::with_profile(cfg, profile.clone(), false, metrics.clone()).unwrap()
    };
    let recorder = monitor.recorder();
    let all = events(cfg, n, at);
    let late: Vec<String> = all
        .iter()
        .filter(|e| e.label.is_none())
        .filter_map(|e| e.id.clone())
        .collect();
    if shard {
        let s = recorder.shard();
        let mut batch = s.batch();
        for mut e in all {
            assert_eq!(batch.record(&mut e, None), Recorded::Yes);
        }
    } else {
        for e in all {
            assert!(recorder.record(e));
        }
    }
    for id in late {
        assert!(recorder.label(id, Target::Class(1)));
    }
    assert!(rt.block_on(recorder.flush()));
    rt.block_on(monitor.shutdown());
    metrics
}

#[test]
fn one_shard_gives_the_queues_summaries_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, shard) = (
        config(dir.path(), "queue", "0s"),
        config(dir.path(), "shard", "0s"),
    );
    let profile = profile(&queue);
    let at = next_hour();
    let (mq, ms) = (
        run(&queue, &profile, 5000, at, false),
        run(&shard, &profile, 5000, at, true),
    );
    let (a, b) = (summaries(&queue), summaries(&shard));
    assert!(!a.is_empty());
    // The late labels are recorded into the open window by the windowing task, the events
    // into the shard's summary, merged at the flush: label-side sums could differ in the last
    // bit from the queue's interleaving. Compare everything else to the bit, and those within
    // rounding.
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let (px, py) = (&x["performance"], &y["performance"]);
        for key in ["log_loss_sum", "brier_sum"] {
            let (u, v) = (px[key].as_f64().unwrap(), py[key].as_f64().unwrap());
            assert!(
                (u - v).abs() <= 1e-9 * u.abs().max(1.0),
                "{key}: {u} vs {v}"
            );
        }
        let strip = |s: &serde_json::Value| {
            let mut s = s.clone();
            for key in ["log_loss_sum", "brier_sum"] {
                s["performance"][key] = serde_json::Value::Null;
            }
            s
        };
        assert_eq!(strip(x), strip(y));
    }
    for m in [&mq, &ms] {
        assert_eq!(m.events_received.get(), 5000);
        assert_eq!(m.events_summarised.get(), 5000);
        assert_eq!(m.labels_joined.get(), 5000 / 3);
    }
}

#[test]
fn one_shard_without_late_labels_is_the_same_summary_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, shard) = (
        config(dir.path(), "queue", "0s"),
        config(dir.path(), "shard", "0s"),
    );
    let profile = profile(&queue);
    let at = next_hour();
    for (cfg, use_shard) in [(&queue, false), (&shard, true)] {
        let rt = runtime();
        let monitor = {
            let _guard = rt.enter();
            Monitor::with_profile(cfg, profile.clone(), false, AgentMetrics::new()).unwrap()
        };
        let recorder = monitor.recorder();
        let all = events(cfg, 4000, at);
        if use_shard {
            let s = recorder.shard();
            for e in all {
                assert!(s.record(e));
            }
        } else {
            for e in all {
                assert!(recorder.record(e));
            }
        }
        rt.block_on(monitor.shutdown());
    }
    let a = summaries(&queue);
    assert_eq!(a.len(), 1);
    assert_eq!(a, summaries(&shard));
}

#[test]
fn two_threads_record_at_once_and_every_event_and_label_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, shards) = (
        config(dir.path(), "queue", "0s"),
        config(dir.path(), "two", "50ms"),
    );
    let profile = profile(&queue);
    let at = next_hour();
    run(&queue, &profile, 6000, at, false);
    let rt = runtime();
    let metrics = AgentMetrics::new();
    let monitor = {
        let _guard = rt.enter();
        Monitor::with_profile(&shards, profile.clone(), false, metrics.clone()).unwrap()
    };
    let recorder = monitor.recorder();
    let all = events(&shards, 6000, at);
    let late: Vec<String> = all
        .iter()
        .filter(|e| e.label.is_none())
        .filter_map(|e| e.id.clone())
        .collect();
    let halves: Vec<Vec<Event>> = all.chunks(3000).map(<[Event]>::to_vec).collect();
    std::thread::scope(|scope| {
        for half in halves {
            let recorder = recorder.clone();
            scope.spawn(move || {
                let shard = recorder.shard();
                for e in half {
                    assert!(shard.record(e));
                }
                // The shard is dropped here, holding its events: the windowing task takes them.
            });
        }
    });
    for id in late {
        assert!(recorder.label(id, Target::Class(1)));
    }
    assert!(rt.block_on(recorder.flush()));
    rt.block_on(monitor.shutdown());
    let (a, b) = (summaries(&queue), summaries(&shards));
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    let (a, b) = (&a[0], &b[0]);
    // Counts, histograms and sketches add exactly; only the float sums of the two threads'
    // halves are added in another order.
    for key in ["events", "labelled", "first_ts_ms", "last_ts_ms", "latency"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    for key in ["confusion", "positive_scores", "negative_scores", "scored"] {
        assert_eq!(a["performance"][key], b["performance"][key], "{key}");
    }
    assert_eq!(a["groups"], b["groups"]);
    let (fa, fb) = (&a["features"], &b["features"]);
    for i in 0..3 {
        let (x, y) = (&fa[i], &fb[i]);
        for (key, v) in x.as_object().unwrap() {
            match v.as_f64() {
                Some(u) if !v.is_u64() => {
                    let w = y[key].as_f64().unwrap();
                    assert!(
                        (u - w).abs() <= 1e-9 * u.abs().max(1.0),
                        "{key}: {u} vs {w}"
                    );
                }
                _ => assert_eq!(v, &y[key], "feature {i} {key}"),
            }
        }
    }
    assert_eq!(metrics.events_summarised.get(), 6000);
    assert_eq!(metrics.labels_joined.get(), 2000);
    assert_eq!(metrics.labels_unmatched.get(), 0);
}

#[test]
fn refused_late_and_future_events_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "drops", "0s");
    let profile = profile(&cfg);
    let rt = runtime();
    let metrics = AgentMetrics::new();
    let monitor = {
        let _guard = rt.enter();
        Monitor::with_profile(&cfg, profile, false, metrics.clone()).unwrap()
    };
    let recorder = monitor.recorder();
    let shard = recorder.shard();
    let now = aims_agent::window::now_ms();
    let mut e = cfg.model.validate(raw(1), now).unwrap();
    e.id = Some("i".repeat(33));
    let mut batch = shard.batch();
    match batch.record(&mut e.clone(), None) {
        Recorded::Refused(err) => assert_eq!(err.field, "id"),
        other => panic!("{other:?}"),
    }
    e.id = None;
    e.ts_ms = now - 10 * 3_600_000;
    assert_eq!(batch.record(&mut e.clone(), None), Recorded::Dropped);
    e.ts_ms = now + 3 * 3_600_000;
    assert_eq!(batch.record(&mut e.clone(), None), Recorded::Dropped);
    e.ts_ms = now;
    assert_eq!(batch.record(&mut e, None), Recorded::Yes);
    drop(batch);
    assert!(rt.block_on(recorder.flush()));
    let dropped = |r: &str| metrics.events_dropped.with_label_values(&[r]).get();
    assert_eq!((dropped("late"), dropped("future")), (1, 1));
    assert_eq!(
        metrics
            .events_rejected
            .with_label_values(&["too_long"])
            .get(),
        1
    );
    assert_eq!(metrics.events_received.get(), 4);
    rt.block_on(monitor.shutdown());
    let spooled = spooled(&cfg);
    assert_eq!(spooled.iter().map(|e| e.summary.events).sum::<u64>(), 1);
    assert_eq!(spooled.iter().map(|e| e.summary.rejected).sum::<u64>(), 1);
    // After shutdown a shard refuses, and counts.
    assert!(!shard.record(cfg.model.validate(raw(2), now).unwrap()));
}

#[test]
fn a_crash_after_a_checkpoint_keeps_a_shards_events() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "crash", "100ms");
    let profile = profile(&cfg);
    let rt = runtime();
    let metrics = AgentMetrics::new();
    let monitor = {
        let _guard = rt.enter();
        Monitor::with_profile(&cfg, profile.clone(), false, metrics.clone()).unwrap()
    };
    let shard = Arc::new(monitor.recorder().shard());
    for e in events(&cfg, 300, aims_agent::window::now_ms()) {
        assert!(shard.record(e));
    }
    let before = metrics.checkpoints.get();
    eventually(Duration::from_secs(60), "a checkpoint", || {
        metrics.checkpoints.get() > before
    });
    // Kill: the runtime goes without a shutdown, the shard's summary was never taken.
    drop(rt);
    std::mem::forget(monitor);
    std::mem::forget(shard);
    let rt = runtime();
    let monitor = {
        let _guard = rt.enter();
        Monitor::with_profile(&cfg, profile, false, AgentMetrics::new()).unwrap()
    };
    rt.block_on(monitor.shutdown());
    assert_eq!(
        spooled(&cfg).iter().map(|e| e.summary.events).sum::<u64>(),
        300
    );
}

/// `ShardBatch::record_columns`: the same events given as column batches end up in the same
/// summaries, to the bit, as the same shard's `record` of each event gives, late labels
/// included; late and future rows in between split the runs and are counted as `record`
/// counts them. (All admitted rows fall in the next hour's window, which cannot close while
/// the test runs: a second, current window could close between the two runs.)
#[test]
fn column_batches_give_a_shards_per_event_summaries_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (by_event, by_column) = (
        config(dir.path(), "by-event", "0s"),
        config(dir.path(), "by-column", "0s"),
    );
    let profile = profile(&by_event);
    let at = next_hour();
    let now = aims_agent::window::now_ms();
    let mut all = events(&by_event, 5000, at);
    for (i, e) in all.iter_mut().enumerate() {
        e.ts_ms = match i {
            200..205 => now - 10 * 3_600_000,
            300..303 => now + 3 * 3_600_000,
            _ => e.ts_ms,
        };
    }
    let late: Vec<String> = all
        .iter()
        .filter(|e| e.label.is_none())
        .filter_map(|e| e.id.clone())
        .collect();
    let mut metrics = Vec::new();
    for (cfg, columns) in [(&by_event, false), (&by_column, true)] {
        let rt = runtime();
        let m = AgentMetrics::new();
        let monitor = {
            let _guard = rt.enter();
            Monitor::with_profile(cfg, profile.clone(), false, m.clone()).unwrap()
        };
        let recorder = monitor.recorder();
        let shard = recorder.shard();
        let mut folded = 0;
        if columns {
            for chunk in all.chunks(1000) {
                let mut buffers = aims_core::summary::ColumnBuffers::new(&cfg.model);
                chunk.iter().for_each(|e| buffers.push(e, None));
                let dictionaries = buffers.dictionaries();
                folded += shard
                    .batch()
                    .record_columns(&buffers.columns(&dictionaries), |i| chunk[i].id.clone())
                    .unwrap();
            }
        } else {
            let mut batch = shard.batch();
            for e in &all {
                folded += u64::from(batch.record(&mut e.clone(), None) == Recorded::Yes);
            }
        }
        assert_eq!(folded, 5000 - 5 - 3);
        for id in &late {
            assert!(recorder.label(id.clone(), Target::Class(1)));
        }
        assert!(rt.block_on(recorder.flush()));
        rt.block_on(monitor.shutdown());
        metrics.push(m);
    }
    let a = summaries(&by_event);
    assert_eq!(a.len(), 1);
    assert_eq!(a, summaries(&by_column));
    let dropped = |m: &AgentMetrics, r: &str| m.events_dropped.with_label_values(&[r]).get();
    for m in &metrics {
        assert_eq!(m.events_received.get(), 5000);
        assert_eq!(m.events_summarised.get(), 4992);
        assert_eq!((dropped(m, "late"), dropped(m, "future")), (5, 3));
    }
    assert_eq!(
        metrics[0].labels_joined.get(),
        metrics[1].labels_joined.get()
    );
    assert!(metrics[0].labels_joined.get() > 1500);
}
