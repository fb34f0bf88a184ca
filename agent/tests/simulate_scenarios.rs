//! The simulator's CBPE and multivariate-drift scenarios, judged against the example reference
//! (`config/examples/reference.csv`, profiled as `aims-agent reference build` does):
//!
//! - `covariate-shift`: no label anywhere, accuracy really falls (the generator knows the
//!   labels it withholds), and CBPE's estimate follows it, since there is no concept drift;
//! - `correlated-drift`, against a reference written by the simulator from the `correlated`
//!   population (`simulate --output`): every univariate drift verdict stays "no drift" while the
//!   PCA reconstruction error leaves its reference thresholds by a wide margin;
//! - `steady` (and `correlated`, against its own reference) trips neither.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aims_agent::assess::profile_from_dataset;
use aims_agent::config::AgentConfig;
use aims_agent::simulate::{write_events, Generator, Scenario, SimulateArgs};
use aims_core::event::RawEvent;
use aims_core::metrics::{report, Measured, Report};
use aims_core::profile::ReferenceProfile;
use aims_core::schema::ModelSchema;
use aims_core::summary::WindowSummary;

const EVENTS: usize = 5_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Window {
    report: Report,
    /// Accuracy on the labels the generator drew, sent or withheld.
    realised_accuracy: f64,
    labelled_events: usize,
}

fn window(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    scenario: Scenario,
    seed: u64,
) -> Window {
    let mut generator = Generator::new(seed);
    let ts = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let now_ms = 1_800_000_000_000;
    let mut summary = WindowSummary::new(schema, profile);
    let (mut correct, mut labelled_events) = (0usize, 0usize);
    for _ in 0..EVENTS {
        let g = generator.event(&[scenario], ts);
        labelled_events += usize::from(g.event.get("label").is_some());
        let predicted = g.event["prediction"]["label"].as_u64().unwrap();
        correct += usize::from(predicted == u64::from(g.label));
        let raw: RawEvent = serde_json::from_value(g.event).expect("event shape");
        let event = schema.validate(raw, now_ms).expect("valid event");
        summary.record(schema, profile, &event);
    }
    Window {
        report: report(schema, profile, &summary, None),
        realised_accuracy: correct as f64 / EVENTS as f64,
        labelled_events,
    }
}

/// A reference profile built, as `aims-agent reference build` builds it, from `rows` events
/// the simulator writes under `scenario` (`aims-agent simulate --output`).
fn simulated_reference(config: &AgentConfig, scenario: Scenario, rows: u64) -> ReferenceProfile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reference.ndjson");
    let args = SimulateArgs {
        target: String::new(),
        rate: 100.0,
        scenarios: vec![scenario],
        duration: Some(Duration::from_secs(rows / 100)),
        switch_after: None,
        label_delay: Duration::ZERO,
        seed: 11,
        batch: None,
        output: Some(path.clone()),
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("output file"));
    let written = write_events(
        &args,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_799_000_000),
        &mut out,
    )
    .expect("events written");
    drop(out);
    assert_eq!(written, rows);
    profile_from_dataset(config, &path).expect("simulated reference")
}

fn value(m: &Measured) -> f64 {
    match m {
        Measured::Value(v) => *v,
        other => panic!("{other:?}"),
    }
}

fn drifted_features(r: &Report) -> Vec<String> {
    r.drift
        .iter()
        .filter(|(_, d)| d.drifted == Some(true))
        .map(|(name, d)| format!("{name} ({:?})", d.score))
        .collect()
}

#[test]
fn covariate_shift_hides_its_labels_and_cbpe_sees_the_fall_correlated_drift_only_pca_sees() {
    let config = AgentConfig::load(&root().join("config/agent.toml")).expect("example config");
    let profile = profile_from_dataset(&config, &root().join("config/examples/reference.csv"))
        .expect("example reference");
    let schema = &config.model;
    let model = profile.reconstruction.as_ref().expect("PCA fitted");

    let steady = window(schema, &profile, Scenario::Steady, 3);
    let steady_est = steady.report.estimated.as_ref().expect("CBPE").estimates;
    assert_eq!(steady.labelled_events, EVENTS);
    assert!(
        (steady_est.accuracy.value - steady.realised_accuracy).abs() < 0.03,
        "steady: estimated {} against realised {}",
        steady_est.accuracy.value,
        steady.realised_accuracy
    );
    let steady_error = steady.report.reconstruction.as_ref().unwrap();
    assert!(
        !steady_error.alert,
        "steady reconstruction error {:?} outside [{}, {}]",
        steady_error.value, model.lower_threshold, model.upper_threshold
    );
    assert_eq!(drifted_features(&steady.report), Vec::<String>::new());

    let shifted = window(schema, &profile, Scenario::CovariateShift, 4);
    let shifted_est = shifted.report.estimated.as_ref().expect("CBPE").estimates;
    assert_eq!(shifted.labelled_events, 0, "labels are withheld");
    assert!(matches!(
        shifted
            .report
            .performance
            .classification
            .as_ref()
            .map(|c| &c.accuracy),
        Some(Measured::Undefined(_)) | None
    ));
    assert!(
        shifted.realised_accuracy < steady.realised_accuracy - 0.07,
        "the shift lowers accuracy: {} against {}",
        shifted.realised_accuracy,
        steady.realised_accuracy
    );
    assert!(
        (shifted_est.accuracy.value - shifted.realised_accuracy).abs() < 0.03,
        "covariate shift, no concept drift: estimated {} against realised {}",
        shifted_est.accuracy.value,
        shifted.realised_accuracy
    );
    assert!(
        !drifted_features(&shifted.report).is_empty(),
        "a covariate shift"
    );

    // Multivariate drift needs a reference with a joint structure to break: the simulator's
    // `correlated` population, written as NDJSON and profiled as the CLI does.
    let correlated_profile = simulated_reference(&config, Scenario::Correlated, 20_000);
    let correlated_model = correlated_profile
        .reconstruction
        .as_ref()
        .expect("PCA fitted");
    let same = window(schema, &correlated_profile, Scenario::Correlated, 6);
    assert_eq!(drifted_features(&same.report), Vec::<String>::new());
    let same_error = same.report.reconstruction.as_ref().unwrap();
    assert!(
        !same_error.alert,
        "correlated traffic against its own reference: {:?} outside [{}, {}]",
        same_error.value, correlated_model.lower_threshold, correlated_model.upper_threshold
    );
    let correlated = window(schema, &correlated_profile, Scenario::CorrelatedDrift, 5);
    assert_eq!(
        drifted_features(&correlated.report),
        Vec::<String>::new(),
        "marginals unchanged"
    );
    let error = correlated.report.reconstruction.as_ref().unwrap();
    // Far outside, not just outside: the band is about 0.1 wide, a window's own spread a few
    // hundredths, so an end-to-end objective on this scenario cannot flake.
    let margin = value(&error.value) - correlated_model.upper_threshold;
    assert!(
        error.alert && margin > 0.2,
        "correlated drift: reconstruction error {:?} against [{}, {}] (same population {:?})",
        error.value,
        correlated_model.lower_threshold,
        correlated_model.upper_threshold,
        same_error.value
    );
    eprintln!(
        "steady: accuracy {:.4}, estimated {:.4}, error {:.4} in [{:.4}, {:.4}]; shift: accuracy {:.4}, estimated {:.4}; correlated: error {:.4}, drifted {:.4}, thresholds [{:.4}, {:.4}]",
        steady.realised_accuracy,
        steady_est.accuracy.value,
        value(&steady_error.value),
        model.lower_threshold,
        model.upper_threshold,
        shifted.realised_accuracy,
        shifted_est.accuracy.value,
        value(&same_error.value),
        value(&error.value),
        correlated_model.lower_threshold,
        correlated_model.upper_threshold
    );
}
