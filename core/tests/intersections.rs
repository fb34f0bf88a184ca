//! Intersectional groups: the schema's `intersections`, the summary's cells, their merge laws
//! and invariants, fairness over the cells against Fairlearn's `MetricFrame` with several
//! sensitive features (fixture from `scripts/golden/intersections.py`), and `min_group_samples`
//! declared per attribute.

use aims_core::event::{Event, Prediction, Target};
use aims_core::invariants::validate;
use aims_core::metrics::fairness::{fairness, fairness_with, FairnessOptions};
use aims_core::metrics::{report, Measured};
use aims_core::objective::parse;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{AttributeSpec, DetailedIntersection, IntersectionSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use proptest::prelude::*;
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn attribute(name: &str, groups: &[&str], reference: &str) -> AttributeSpec {
    AttributeSpec {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        reference_group: Some(reference.into()),
        min_group_samples: None,
    }
}

fn schema_with(intersections: Vec<IntersectionSpec>) -> ModelSchema {
    ModelSchema {
        name: "credit".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![],
        attributes: vec![
            attribute("gender", &["F", "M"], "M"),
            attribute("age_band", &["18-29", "30-44", "45+"], "30-44"),
            attribute("region", &["north", "south"], "north"),
        ],
        intersections,
    }
}

fn pair() -> IntersectionSpec {
    IntersectionSpec::Attributes(vec!["gender".into(), "age_band".into()])
}

fn schema() -> ModelSchema {
    schema_with(vec![
        pair(),
        IntersectionSpec::Attributes(vec!["region".into(), "gender".into(), "age_band".into()]),
    ])
    .validated()
    .expect("valid schema")
}

fn profile(schema: &ModelSchema) -> ReferenceProfile {
    ProfileBuilder::new(schema).finish()
}

fn event(groups: Vec<u16>, class: u32, label: Option<u32>) -> Event {
    Event {
        id: None,
        ts_ms: 1_000,
        features: vec![],
        groups,
        prediction: Prediction::Class { class, score: None },
        label: label.map(Target::Class),
        latency_ms: None,
    }
}

fn close(what: &str, got: Option<f64>, want: &Value) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= TOLERANCE,
            "{what}: {g} against Fairlearn's {w}"
        ),
        (None, None) => {}
        (g, _) => panic!("{what}: {g:?} against Fairlearn's {want}"),
    }
}

#[test]
fn schema_names_cells_and_refuses_bad_intersections_by_field() {
    let s = schema();
    let names: Vec<String> = s
        .fairness_attributes()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        names,
        [
            "gender",
            "age_band",
            "region",
            "gender*age_band",
            "region*gender*age_band"
        ]
    );
    let x = s.fairness_attribute("gender*age_band").unwrap();
    assert_eq!(
        x.group_names.len(),
        3 * 4,
        "the product of the buckets, other included"
    );
    assert_eq!(x.group_names[0], "F*18-29");
    assert_eq!(x.group_names[3], "F*other");
    assert_eq!(x.group_names[11], "other*other");
    assert_eq!(x.reference_group.as_deref(), Some("M*30-44"));
    assert_eq!(
        s.fairness_attribute("region*gender*age_band")
            .unwrap()
            .group_names
            .len(),
        36
    );

    let field = |xs: Vec<IntersectionSpec>| schema_with(xs).validated().unwrap_err().field;
    let names = |n: &[&str]| IntersectionSpec::Attributes(n.iter().map(|s| (*s).into()).collect());
    assert_eq!(
        field(vec![names(&["gender", "income"])]),
        "intersections[0][1]"
    );
    assert_eq!(field(vec![names(&["gender"])]), "intersections[0]");
    assert_eq!(
        field(vec![names(&["gender", "gender"])]),
        "intersections[0][1]"
    );
    assert_eq!(field(vec![pair(), pair()]), "intersections[1]");

    let mut wide = schema_with(vec![names(&["gender", "age_band"])]);
    wide.attributes[1].groups = (0..400).map(|i| format!("g{i}")).collect();
    wide.attributes[1].reference_group = None;
    let e = wide.validated().unwrap_err();
    assert_eq!(e.field, "intersections[0]");
    assert!(e.reason.contains("1203 cells"), "{}", e.reason);

    let mut starred = schema_with(vec![pair()]);
    starred.attributes[0].groups.push("F*M".into());
    assert_eq!(
        starred.validated().unwrap_err().field,
        "intersections[0][0]"
    );
    let mut starred = schema_with(vec![]);
    starred.attributes[0].name = "a*b".into();
    assert_eq!(starred.validated().unwrap_err().field, "attributes[0].name");

    // Both spellings read from YAML; the long one carries a minimum group size.
    let yaml = "name: credit\ntask: binary\nattributes:\n  - {name: gender, groups: [F, M]}\n  - {name: age_band, groups: [young, old]}\nintersections:\n  - [gender, age_band]\n  - {of: [age_band, gender], min_group_samples: 40}\n";
    let s: ModelSchema = serde_yaml_ng::from_str(yaml).unwrap();
    let s = s.validated().unwrap();
    assert_eq!(s.intersections[0], pair());
    assert_eq!(
        s.intersections[1],
        IntersectionSpec::Detailed(DetailedIntersection {
            of: vec!["age_band".into(), "gender".into()],
            min_group_samples: Some(40)
        })
    );
    assert_eq!(
        s.fairness_attribute("age_band*gender")
            .unwrap()
            .min_group_samples,
        Some(40)
    );
    let bad = yaml.replace("min_group_samples: 40", "min_group_size: 40");
    assert!(serde_yaml_ng::from_str::<ModelSchema>(&bad).is_err());
}

/// Intersectional fairness from a summary of the fixture's rows equals Fairlearn's
/// `MetricFrame` with `sensitive_features=[gender, age_band]`, within 1e-9.
#[test]
fn intersection_fairness_matches_fairlearn_metricframe() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intersections/fairlearn.json"
    ))
    .unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let schema: ModelSchema = serde_json::from_value(fixture["schema"].clone()).unwrap();
    let schema = schema.validated().unwrap();
    let profile = profile(&schema);
    let mut summary = WindowSummary::new(&schema, &profile);
    for row in fixture["rows"].as_array().unwrap() {
        let groups = vec![
            schema.group_of(0, row[0].as_str().unwrap()),
            schema.group_of(1, row[1].as_str().unwrap()),
        ];
        let label = row[3].as_u64().map(|l| l as u32);
        summary.record(
            &schema,
            &profile,
            &event(groups, row[2].as_u64().unwrap() as u32, label),
        );
    }
    validate(&summary).expect("a recorded summary holds its invariants");
    let name = "gender*age_band";
    let want = &fixture["expected"][name];

    let all = fairness(&schema, &summary);
    let got = &all[name];
    let cells = want["groups"].as_object().unwrap();
    assert_eq!(got.groups.len(), cells.len(), "the cells that occur");
    for (cell, w) in cells {
        let g = &got.groups[cell];
        assert_eq!(g.n, w["n"].as_u64().unwrap(), "{cell}.n");
        assert_eq!(
            g.labelled,
            w["n_labelled"].as_u64().unwrap(),
            "{cell}.n_labelled"
        );
        close(
            &format!("{cell}.selection_rate"),
            g.selection_rate.value(),
            &w["selection_rate"],
        );
        close(&format!("{cell}.tpr"), g.tpr.value(), &w["tpr"]);
        close(&format!("{cell}.fpr"), g.fpr.value(), &w["fpr"]);
        if cell != want["reference_group"].as_str().unwrap() {
            let spd = g
                .statistical_parity_difference
                .as_ref()
                .and_then(Measured::value);
            close(&format!("{cell}.spd"), spd, &want["spd"][cell]);
            let di = g.disparate_impact.as_ref().and_then(Measured::value);
            close(&format!("{cell}.di"), di, &want["di"][cell]);
        }
    }
    assert_eq!(
        got.reference_group.as_deref(),
        want["reference_group"].as_str()
    );
    let parity = |f: &aims_core::metrics::fairness::AttributeFairness, w: &Value| {
        for (metric, value) in [
            (
                "demographic_parity_difference",
                &f.demographic_parity_difference,
            ),
            ("demographic_parity_ratio", &f.demographic_parity_ratio),
            ("equalized_odds_difference", &f.equalized_odds_difference),
            ("equalized_odds_ratio", &f.equalized_odds_ratio),
            (
                "equal_opportunity_difference",
                &f.equal_opportunity_difference,
            ),
            ("equal_opportunity_ratio", &f.equal_opportunity_ratio),
        ] {
            close(metric, value.value(), &w[metric]);
        }
        let wi = &w["intervals"];
        for metric in ["demographic_parity_difference", "demographic_parity_ratio"] {
            let i = f.intervals.get(metric).expect("an interval");
            assert_eq!(
                i.groups as u64,
                wi["groups"].as_u64().unwrap(),
                "{metric} m"
            );
            assert_eq!(i.between[0], wi["highest"].as_str().unwrap());
            assert_eq!(i.between[1], wi["lowest"].as_str().unwrap());
            close(
                &format!("{metric}.lower"),
                Some(i.interval.lower),
                &wi[metric][0],
            );
            close(
                &format!("{metric}.upper"),
                Some(i.interval.upper),
                &wi[metric][1],
            );
        }
    };
    parity(got, want);
    close(
        "statistical_parity_difference",
        got.statistical_parity_difference.value(),
        &want["statistical_parity_difference"],
    );
    close(
        "disparate_impact",
        got.disparate_impact.value(),
        &want["disparate_impact"],
    );
    assert!(got.too_small.is_empty());

    let min = fixture["min_group_samples"].as_u64().unwrap();
    let options = FairnessOptions {
        min_group_samples: min,
        ..FairnessOptions::default()
    };
    let with_min = &fairness_with(&schema, &summary, &options)[name];
    let w = &want["with_min_group_samples"];
    parity(with_min, w);
    let small: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(w["too_small"].clone()).unwrap();
    assert!(
        !small.is_empty(),
        "the fixture has a cell under the minimum"
    );
    assert_eq!(with_min.too_small, small);
}

/// An event's groups, with `other` (index = declared groups) for some.
fn groups_strategy() -> impl Strategy<Value = Vec<u16>> {
    (0u16..3, 0u16..4, 0u16..3).prop_map(|(g, a, r)| vec![g, a, r])
}

fn events_strategy() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (
            groups_strategy(),
            0u32..2,
            prop::option::weighted(0.8, 0u32..2),
        ),
        0..120,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .map(|(g, class, label)| event(g, class, label))
            .collect()
    })
}

fn summarise(schema: &ModelSchema, profile: &ReferenceProfile, events: &[Event]) -> WindowSummary {
    let mut s = WindowSummary::new(schema, profile);
    for e in events {
        s.record(schema, profile, e);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Merge laws over the cells: associative, commutative, empty as identity; the merged
    /// summary equals one summary of all the events, holds its invariants, and every metric
    /// of an intersection (intervals and too-small cells included) is the same.
    #[test]
    fn cells_merge_like_one_summary_of_all_the_rows(
        a in events_strategy(),
        b in events_strategy(),
        c in events_strategy(),
        min_group_samples in 0u64..20,
    ) {
        let schema = schema();
        let profile = profile(&schema);
        let (sa, sb, sc) = (
            summarise(&schema, &profile, &a),
            summarise(&schema, &profile, &b),
            summarise(&schema, &profile, &c),
        );
        let all: Vec<Event> = a.iter().chain(&b).chain(&c).cloned().collect();
        let whole = summarise(&schema, &profile, &all);

        let mut left = sa.clone();
        left.merge(&sb).unwrap();
        left.merge(&sc).unwrap();
        let mut bc = sb.clone();
        bc.merge(&sc).unwrap();
        let mut right = sa.clone();
        right.merge(&bc).unwrap();
        let mut swapped = sc.clone();
        swapped.merge(&sb).unwrap();
        swapped.merge(&sa).unwrap();
        let mut identity = WindowSummary::new(&schema, &profile);
        identity.merge(&whole).unwrap();

        for s in [&left, &right, &swapped, &identity] {
            prop_assert_eq!(&s.intersections, &whole.intersections);
            prop_assert_eq!(&s.groups, &whole.groups);
        }
        for s in [&sa, &sb, &sc, &left] {
            prop_assert!(validate(s).is_ok(), "{:?}", validate(s));
        }
        let options = FairnessOptions { min_group_samples, ..FairnessOptions::default() };
        let merged = fairness_with(&schema, &left, &options);
        let one = fairness_with(&schema, &whole, &options);
        prop_assert_eq!(
            serde_json::to_value(&merged).unwrap(),
            serde_json::to_value(&one).unwrap()
        );
        prop_assert!(merged.contains_key("region*gender*age_band"));
        let total: u64 = whole.intersections[1].cells.iter().map(|g| g.count).sum();
        prop_assert_eq!(total, all.len() as u64);
    }
}

/// A forged summary whose cells do not add up to the attributes' groups is refused, naming
/// the intersection; so is one with the wrong number of cells or a cell's impossible counts.
#[test]
fn cells_that_do_not_add_up_are_refused() {
    let schema = schema();
    let profile = profile(&schema);
    let events: Vec<Event> = (0..60u16)
        .map(|i| {
            event(
                vec![i % 3, i % 4, i % 3],
                u32::from(i % 2),
                Some(u32::from(i % 3 % 2)),
            )
        })
        .collect();
    let good = summarise(&schema, &profile, &events);
    validate(&good).unwrap();
    good.check_against(&schema, &profile).unwrap();

    // Moving a cell's predictions into another cell (of another gender and age band) keeps
    // every cell valid and the total right, but breaks the marginals.
    let mut moved = good.clone();
    let cells = &mut moved.intersections[0].cells;
    let from = std::mem::take(&mut cells[0]);
    assert!(from.count > 0);
    let to = &mut cells[5];
    to.count += from.count;
    to.selected += from.selected;
    to.labelled += from.labelled;
    to.tp += from.tp;
    to.fp += from.fp;
    to.tn += from.tn;
    to.fn_ += from.fn_;
    let e = validate(&moved).unwrap_err();
    assert_eq!(e.field, "intersections[0].cells", "{e}");
    assert!(e.message.contains("add up to count"), "{e}");

    // One more event in a cell alone: the cells no longer add up to the events.
    let mut extra = good.clone();
    extra.intersections[1].cells[5].count += 1;
    assert_eq!(
        validate(&extra).unwrap_err().field,
        "intersections[1].cells"
    );

    // A cell with more selected than predictions.
    let mut selected = good.clone();
    let cell = &mut selected.intersections[0].cells[0];
    cell.selected = cell.count + 1;
    assert_eq!(
        validate(&selected).unwrap_err().field,
        "intersections[0].cells[0].selected"
    );

    // Too few cells, or another intersection: refused by shape, and by the invariants.
    let mut short = good.clone();
    short.intersections[0].cells.pop();
    assert!(short.check_against(&schema, &profile).is_err());
    assert_eq!(
        validate(&short).unwrap_err().field,
        "intersections[0].cells"
    );
    let mut other = good.clone();
    other.intersections[0].attributes = vec![0, 0];
    assert!(other.check_against(&schema, &profile).is_err());
    assert_eq!(
        validate(&other).unwrap_err().field,
        "intersections[0].attributes[1]"
    );
    let mut missing = good.clone();
    missing.intersections.clear();
    assert!(missing.check_against(&schema, &profile).is_err());
    assert!(missing.clone().merge(&good).is_err());

    // A huge forged cell list is refused by its size, not counted through.
    let mut huge = good;
    huge.intersections[0].cells = vec![Default::default(); 100_000];
    assert_eq!(validate(&huge).unwrap_err().field, "intersections[0].cells");
}

/// `min_group_samples` declared on an attribute (and on an intersection) applies to the
/// report and to objectives that do not set their own; an objective's own value wins.
#[test]
fn min_group_samples_per_attribute_and_the_objectives_value_wins() {
    let mut schema = schema_with(vec![IntersectionSpec::Detailed(DetailedIntersection {
        of: vec!["gender".into(), "age_band".into()],
        min_group_samples: Some(8),
    })]);
    schema.attributes[0].min_group_samples = Some(30);
    let schema = schema.validated().unwrap();
    let profile = profile(&schema);
    // gender: F 40, M 40, other 20; 100 events over 3 x 4 cells.
    let events: Vec<Event> = (0..100u16)
        .map(|i| {
            let g = if i < 40 {
                0
            } else if i < 80 {
                1
            } else {
                2
            };
            event(vec![g, i % 4, 0], u32::from(i % 3 == 0), None)
        })
        .collect();
    let summary = summarise(&schema, &profile, &events);
    let r = report(&schema, &profile, &summary, None);
    assert_eq!(r.fairness["gender"].min_group_samples, 30);
    assert_eq!(r.fairness["gender"].too_small.get("other"), Some(&20));
    assert_eq!(r.fairness["age_band"].min_group_samples, 0);
    let x = &r.fairness["gender*age_band"];
    assert_eq!(x.min_group_samples, 8);
    assert!(
        x.too_small.keys().all(|k| k.starts_with("other*")),
        "{:?}",
        x.too_small
    );
    assert_eq!(x.too_small.len(), 4);

    let yaml = |attribute: &str, extra: &str| {
        format!(
            "policy: p\nobjectives:\n  - id: parity\n    title: t\n    model: credit\n    metric: demographic_parity_ratio\n    attribute: \"{attribute}\"\n    target: \">= 0.8\"\n    owner: o\n{extra}"
        )
    };
    let objective = |attribute: &str, extra: &str| {
        parse(&yaml(attribute, extra), std::slice::from_ref(&schema))
            .unwrap()
            .objectives
            .remove(0)
    };
    let inherits = objective("gender", "");
    assert_eq!(inherits.fairness_options_for(&schema).min_group_samples, 30);
    let m = inherits.measure(&schema, &summary, &r).unwrap();
    assert_eq!(m.too_small.get("other"), Some(&20));
    let own = objective("gender", "    min_group_samples: 0\n");
    assert_eq!(own.fairness_options_for(&schema).min_group_samples, 0);
    let m = own.measure(&schema, &summary, &r).unwrap();
    assert!(
        m.too_small.is_empty(),
        "the objective's 0 wins over the attribute's 30"
    );
    let cells = objective("gender*age_band", "    breach: significant\n");
    assert_eq!(cells.fairness_options_for(&schema).min_group_samples, 8);
    let m = cells.measure(&schema, &summary, &r).unwrap();
    assert_eq!(m.too_small.len(), 4);
    assert!(
        m.interval.is_some(),
        "an intersection's parity has its interval"
    );

    let errs = parse(&yaml("gender*region", ""), std::slice::from_ref(&schema)).unwrap_err();
    assert!(errs[0].location.ends_with(".attribute"), "{:?}", errs[0]);
    assert!(
        errs[0].message.contains("no attribute or intersection"),
        "{:?}",
        errs[0]
    );
}
