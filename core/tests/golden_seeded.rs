//! Golden tests on large pairs (20,000 to 1,000,000 rows a side) that are regenerated here from
//! seeds instead of being committed: `scripts/golden/generate.py` draws the same values with the
//! same generator and commits only SciPy's answers (`fixtures/golden/seeded/pairs.json`).
//!
//! The pairs are the hard cases for statistics from binned summaries: heavy tails, drift only in
//! the upper tail, integer values with many ties, and a no-drift heavy tail whose distance is
//! near zero. Normed Wasserstein must be within 1 % or 0.002 of SciPy and the KS statistic
//! within 0.005, as DESIGN.md states.

use std::path::PathBuf;

use aims_core::event::{Event, FeatureValue, Prediction};
use aims_core::metrics::drift;
use aims_core::profile::ProfileBuilder;
use aims_core::schema::{FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use serde_json::Value;

const KS_TOLERANCE: f64 = 0.005;
const WASSERSTEIN_RELATIVE: f64 = 0.01;
const WASSERSTEIN_ABSOLUTE: f64 = 0.002;

/// SplitMix64 as a counter-based hash: element `i` of a stream is a function of `(seed, i)`.
fn uniforms(seed: u64, n: usize) -> Vec<f64> {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(GAMMA));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        })
        .collect()
}

/// Box-Muller on uniforms `2i` and `2i + 1`, cosine branch only (as the generator).
fn normals(seed: u64, n: usize) -> Vec<f64> {
    let u = uniforms(seed, 2 * n);
    u.chunks_exact(2)
        .map(|p| (-2.0 * p[0].ln()).sqrt() * (2.0 * std::f64::consts::PI * p[1]).cos())
        .collect()
}

fn num(spec: &Value, key: &str) -> f64 {
    spec[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {spec}"))
}

/// The generator's `draw`: one distribution spec, `n` values.
fn draw(spec: &Value, seed: u64, n: usize) -> Vec<f64> {
    let mut x: Vec<f64> = match spec["dist"].as_str().expect("dist") {
        "normal" => {
            let (mu, sigma) = (num(spec, "mu"), num(spec, "sigma"));
            normals(seed, n).iter().map(|z| mu + sigma * z).collect()
        }
        "lognormal" => {
            let (mu, sigma) = (num(spec, "mu"), num(spec, "sigma"));
            normals(seed, n)
                .iter()
                .map(|z| (mu + sigma * z).exp())
                .collect()
        }
        "pareto" => {
            let (alpha, scale) = (num(spec, "alpha"), num(spec, "scale"));
            uniforms(seed, n)
                .iter()
                .map(|u| scale * u.powf(-1.0 / alpha))
                .collect()
        }
        "poisson" => {
            let lambda = num(spec, "lambda");
            let (mut cdf, mut p, mut k, mut acc) = (Vec::new(), (-lambda).exp(), 0u32, 0.0);
            while acc < 1.0 - 1e-15 && k < 200 {
                acc += p;
                cdf.push(acc);
                k += 1;
                p = p * lambda / f64::from(k);
            }
            uniforms(seed, n)
                .iter()
                .map(|u| cdf.partition_point(|c| c <= u) as f64)
                .collect()
        }
        other => panic!("unknown distribution {other}"),
    };
    if let Some(t) = spec.get("stretch_above").and_then(Value::as_f64) {
        let a = num(spec, "factor");
        for v in &mut x {
            if *v > t {
                *v = t + (*v - t) * a;
            }
        }
    }
    x
}

fn event(columns: &[Vec<f64>], i: usize) -> Event {
    Event {
        id: None,
        ts_ms: 0,
        features: columns
            .iter()
            .map(|c| FeatureValue::Numeric(c[i]))
            .collect(),
        groups: vec![],
        prediction: Prediction::Class {
            class: 0,
            score: None,
        },
        label: None,
        latency_ms: None,
    }
}

/// One compared statistic: what was computed, what SciPy says, and whether it is within bounds.
struct Compared {
    what: String,
    got: f64,
    want: f64,
    ok: bool,
}

fn compare_pairs() -> Vec<Compared> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/seeded/pairs.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("seeded fixture"))
        .expect("JSON");
    let mut out = Vec::new();
    for pair in doc["pairs"].as_array().expect("pairs") {
        let name = pair["pair"].as_str().expect("pair name");
        let rows = |k: &str| pair[k].as_u64().expect("row count") as usize;
        let (n, m) = (rows("reference_rows"), rows("current_rows"));
        let features = pair["features"].as_array().expect("features");
        let schema = ModelSchema {
            intersections: Vec::new(),
            name: format!("seeded-{name}"),
            version: "1".into(),
            task: Task::Binary,
            classes: vec![],
            positive_class: None,
            features: features
                .iter()
                .map(|f| FeatureSpec {
                    name: f["name"].as_str().expect("name").to_owned(),
                    kind: FeatureKind::Numeric,
                })
                .collect(),
            attributes: vec![],
        }
        .validated()
        .expect("valid schema");
        let column = |f: &Value, side: &str, rows: usize| {
            let values = draw(&f[side], f["seeds"][side].as_u64().expect("seed"), rows);
            // The same values as the generator's (up to the last bit of ln, cos and pow).
            for (k, want) in f["expected"][format!("{side}_head")]
                .as_array()
                .expect("head")
                .iter()
                .enumerate()
            {
                let want = want.as_f64().expect("head value");
                assert!(
                    (values[k] - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{name}/{}: {side} value {k} is {}, the generator drew {want}",
                    f["name"],
                    values[k]
                );
            }
            values
        };
        let reference: Vec<Vec<f64>> = features.iter().map(|f| column(f, "reference", n)).collect();
        let current: Vec<Vec<f64>> = features.iter().map(|f| column(f, "current", m)).collect();
        let mut builder = ProfileBuilder::new(&schema);
        for i in 0..n {
            builder.add(&event(&reference, i));
        }
        let profile = builder.finish();
        let mut summary = WindowSummary::new(&schema, &profile);
        for i in 0..m {
            summary.record(&schema, &profile, &event(&current, i));
        }
        let drift = drift::features(&schema, &profile, &summary);
        for f in features {
            let feature = f["name"].as_str().expect("name");
            let got = &drift[feature];
            let want = &f["expected"];
            let w_want = want["wasserstein"].as_f64().expect("wasserstein");
            let w_got = got
                .wasserstein
                .as_ref()
                .and_then(|w| w.value())
                .unwrap_or(f64::NAN);
            out.push(Compared {
                what: format!("{name}/{feature}/wasserstein"),
                got: w_got,
                want: w_want,
                ok: (w_got - w_want).abs()
                    <= WASSERSTEIN_ABSOLUTE.max(WASSERSTEIN_RELATIVE * w_want.abs()),
            });
            let ks_want = want["ks"].as_f64().expect("ks");
            let ks_got = got
                .ks
                .as_ref()
                .and_then(|t| t.statistic.value())
                .unwrap_or(f64::NAN);
            out.push(Compared {
                what: format!("{name}/{feature}/ks"),
                got: ks_got,
                want: ks_want,
                ok: (ks_got - ks_want).abs() <= KS_TOLERANCE,
            });
        }
    }
    out
}

#[test]
fn large_seeded_pairs_match_scipy() {
    let compared = compare_pairs();
    assert!(compared.len() >= 16, "the seeded fixture lists 8 features");
    for c in &compared {
        eprintln!(
            "{:<55} got {:.6} want {:.6} ({:+.3} %)",
            c.what,
            c.got,
            c.want,
            (c.got - c.want) / c.want * 100.0
        );
    }
    let failures: Vec<String> = compared
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: got {}, want {}", c.what, c.got, c.want))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
