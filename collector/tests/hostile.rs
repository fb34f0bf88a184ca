//! Hostile input against the real collector binary over loopback: summaries that cannot be
//! true are refused with the field at fault and counted by reason, and the objectives they
//! were meant to poison keep their state.

mod common;

use std::time::Duration;

use aims_core::hash::sha256_hex;
use aims_core::summary::FeatureStats;
use aims_core::WindowSummary;
use common::*;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

/// Finding 7 of issue 13: forged summaries are each refused with 400 naming the field, and
/// two firing objectives keep firing (before the fix they fell to `insufficient_data`).
#[test]
fn forged_summaries_are_refused_and_firing_objectives_keep_firing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(BIN, dir.path(), "");
    c.start();
    let schema = schema(3);
    let profile = profile(&schema);
    assert_eq!(c.put_profile(&profile, None).status(), 201);

    let window = minute();
    let mut seq = 0;
    let mut send = |c: &Collector| {
        let mut s = summary(&schema, &profile, Traffic::Biased, 300, seq);
        s.merge(&summary(
            &schema,
            &profile,
            Traffic::Drifted,
            300,
            1_000 + seq,
        ))
        .unwrap();
        let r = c.post(&envelope("agent-a", window, seq, s), None);
        assert_eq!(r.status(), 202, "{}", r.text().unwrap());
        seq += 1;
    };
    wait_until(LONG, "parity and income-drift firing", || {
        send(&c);
        (c.state("parity") == "firing" && c.state("income-drift") == "firing").then_some(())
    });

    let good = summary(&schema, &profile, Traffic::Normal, 136, 99);
    let numeric = |s: &mut WindowSummary| -> usize {
        s.features
            .iter()
            .position(|f| matches!(f, FeatureStats::Numeric(_)))
            .unwrap()
    };
    let mut forged: Vec<(&str, WindowSummary, &str)> = Vec::new();
    // Events, class counts and feature counts at 2^64 - 5440: they wrapped the merged counters.
    let mut wrap = good.clone();
    let n = u64::MAX - 5_439;
    wrap.events = n;
    wrap.prediction.class_counts = vec![0; wrap.prediction.class_counts.len()];
    wrap.prediction.class_counts[0] = n;
    for f in &mut wrap.features {
        match f {
            FeatureStats::Numeric(x) => {
                x.count = n;
                x.missing = 0;
            }
            FeatureStats::Categorical(x) => {
                x.count = n;
                x.missing = 0;
            }
        }
    }
    forged.push(("2^64 - 5440 events", wrap, "summary.events"));
    // 2^63 events whose histograms still sum to 136.
    let mut big = good.clone();
    big.events = 1 << 63;
    forged.push(("2^63 events over 136 binned", big, "summary.events"));
    // max below min.
    let mut inverted = good.clone();
    let i = numeric(&mut inverted);
    if let FeatureStats::Numeric(x) = &mut inverted.features[i] {
        let (lo, hi) = (x.min.unwrap(), x.max.unwrap());
        x.min = Some(hi + 1.0);
        x.max = Some(lo);
    }
    let inverted_field = format!("summary.features[{i}].min");
    forged.push(("max < min", inverted, &inverted_field));
    // A negative sum of squares.
    let mut negative = good.clone();
    let i = numeric(&mut negative);
    if let FeatureStats::Numeric(x) = &mut negative.features[i] {
        x.sum_sq = -1.0;
    }
    let negative_field = format!("summary.features[{i}].sum_sq");
    forged.push(("negative sum of squares", negative, &negative_field));

    for (k, (what, s, field)) in forged.into_iter().enumerate() {
        let r = c.post(&envelope("forger", window, 1_000_000 + k as u64, s), None);
        assert_eq!(r.status(), 400, "{what}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["field"], field, "{what}: {body}");
        assert!(
            !body["error"].as_str().unwrap_or_default().is_empty(),
            "{body}"
        );
    }
    // The good data beside them still counts: a few more evaluations, both still firing.
    for _ in 0..5 {
        send(&c);
        std::thread::sleep(Duration::from_millis(300));
    }
    for objective in ["parity", "income-drift"] {
        assert_eq!(c.state(objective), "firing", "{objective}");
        let o = c.objective(objective);
        assert!(o["samples"].as_u64().unwrap() < 1 << 53, "{o}");
    }
    let metrics = c.metrics();
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "impossible")]
        ),
        Some(4.0),
        "{metrics}"
    );
    assert!(c.stop().is_some_and(|s| s.success()), "{}", c.log());
}

/// `/metrics` behind a bearer token when `auth.metrics_token_sha256` is set; `/readyz` and
/// `/healthz` stay open for probes.
#[test]
fn metrics_can_require_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "scrape-secret";
    let mut c = Collector::prepare(
        BIN,
        dir.path(),
        &format!(
            "[auth]\nmetrics_token_sha256 = [\"{}\"]\n",
            sha256_hex(token.as_bytes())
        ),
    );
    c.start();
    let get = |path: &str, token: Option<&str>| {
        let mut req = client().get(c.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    let open = get("/metrics", None);
    assert_eq!(open.status(), 401);
    assert_eq!(open.headers()["www-authenticate"], "Bearer");
    assert_eq!(get("/metrics", Some("wrong")).status(), 401);
    let ok = get("/metrics", Some(token));
    assert_eq!(ok.status(), 200);
    assert!(ok
        .text()
        .unwrap()
        .contains("aims_collector_start_time_seconds"));
    assert_eq!(get("/readyz", None).status(), 200);
    assert_eq!(get("/healthz", None).status(), 200);
    assert!(c.stop().is_some_and(|s| s.success()), "{}", c.log());
}
