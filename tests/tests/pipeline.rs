//! The whole pipeline with real parts: the simulator feeds the agent, the agent ships window
//! summaries to the collector, and the collector's objectives move through their lifecycle.

use std::time::Duration;

use aims_e2e::{Stack, StackConfig};

const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 1m
    min_samples: 300
    for: 3s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: income-drift
    title: Income stays stable
    model: credit-scoring
    metric: psi
    feature: income
    target: "<= 0.1"
    window: 1m
    min_samples: 300
    for: 2s
    severity: warning
    owner: ml-platform@example.com
  - id: needs-a-million
    title: An objective that never has enough data here
    model: credit-scoring
    metric: accuracy
    target: ">= 0.5"
    window: 1m
    min_samples: 1000000
    owner: ml-platform@example.com
"#;

#[test]
fn biased_drifted_traffic_fires_objectives_and_silence_is_no_data() {
    let mut stack = Stack::start(&StackConfig {
        objectives: OBJECTIVES,
        ..StackConfig::default()
    });
    let mut sim = stack.simulate(&[
        "--rate",
        "400",
        "--scenario",
        "bias,drift",
        "--duration",
        "60s",
        "--seed",
        "7",
    ]);

    stack.wait_state("parity", "pending", Duration::from_secs(60));
    stack.wait_state("parity", "firing", Duration::from_secs(30));
    stack.wait_state("income-drift", "firing", Duration::from_secs(30));
    stack.wait_state(
        "needs-a-million",
        "insufficient_data",
        Duration::from_secs(10),
    );

    let parity = stack
        .objectives()
        .into_iter()
        .find(|o| o["id"] == "parity")
        .expect("parity listed");
    let value = parity["last_value"]
        .as_f64()
        .or_else(|| parity["value"].as_f64());
    assert!(
        value.is_some_and(|v| v < 0.8),
        "a firing parity objective reports its breaching value: {parity}"
    );

    sim.stop();
    assert!(
        stack.stop_agent().is_some_and(|s| s.success()),
        "the agent exits cleanly on SIGTERM"
    );
    stack.wait_state("parity", "no_data", Duration::from_secs(30));
}
