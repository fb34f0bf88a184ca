//! Performance without labels and multivariate drift, with real parts (issue 17): the reference
//! profile, CBPE calibration and PCA model included, is built by the real `aims-agent reference
//! build` from a dataset the simulator writes; the agent uploads it; the simulator then sends
//! live traffic and the collector's objectives are read over its API and evidence log.
//!
//! - `covariate-shift` withholds every label: the `estimated_accuracy` objective fires while
//!   the realised `accuracy` objective reads `insufficient_data` throughout;
//! - `correlated-drift` reverses the income-age correlation of the `correlated` population the
//!   reference was built from: the `reconstruction_error` objective fires while the default
//!   drift statistic of every feature stays under its threshold in every evaluation.

use std::time::Duration;

use aims_e2e::{get_json, simulated, tail, Stack, StackConfig};
use serde_json::Value;

/// Every evaluation record of objective `id` in the evidence log, oldest first.
fn evaluations(stack: &Stack, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let url = format!(
            "{}/v1/objectives/{id}/evaluations?limit=1000&after={after}",
            stack.collector_url
        );
        let page = get_json(&url).unwrap_or_else(|| panic!("{url} answers"));
        out.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["record"]["data"].clone()),
        );
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

/// The listed objective `id`.
fn objective(stack: &Stack, id: &str) -> Value {
    stack
        .objectives()
        .into_iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("objective {id} listed"))
}

/// Objective YAML for one model metric; `selector` adds `feature:` and the like.
fn objective_yaml(id: &str, metric: &str, selector: &str, target: &str, min: u64) -> String {
    format!(
        "  - id: {id}\n    title: {id}\n    model: credit-scoring\n    metric: {metric}\n{selector}    target: \"{target}\"\n    window: 1m\n    min_samples: {min}\n    for: 2s\n    severity: warning\n    owner: ml-platform@example.com\n"
    )
}

/// A collector and agent with these objectives and this reference profile uploaded.
fn live_stack(objectives: &str, profile: &std::path::Path) -> Stack {
    Stack::start(&StackConfig {
        objectives,
        profile: Some(profile),
        stale_after: "30s",
        ..StackConfig::default()
    })
}

/// Two minutes of the simulator's `scenario` at 1,000 events a second.
fn simulate(stack: &Stack, scenario: &str, seed: &str) -> aims_e2e::Process {
    stack.simulate(&[
        "--rate",
        "1000",
        "--scenario",
        scenario,
        "--duration",
        "120s",
        "--seed",
        seed,
    ])
}

/// Events an estimate or an error is judged on: the reconstruction error's window mean has a
/// spread of about 0.01 at this size, the estimated accuracy's a standard error of 0.007.
const MIN_SAMPLES: u64 = 5000;

#[test]
fn covariate_shift_without_labels_fires_estimated_accuracy_while_accuracy_has_too_few_samples() {
    let reference_dir = tempfile::tempdir().expect("temp dir");
    let (profile, json) = simulated::reference(reference_dir.path(), "steady", 21, 20_000);
    assert_eq!(
        json["cbpe"]["calibrated"].as_bool(),
        Some(true),
        "the profile carries the CBPE calibration map"
    );
    assert!(json["cbpe"]["map"].is_object(), "{}", json["cbpe"]);
    let objectives = format!(
        "policy: \"AI Policy v3, section 4\"\nobjectives:\n{}{}",
        objective_yaml(
            "estimated-accuracy",
            "estimated_accuracy",
            "",
            ">= 0.70",
            MIN_SAMPLES
        ),
        objective_yaml("accuracy", "accuracy", "", ">= 0.70", 100),
    );
    let stack = live_stack(&objectives, &profile);
    let mut sim = simulate(&stack, "covariate-shift", "4");

    stack.wait_state("estimated-accuracy", "firing", Duration::from_secs(90));
    let estimated = objective(&stack, "estimated-accuracy");
    let value = estimated["last_value"].as_f64();
    assert!(
        value.is_some_and(|v| (0.55..0.70).contains(&v)),
        "estimated accuracy under its target: {estimated}"
    );
    assert!(
        estimated["samples"].as_u64() >= Some(MIN_SAMPLES),
        "{estimated}"
    );
    let accuracy = objective(&stack, "accuracy");
    assert_eq!(
        accuracy["state"], "insufficient_data",
        "no label ever arrived: {accuracy}"
    );
    sim.stop();

    // The evidence says the same: the estimate breached on at least `for` of evaluations with
    // enough events, and every evaluation of the realised accuracy found no labelled event.
    let records = evaluations(&stack, "estimated-accuracy");
    assert!(
        records
            .iter()
            .any(|r| r["verdict"] == "breached" && r["state"] == "firing"),
        "a firing evaluation in the evidence: {:?}",
        records.last()
    );
    let realised = evaluations(&stack, "accuracy");
    assert!(
        realised.iter().any(|r| r["verdict"] == "insufficient_data"),
        "the accuracy objective was evaluated on the shifted traffic: {:?}",
        realised.last()
    );
    for r in &realised {
        // `no_data` only before the first summary arrives.
        assert!(
            (r["verdict"] == "insufficient_data" || r["verdict"] == "no_data")
                && r["samples"].as_u64().unwrap_or(0) == 0,
            "the realised accuracy never had a labelled event: {r}\n--- agent ---\n{}",
            stack
                .agent
                .as_ref()
                .map(|a| tail(&a.log()))
                .unwrap_or_default()
        );
    }
}

#[test]
fn correlated_drift_fires_reconstruction_error_while_every_feature_stays_under_its_drift_threshold()
{
    let reference_dir = tempfile::tempdir().expect("temp dir");
    let (profile, json) = simulated::reference(reference_dir.path(), "correlated", 22, 20_000);
    let model = &json["reconstruction"];
    let upper = model["upper_threshold"]
        .as_f64()
        .unwrap_or_else(|| panic!("the profile carries the PCA model: {model}"));
    let features = [
        "income",
        "age",
        "debt_ratio",
        "credit_history_months",
        "num_accounts",
        "region",
        "employment",
    ];
    let mut objectives = format!(
        "policy: \"AI Policy v3, section 4\"\nobjectives:\n{}",
        objective_yaml(
            "reconstruction",
            "reconstruction_error",
            "",
            &format!("<= {upper}"),
            MIN_SAMPLES
        )
    );
    // Each feature's default drift method (Wasserstein for the numeric ones, Jensen-Shannon
    // for the categorical ones, as Evidently picks them for a large reference): drift is a
    // score of 0.1 or more.
    for f in features {
        objectives += &objective_yaml(
            &format!("drift-{f}"),
            "drift_score",
            &format!("    feature: {f}\n"),
            "< 0.1",
            MIN_SAMPLES,
        );
    }
    let stack = live_stack(&objectives, &profile);
    let mut sim = simulate(&stack, "correlated-drift", "5");

    stack.wait_state("reconstruction", "firing", Duration::from_secs(90));
    let fired = objective(&stack, "reconstruction");
    let error = fired["last_value"].as_f64().expect("a value");
    assert!(
        error > upper,
        "error {error} over the reference's upper threshold {upper}"
    );
    // Every feature has been judged on a full window, and found no drift.
    for f in features {
        stack.wait_state(&format!("drift-{f}"), "ok", Duration::from_secs(30));
    }
    sim.stop();

    let mut worst = Vec::new();
    for f in features {
        let records = evaluations(&stack, &format!("drift-{f}"));
        let judged: Vec<f64> = records
            .iter()
            // `no_data` before the first summary, `insufficient_data` before 5,000 events.
            .filter(|r| r["verdict"] != "insufficient_data" && r["verdict"] != "no_data")
            .map(|r| {
                assert_eq!(r["verdict"], "met", "{f}: no drift in any evaluation: {r}");
                r["value"].as_f64().expect("a drift score")
            })
            .collect();
        assert!(!judged.is_empty(), "{f} was judged");
        let max = judged.iter().copied().fold(f64::MIN, f64::max);
        assert!(max < 0.1, "{f}: drift score {max}");
        worst.push(format!("{f} {max:.4}"));
    }
    eprintln!(
        "reconstruction error {error:.4} over {upper:.4}; worst drift scores: {}",
        worst.join(", ")
    );
}
