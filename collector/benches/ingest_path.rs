//! The summary ingest path, stage by stage, in process: what each step costs for the
//! benchmark's 20-feature summary (the same one `collector` posts), in nanoseconds per summary.
//!
//! Run with `cargo bench -p aims-collector --bench ingest_path`; `BENCH_ITERS` (default 2,000)
//! sets the repetitions. Under `valgrind --tool=callgrind` use a small `BENCH_ITERS` (e.g. 200)
//! and read the per-function instruction counts, which do not depend on the machine's load.

use std::hint::black_box;
use std::time::Instant;

use aims_collector::aggregate::{Aggregates, Pending};
use aims_core::wire::SummaryEnvelope;
use aims_testkit::fixtures::{minute, profile, schema, summary, Traffic, MODEL};

/// Nanoseconds this thread has run on a CPU (the first field of its `schedstat`), steadier
/// than wall time on a shared machine.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn per_op(name: &str, iters: usize, mut f: impl FnMut()) {
    f();
    let (started, cpu) = (Instant::now(), thread_cpu_ns());
    for _ in 0..iters {
        f();
    }
    let cpu = (thread_cpu_ns() - cpu) as f64 / iters as f64;
    let wall = started.elapsed().as_nanos() as f64 / iters as f64;
    println!(
        "ingest path {name}: {:.1} CPU-µs per summary ({:.1} µs wall)",
        cpu / 1000.0,
        wall / 1000.0
    );
}

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let mut schema = schema(19);
    schema.name = MODEL.to_owned();
    let profile = profile(&schema);
    let base = summary(&schema, &profile, Traffic::Normal, 100, 1);
    let e = SummaryEnvelope::new("agent-0", MODEL, "1.0", minute(), 60_000, 0, base.clone());
    let json = serde_json::to_vec(&e).unwrap();
    let gz = aims_runtime::gzip::encode(&json);
    println!(
        "ingest path: summary {} B JSON, {} B gzip, {iters} iterations",
        json.len(),
        gz.len()
    );
    let limit = 4 << 20;
    per_op("gunzip", iters, || {
        black_box(aims_runtime::gzip::decode(Some("gzip"), black_box(&gz), limit).unwrap());
    });
    per_op("decode envelope (serde_json)", iters, || {
        black_box(serde_json::from_slice::<SummaryEnvelope>(black_box(&json)).unwrap());
    });
    per_op(
        "decode envelope (wire::decode_envelope, as ingest does)",
        iters,
        || {
            black_box(aims_core::wire::decode_envelope(black_box(&json)).unwrap());
        },
    );
    per_op("envelope.validate (id hash)", iters, || {
        black_box(&e).validate().unwrap();
    });
    per_op("check_against profile", iters, || {
        black_box(&e.summary)
            .check_against(&schema, &profile)
            .unwrap();
    });
    per_op("invariants::validate", iters, || {
        aims_core::invariants::validate(black_box(&e.summary)).unwrap();
    });
    per_op(
        "find the summary's received text (wire::summary_text; uncompressed bodies only)",
        iters,
        || {
            black_box(aims_core::wire::summary_text(black_box(&json)).unwrap());
        },
    );
    per_op(
        "re-serialise summary for the store (no longer done)",
        iters,
        || {
            black_box(serde_json::to_string(black_box(&e.summary)).unwrap());
        },
    );
    per_op("clone summary", iters, || {
        black_box(black_box(&e.summary).clone());
    });
    let mut acc = base.clone();
    per_op("merge into an aggregate", iters, || {
        acc.merge(black_box(&base)).unwrap();
    });
    per_op("check_merge only", iters, || {
        aims_core::summary::check_merge(black_box(&acc), black_box(&base)).unwrap();
    });
    // The ingest writer's admission check and merge of a batch of 25 new summaries (what one
    // replica's batch holds in the `collector` bench), spread over 5 minutes of 60 held.
    let batches = (iters / BATCH).max(1);
    for (name, taken) in [
        ("admit + merge, three merges (add)", false),
        ("admit + merge, two merges (add_admitted)", true),
    ] {
        let mut agg = Aggregates::default();
        for minute in 0..60 {
            agg.add(MODEL, "1.0", minute * 60_000, 60_000, &base);
        }
        per_op_n(name, batches, BATCH, || {
            let mut pending = Pending::default();
            for _ in 0..BATCH {
                agg.admit(&mut pending, MODEL, black_box(&base)).unwrap();
            }
            for k in 0..BATCH as i64 {
                let start = (55 + k % 5) * 60_000;
                if taken {
                    agg.add_admitted(&mut pending, MODEL, "1.0", start, 60_000, &base);
                } else {
                    agg.add(MODEL, "1.0", start, 60_000, &base);
                }
            }
        });
    }
}

/// Summaries per batch in the writer stages.
const BATCH: usize = 25;

/// [`per_op`] for a closure that handles `n` summaries per call.
fn per_op_n(name: &str, calls: usize, n: usize, mut f: impl FnMut()) {
    f();
    let (started, cpu) = (Instant::now(), thread_cpu_ns());
    for _ in 0..calls {
        f();
    }
    let per = (calls * n) as f64;
    println!(
        "ingest path {name}: {:.1} CPU-µs per summary ({:.1} µs wall)",
        (thread_cpu_ns() - cpu) as f64 / per / 1000.0,
        started.elapsed().as_nanos() as f64 / per / 1000.0
    );
}
