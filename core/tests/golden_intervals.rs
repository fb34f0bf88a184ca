//! Golden tests of the fairness intervals against statsmodels (`scripts/golden/intervals.py`
//! writes the fixture with pinned versions): Wilson, Newcombe's hybrid score and Katz's log
//! intervals within 1e-9, zero cells and groups of one to five included; and the parity
//! intervals of whole attributes (the extreme groups, Bonferroni over groups, groups under
//! `min_group_samples` left out).

use std::path::PathBuf;

use aims_core::metrics::fairness::{attribute_fairness, FairnessOptions, GroupedCounts};
use aims_core::metrics::intervals::{katz, newcombe, wilson, Interval, Proportion};
use aims_core::schema::{ModelSchema, Task};
use aims_core::summary::GroupStats;
use serde_json::Value;

const EXACT: f64 = 1e-9;

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/intervals/statsmodels.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn p(count: &Value, nobs: &Value) -> Proportion {
    Proportion {
        count: count.as_u64().unwrap(),
        nobs: nobs.as_u64().unwrap(),
    }
}

/// Compares bounds; statsmodels' NaN / infinity (stored as null) must be an absent interval.
fn close(what: &str, got: Option<Interval>, expected: &Value, worst: &mut f64) {
    let bounds: Vec<Option<f64>> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(Value::as_f64)
        .collect();
    match (got, bounds[0], bounds[1]) {
        (Some(i), Some(lo), Some(hi)) => {
            let err = (i.lower - lo).abs().max((i.upper - hi).abs());
            *worst = worst.max(err);
            assert!(
                err <= EXACT,
                "{what}: got [{}, {}], statsmodels [{lo}, {hi}]",
                i.lower,
                i.upper
            );
        }
        (None, lo, hi) if lo.is_none() || hi.is_none() => {}
        (got, lo, hi) => panic!("{what}: got {got:?}, statsmodels [{lo:?}, {hi:?}]"),
    }
}

#[test]
fn wilson_newcombe_and_katz_match_statsmodels() {
    let doc = fixture();
    let pairs = doc["pairs"].as_array().unwrap();
    assert!(pairs.len() > 150);
    let (mut w, mut n, mut k) = (0.0f64, 0.0f64, 0.0f64);
    let mut small_with_zero = 0;
    for c in pairs {
        let (a, b) = (p(&c["count1"], &c["nobs1"]), p(&c["count2"], &c["nobs2"]));
        let alpha = c["alpha"].as_f64().unwrap();
        let what = format!("{a:?} vs {b:?} at alpha {alpha}");
        if (a.count == 0 || b.count == 0) && a.nobs <= 5 && b.nobs <= 5 {
            small_with_zero += 1;
        }
        close(
            &format!("wilson {a:?}"),
            wilson(a, alpha),
            &c["wilson1"],
            &mut w,
        );
        close(
            &format!("wilson {b:?}"),
            wilson(b, alpha),
            &c["wilson2"],
            &mut w,
        );
        close(
            &format!("newcombe {what}"),
            newcombe(a, b, alpha),
            &c["newcomb"],
            &mut n,
        );
        let katz_i = katz(a, b, alpha);
        let adjusted = c["katz"]["method"] == "log-adjusted";
        if let Some(i) = katz_i {
            assert_eq!(i.adjusted, adjusted, "{what}");
            assert!((i.confidence - (1.0 - alpha)).abs() < 1e-15);
        }
        close(
            &format!("katz {what}"),
            katz_i,
            &c["katz"]["interval"],
            &mut k,
        );
    }
    assert!(
        small_with_zero > 20,
        "the fixture covers zero cells in small groups"
    );
    eprintln!("worst |error|: wilson {w:e}, newcombe {n:e}, katz {k:e}");
}

fn schema() -> ModelSchema {
    ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![],
        attributes: vec![],
    }
    .validated()
    .unwrap()
}

#[test]
fn parity_intervals_match_statsmodels_on_the_extreme_groups() {
    let doc = fixture();
    let schema = schema();
    let mut worst = 0.0f64;
    for case in doc["attributes"].as_array().unwrap() {
        let groups = case["groups"].as_array().unwrap();
        let stats: Vec<GroupStats> = groups
            .iter()
            .map(|g| GroupStats {
                count: g["n"].as_u64().unwrap(),
                selected: g["selected"].as_u64().unwrap(),
                ..GroupStats::default()
            })
            .collect();
        let counts = GroupedCounts {
            name: "a".into(),
            group_names: groups
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_owned())
                .collect(),
            reference_group: case["reference_group"].as_str().map(str::to_owned),
            stats: &stats,
            min_group_samples: None,
        };
        let options = FairnessOptions {
            confidence: case["confidence"].as_f64().unwrap(),
            min_group_samples: case["min_group_samples"].as_u64().unwrap(),
        };
        let f = attribute_fairness(&schema, &counts, &options);
        let too_small: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(case["too_small"].clone()).unwrap();
        assert_eq!(f.too_small, too_small);
        for (metric, value) in [
            (
                "demographic_parity_difference",
                &f.demographic_parity_difference,
            ),
            ("demographic_parity_ratio", &f.demographic_parity_ratio),
            ("disparate_impact", &f.disparate_impact),
            (
                "statistical_parity_difference",
                &f.statistical_parity_difference,
            ),
        ] {
            let e = &case[metric];
            let v = value.value().unwrap();
            assert!(
                (v - e["value"].as_f64().unwrap()).abs() <= EXACT,
                "{metric}"
            );
            let i = f
                .intervals
                .get(metric)
                .unwrap_or_else(|| panic!("{metric} interval"));
            let between: [String; 2] = serde_json::from_value(e["between"].clone()).unwrap();
            assert_eq!(i.between, between, "{metric}");
            assert!((i.interval.confidence - e["confidence"].as_f64().unwrap()).abs() < 1e-12);
            close(metric, Some(i.interval), &e["interval"], &mut worst);
        }
        for (name, bounds) in case["selection_rate"].as_object().unwrap() {
            close(
                name,
                f.groups[name].selection_rate_interval,
                bounds,
                &mut worst,
            );
        }
    }
    eprintln!("worst |error| over attributes: {worst:e}");
}
