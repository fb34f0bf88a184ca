//! Property-based fuzz targets for every agent parser (cargo fuzz needs nightly; these run in
//! the normal test run): event JSON, event NDJSON, labels, the reference profile; and the
//! differential property that the JSON and NDJSON paths judge every item alike.
//!
//! Each target starts from a corpus of the cases the attack found (duplicate keys, deep
//! nesting, `1e309`, lone surrogates, huge numbers and strings) and mutates it. Run longer by
//! hand with `PROPTEST_CASES=20000 cargo test -p aims-agent --test fuzz_parsers`.

mod common;

use aims_agent::config::{AgentConfig, LimitsConfig};
use aims_agent::ingest::{self, BodyFormat, FastDecoder};
use aims_core::event::{FeatureValue, MAX_MAGNITUDE};
use aims_core::invariants;
use aims_core::profile::ReferenceProfile;
use aims_core::summary::WindowSummary;
use proptest::prelude::*;
use std::sync::OnceLock;

struct World {
    cfg: AgentConfig,
    profile: ReferenceProfile,
    profile_json: Vec<u8>,
    fast: FastDecoder,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = common::temp_dir("fuzz");
        let (path, profile) = common::write_profile(&dir);
        let cfg_path = dir.join("model-only.toml");
        let cfg = AgentConfig::load(&cfg_path).unwrap();
        let fast = FastDecoder::new(&cfg.model);
        World {
            profile_json: std::fs::read(path).unwrap(),
            cfg,
            profile,
            fast,
        }
    })
}

/// Items as one line of compact JSON (or not JSON at all), good and bad.
fn item() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("1e309".to_owned()),
        Just("-1e309".to_owned()),
        Just("1e200".to_owned()),
        Just("1.7976931348623157e308".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-0".to_owned()),
        Just("1e100".to_owned()),
        (-1e6f64..1e6).prop_map(|x| x.to_string()),
        (0u64..200).prop_map(|x| x.to_string()),
    ];
    let string = prop_oneof![
        Just(r#""north""#.to_owned()),
        Just(r#""\ud800""#.to_owned()),
        Just(r#""\udc00x""#.to_owned()),
        Just(r#""\ud83d\ude00""#.to_owned()),
        Just(r#""F""#.to_owned()),
        Just(r#""\u0046""#.to_owned()),
        (1usize..400).prop_map(|n| format!(r#""{}""#, "c".repeat(n))),
    ];
    let scalar = prop_oneof![
        number.clone(),
        string.clone(),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        (50usize..140).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d))),
    ];
    let field = prop_oneof![
        (number.clone()).prop_map(|n| format!(r#""features": {{"income": {n}}}"#)),
        (string.clone()).prop_map(|s| format!(r#""features": {{"region": {s}}}"#)),
        (string.clone()).prop_map(|s| format!(r#""attributes": {{"gender": {s}}}"#)),
        (string.clone()).prop_map(|s| format!(r#""id": {s}"#)),
        (scalar.clone()).prop_map(|v| format!(r#""extra": {v}"#)),
        (scalar.clone()).prop_map(|v| format!(r#""extra": {{"x": {v}, "x": 1}}"#)),
        Just(r#""label": 1"#.to_owned()),
        Just(r#""label": 1, "label": 0"#.to_owned()),
        (number.clone()).prop_map(|n| format!(r#""latency_ms": {n}"#)),
        (number.clone()).prop_map(|n| format!(r#""prediction": {{"label": 1, "score": {n}}}"#)),
        Just(r#""ts": "2026-12-01T08:00:00Z""#.to_owned()),
        Just(r#""ts": "yesterday""#.to_owned()),
    ];
    prop_oneof![
        8 => prop::collection::vec(field, 0..5).prop_map(|fields| {
            let mut all = vec![r#""prediction": {"label": 1, "score": 0.5}"#.to_owned()];
            all.extend(fields);
            format!("{{{}}}", all.join(", "))
        }),
        1 => scalar,
        1 => Just(r#"{"prediction": {"label": 1}"#.to_owned()),
        1 => Just("not json".to_owned()),
    ]
}

/// A verdict comparable across paths: the event, or the rejected field and reason.
fn verdict(r: &Result<aims_core::Event, aims_core::event::EventError>) -> String {
    match r {
        Ok(e) => format!("{e:?}"),
        Err(e) => format!("{} {}", e.field, e.reason.as_str()),
    }
}

fn well_formed(item: &str) -> bool {
    ingest::rule::split_json(item.as_bytes()).is_ok()
}

/// Flips, inserts and deletes bytes of `base` at `edits` positions.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(at, op, byte) in edits {
        if out.is_empty() {
            out.push(byte);
            continue;
        }
        let i = at % out.len();
        match op % 3 {
            0 => out[i] = byte,
            1 => out.insert(i, byte),
            _ => {
                out.remove(i);
            }
        }
    }
    out
}

fn check_events(items: &[ingest::Decoded], limits: &LimitsConfig) {
    let w = world();
    let mut summary = WindowSummary::new(&w.cfg.model, &w.profile);
    for (_, item) in items {
        if let Ok(e) = item {
            for v in &e.features {
                match v {
                    FeatureValue::Numeric(x) => assert!(x.is_finite() && x.abs() <= MAX_MAGNITUDE),
                    FeatureValue::Categorical(c) => assert!(c.len() <= limits.max_category_bytes),
                    FeatureValue::Missing => {}
                }
            }
            assert!(e
                .id
                .as_ref()
                .is_none_or(|id| id.len() <= limits.max_id_bytes));
            summary.record(&w.cfg.model, &w.profile, e);
        }
    }
    // Whatever got through, the summary it makes is one the collector will accept.
    invariants::validate(&summary).unwrap();
    assert!(serde_json::to_vec(&summary).unwrap().len() <= limits.max_summary_bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
    ))]

    /// One rule for both paths: the same items give the same verdicts as a JSON array and as
    /// NDJSON lines; a JSON body with an item that is not well-formed is refused whole.
    #[test]
    fn json_and_ndjson_judge_every_item_alike(items in prop::collection::vec(item(), 1..8)) {
        let w = world();
        let limits = LimitsConfig::default();
        let now = 1_800_000_000_000;
        let ndjson = items.join("\n");
        let json = format!("[{}]", items.join(", "));
        let lines = ingest::decode_events(BodyFormat::Ndjson, ndjson.as_bytes(), &w.cfg.model, &w.fast, &limits, now).unwrap();
        let array = ingest::decode_events(BodyFormat::Json, json.as_bytes(), &w.cfg.model, &w.fast, &limits, now);
        if items.iter().all(|i| well_formed(i)) {
            let array = array.unwrap();
            prop_assert_eq!(array.len(), lines.len());
            for ((_, a), (_, l)) in array.iter().zip(&lines) {
                prop_assert_eq!(verdict(a), verdict(l));
            }
        } else {
            prop_assert!(array.is_err());
        }
        check_events(&lines, &limits);
    }

    /// Event JSON bodies: mutated good and bad bodies never panic, and what they let through
    /// keeps the caps and makes a valid summary.
    #[test]
    fn event_json_bodies(items in prop::collection::vec(item(), 1..5), edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)) {
        let w = world();
        let limits = LimitsConfig { max_item_bytes: 4096, ..LimitsConfig::default() };
        let body = mutate(format!("[{}]", items.join(",")).as_bytes(), &edits);
        if let Ok(decoded) = ingest::decode_events(BodyFormat::Json, &body, &w.cfg.model, &w.fast, &limits, 0) {
            check_events(&decoded, &limits);
        }
    }

    /// Event NDJSON bodies, the same way, including gzip-free arbitrary bytes.
    #[test]
    fn event_ndjson_bodies(items in prop::collection::vec(item(), 1..5), edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)) {
        let w = world();
        let limits = LimitsConfig::default();
        let body = mutate(items.join("\n").as_bytes(), &edits);
        if let Ok(decoded) = ingest::decode_events(BodyFormat::Ndjson, &body, &w.cfg.model, &w.fast, &limits, 0) {
            check_events(&decoded, &limits);
        }
    }

    /// Label bodies: never panic; accepted ids keep the cap.
    #[test]
    fn label_bodies(
        ids in prop::collection::vec(prop_oneof![Just("\"p1\"".to_owned()), Just("7".to_owned()), (200usize..300).prop_map(|n| format!("\"{}\"", "i".repeat(n))), Just("\"\\ud800\"".to_owned())], 1..5),
        labels in prop::collection::vec(prop_oneof![Just("0"), Just("1"), Just("2"), Just("1e309"), Just("null")], 1..5),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
        ndjson in any::<bool>(),
    ) {
        let w = world();
        let limits = LimitsConfig::default();
        let items: Vec<String> = ids.iter().zip(labels.iter().cycle()).map(|(i, l)| format!(r#"{{"id": {i}, "label": {l}}}"#)).collect();
        let (format, text) = if ndjson { (BodyFormat::Ndjson, items.join("\n")) } else { (BodyFormat::Json, format!("[{}]", items.join(","))) };
        let body = mutate(text.as_bytes(), &edits);
        if let Ok(parsed) = ingest::parse_labels(format, &body, &limits) {
            for (_, raw) in parsed {
                if let Ok((id, _)) = raw.and_then(|r| w.cfg.model.validate_label(r)) {
                    prop_assert!(id.len() <= limits.max_id_bytes);
                }
            }
        }
    }

    /// Reference profiles (a file, a cached copy or the collector's answer): a mutated profile
    /// either fails to parse or to check, or it is usable: summaries built on it are valid and
    /// their byte bound is computable.
    #[test]
    fn reference_profiles(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4)) {
        let w = world();
        let bytes = mutate(&w.profile_json, &edits);
        if let Ok(p) = serde_json::from_slice::<ReferenceProfile>(&bytes) {
            if p.check_against(&w.cfg.model).is_ok() && p.hash_is_valid() {
                let s = WindowSummary::new(&w.cfg.model, &p);
                prop_assert!(invariants::validate(&s).is_ok());
                let bound = aims_agent::window::summary_bound(&w.cfg.model, &p, &LimitsConfig::default());
                prop_assert!(bound > 0);
            }
        }
    }
}

#[test]
fn the_worst_summary_fits_the_default_budget() {
    let w = world();
    let limits = LimitsConfig::default();
    let bound = aims_agent::window::summary_bound(&w.cfg.model, &w.profile, &limits);
    assert!(bound <= limits.max_summary_bytes, "{bound}");
    // A window filled with the longest unseen categories the caps allow stays under it.
    let mut s = WindowSummary::new(&w.cfg.model, &w.profile);
    let now = 0;
    for i in 0..100 {
        let region = format!("{i:03}{}", "\u{1}".repeat(limits.max_category_bytes - 3));
        let line = format!(
            r#"{{"id": "{}", "features": {{"region": {}, "income": -1e100}}, "prediction": {{"label": 1, "score": 0.5}}, "latency_ms": 1e100}}"#,
            "i".repeat(limits.max_id_bytes),
            serde_json::to_string(&region).unwrap()
        );
        let items = ingest::decode_events(
            BodyFormat::Ndjson,
            line.as_bytes(),
            &w.cfg.model,
            &w.fast,
            &limits,
            now,
        )
        .unwrap();
        s.record(&w.cfg.model, &w.profile, items[0].1.as_ref().unwrap());
    }
    invariants::validate(&s).unwrap();
    let size = serde_json::to_vec(&s).unwrap().len();
    assert!(size <= bound, "{size} > {bound}");
    eprintln!("worst-case summary bound {bound} bytes; a filled window {size} bytes");
}
