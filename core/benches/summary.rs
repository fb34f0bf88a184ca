//! Summary update throughput, merge cost and summary size for a 20-feature model.
//!
//! `cargo bench -p aims-core --bench summary` prints the median of several runs of each
//! measurement; BENCHMARKS.md records the figures.

use std::hint::black_box;
use std::time::Instant;

use aims_core::metrics::report;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::ModelSchema;

use aims_core::summary::{ColumnBuffers, WindowSummary};

#[path = "../tests/support/twenty_features.rs"]
mod twenty_features;

use twenty_features::{events, schema};

/// Events per run and runs per measurement: `BENCH_EVENTS` (default 1,000,000) and
/// `BENCH_RUNS` (default 7); smaller values suit `valgrind --tool=callgrind`.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of this thread so far (Linux `/proc/thread-self/stat`, clock ticks of 10 ms): on a
/// shared machine, events per CPU-second is steadier than events per wall-second.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One timed run: `fold` records into a fresh summary (made before the clocks start); its
/// wall and CPU seconds (the CPU time at least one tick, and the wall time where the thread's
/// is unreadable).
fn timed_fold(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    fold: impl FnOnce(&mut WindowSummary),
) -> (f64, f64) {
    let mut s = WindowSummary::new(schema, profile);
    let cpu = thread_cpu_seconds();
    let t = Instant::now();
    fold(&mut s);
    black_box(&s);
    let wall = t.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds()
        .zip(cpu)
        .map_or(wall, |(b, a)| (b - a).max(0.01));
    (wall, cpu)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let (n_events, runs) = (knob("BENCH_EVENTS", 1_000_000), knob("BENCH_RUNS", 7));
    let schema = schema();
    let mut builder = ProfileBuilder::new(&schema);
    for e in events(100_000, 0.0, 7) {
        builder.add(&e);
    }
    let profile: ReferenceProfile = builder.finish();
    let current = events(n_events, 0.3, 11);

    // `BENCH_ONLY=record` or `BENCH_ONLY=columns`: one pass of the events, with PCA and CBPE,
    // through that path alone, and nothing else (for `valgrind --tool=callgrind`, whose
    // instruction counts then divide by `BENCH_EVENTS`).
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let mut s = WindowSummary::new(&schema, &profile);
        if only == "columns" {
            let mut b = ColumnBuffers::new(&schema);
            for chunk in current.chunks(knob("BENCH_BATCH", 4096).max(1)) {
                b.clear();
                chunk.iter().for_each(|e| b.push(e, None));
                let dictionaries = b.dictionaries();
                s.record_columns(&schema, &profile, black_box(&b.columns(&dictionaries)))
                    .expect("fits");
            }
        } else {
            for e in &current {
                s.record(&schema, &profile, black_box(e));
            }
        }
        println!("{only}: {} events", black_box(&s).events);
        return;
    }

    let (rates, cpu_rates): (Vec<f64>, Vec<f64>) = (0..runs)
        .map(|_| {
            let (wall, cpu) = timed_fold(&schema, &profile, |s| {
                for e in &current {
                    s.record(&schema, &profile, black_box(e));
                }
            });
            (n_events as f64 / wall, n_events as f64 / cpu)
        })
        .unzip();
    println!(
        "record: median {:.0} events/s wall, {:.0} events per CPU-second, over {runs} runs of {n_events} events (20 features, one thread)",
        median(rates),
        median(cpu_rates)
    );

    // The same events as column batches of `BENCH_BATCH` rows (default 4,096; built before the
    // clock starts, as a caller fills them from Arrow arrays): `record_columns`.
    let batch_rows = knob("BENCH_BATCH", 4096).max(1);
    let batches: Vec<ColumnBuffers> = current
        .chunks(batch_rows)
        .map(|c| {
            let mut b = ColumnBuffers::new(&schema);
            c.iter().for_each(|e| b.push(e, None));
            b
        })
        .collect();
    for (label, p) in [
        ("with PCA + CBPE", &profile),
        ("without PCA + CBPE", &{
            let mut plain = profile.clone();
            plain.reconstruction = None;
            plain.cbpe = None;
            plain
        }),
    ] {
        let per_event: Vec<f64> = (0..runs)
            .map(|_| {
                let (_, cpu) = timed_fold(&schema, p, |s| {
                    for b in &batches {
                        let dictionaries = b.dictionaries();
                        s.record_columns(&schema, p, black_box(&b.columns(&dictionaries)))
                            .expect("fits");
                    }
                });
                cpu / n_events as f64 * 1e9
            })
            .collect();
        println!(
            "record_columns {label}: median {:.0} ns per event (CPU), batches of {batch_rows} rows",
            median(per_event)
        );
    }

    // The same events against the profile without its PCA model and CBPE calibration: what
    // the per-event reconstruction error (k × d multiply-adds) and the calibrated sums cost.
    let mut plain = profile.clone();
    plain.reconstruction = None;
    plain.cbpe = None;
    let mut cbpe_only = profile.clone();
    cbpe_only.reconstruction = None;
    let k = profile
        .reconstruction
        .as_ref()
        .map_or(0, |m| m.components.len());
    for (label, p) in [
        ("with PCA + CBPE", &profile),
        ("with CBPE, without PCA", &cbpe_only),
        ("without PCA + CBPE", &plain),
    ] {
        let per_event: Vec<f64> = (0..runs)
            .map(|_| {
                let (_, cpu) = timed_fold(&schema, p, |s| {
                    for e in &current {
                        s.record(&schema, p, black_box(e));
                    }
                });
                cpu / n_events as f64 * 1e9
            })
            .collect();
        println!(
            "record {label}: median {:.0} ns per event (CPU), {k} components × 20 features",
            median(per_event)
        );
    }

    // A one-minute window at 100 events/s, as an agent ships it.
    let minute: Vec<WindowSummary> = current
        .chunks(6_000)
        .take(100)
        .map(|chunk| {
            let mut s = WindowSummary::new(&schema, &profile);
            for e in chunk {
                s.record(&schema, &profile, e);
            }
            s
        })
        .collect();
    let merges: Vec<f64> = (0..runs)
        .map(|_| {
            let mut acc = WindowSummary::new(&schema, &profile);
            let t = Instant::now();
            for s in &minute {
                acc.merge(black_box(s)).expect("same profile");
            }
            black_box(&acc);
            t.elapsed().as_secs_f64() / minute.len() as f64 * 1e6
        })
        .collect();
    println!(
        "merge: median {:.2} µs per merge of a 20-feature summary",
        median(merges)
    );

    let reports: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(report(&schema, &profile, &minute[0], Some(60.0)));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    println!(
        "report: median {:.1} µs for the whole catalogue of one summary",
        median(reports)
    );

    let bytes = serde_json::to_vec(&minute[0]).expect("serialises").len();
    println!("size: {bytes} bytes of JSON for a one-minute 20-feature summary of 6000 events");
}
