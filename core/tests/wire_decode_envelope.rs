//! `wire::decode_envelope`: the collector's decoder of summary envelopes. Its fast path reads
//! the features of an envelope in the serialiser's exact form by hand; whatever the input, the
//! answer must be serde_json's own: the same value, to the bit, or the same error.

#[path = "support/twenty_features.rs"]
mod twenty_features;

use aims_core::summary::FeatureStats;
use aims_core::wire::{decode_canonical, decode_envelope, SummaryEnvelope};
use proptest::prelude::*;
use twenty_features::summary;

/// The 20-feature envelope (built once: the properties edit copies of it).
fn envelope() -> SummaryEnvelope {
    static ONE: std::sync::OnceLock<SummaryEnvelope> = std::sync::OnceLock::new();
    ONE.get_or_init(build).clone()
}

fn build() -> SummaryEnvelope {
    SummaryEnvelope::new("agent-0", "m", "1.0", 0, 60_000, 0, summary())
}

/// What serde_json answers for `body`, and what `decode_envelope` answers: values compared by
/// their JSON (which tells -0.0 from 0.0), errors by their messages.
fn answers(body: &[u8]) -> (Result<String, String>, Result<String, String>) {
    let show = |r: serde_json::Result<SummaryEnvelope>| {
        r.map(|e| serde_json::to_string(&e).unwrap())
            .map_err(|e| e.to_string())
    };
    (
        show(serde_json::from_slice(body)),
        show(decode_envelope(body)),
    )
}

#[test]
fn a_serialised_envelope_takes_the_fast_path_and_decodes_alike() {
    let e = envelope();
    let body = serde_json::to_vec(&e).unwrap();
    let fast = decode_canonical(&body).expect("the serialiser's own form is read by hand");
    assert_eq!(fast, e);
    assert_eq!(serde_json::to_vec(&fast).unwrap(), body);
    let (reference, ours) = answers(&body);
    assert_eq!(ours, reference);
}

#[test]
fn any_other_form_declines_to_serde_json() {
    let e = envelope();
    let compact = serde_json::to_string(&e).unwrap();
    let pretty = serde_json::to_string_pretty(&e).unwrap();
    // A category name that needs an escape, the tag not first, an integer where a float goes.
    let mut escaped = e.clone();
    for f in &mut escaped.summary.features {
        if let FeatureStats::Categorical(c) = f {
            c.counts.insert("a\"b".to_owned(), 1);
            c.count += 1;
        }
    }
    let escaped = serde_json::to_string(&escaped).unwrap();
    let late_kind = compact.replacen("{\"kind\":\"numeric\",\"count\":", "{\"count\":", 1);
    let late_kind = late_kind.replacen(
        "\"tail_positions\":",
        "\"kind\":\"numeric\",\"tail_positions\":",
        1,
    );
    let int_sum = replaced_once(&compact, "\"below_sum\":0.0", "\"below_sum\":0");
    for body in [&pretty, &escaped, &late_kind, &int_sum] {
        assert!(
            decode_canonical(body.as_bytes()).is_none(),
            "{}",
            &body[..80]
        );
        let (reference, ours) = answers(body.as_bytes());
        assert!(reference.is_ok(), "{reference:?}");
        assert_eq!(ours, reference);
    }
}

/// Edge cases decided by hand: each answered as serde_json answers it.
#[test]
fn edges_answer_as_serde_json() {
    let body = serde_json::to_string(&envelope()).unwrap();
    let count = "{\"kind\":\"numeric\",\"count\":";
    let bins = "\"bins\":[";
    let name = "\"counts\":{\"";
    for (from, to, fast) in [
        // u64::MAX is a count; one past it is not (serde_json refuses it).
        (
            count,
            format!("{count}18446744073709551615,\"x\":0,\"count\":"),
            false,
        ),
        (bins, format!("{bins}18446744073709551615,"), true),
        (bins, format!("{bins}18446744073709551616,"), false),
        (bins, format!("{bins}99999999999999999999,"), false),
        (bins, format!("{bins}00,"), false),
        (bins, format!("{bins}07,"), false),
        (count, format!("{count}0"), false),
        // A count array closed by anything but `]`.
        ("],\"below_sum\":", "},\"below_sum\":".to_owned(), false),
        ("],\"below_sum\":", "x,\"below_sum\":".to_owned(), false),
        // A raw control character in a category name is invalid JSON.
        (name, format!("{name}\u{1}"), false),
        (name, format!("{name}\t"), false),
        // The same category twice (serde_json keeps the last).
        (name, format!("{name}dup\":1,\"dup\":2,\""), false),
    ] {
        let edited = body.replacen(from, &to, 1);
        assert_ne!(edited, body);
        assert_eq!(decode_canonical(edited.as_bytes()).is_some(), fast, "{to}");
        let (reference, ours) = answers(edited.as_bytes());
        assert_eq!(ours, reference, "{to}");
    }
}

fn replaced_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

/// Interesting bytes for mutations: JSON's structure, number characters, escapes.
const BYTES: &[u8] = b" ,:[]{}\"\\0123456789.eE+-nul";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Up to three random edits anywhere in the envelope: the answer is serde_json's.
    #[test]
    fn mutated_envelopes_answer_as_serde_json(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..3, prop::sample::select(BYTES)), 1..4),
    ) {
        let mut body = serde_json::to_vec(&envelope()).unwrap();
        for (at, kind, byte) in edits {
            let i = at.index(body.len());
            match kind {
                0 => body[i] = byte,
                1 => { body.remove(i); }
                _ => body.insert(i, byte),
            }
        }
        let (reference, ours) = answers(&body);
        prop_assert_eq!(ours, reference);
    }

    /// A random token as a float, an optional float and a count: the answer is serde_json's.
    #[test]
    fn number_tokens_answer_as_serde_json(
        token in "-?[0-9]{0,22}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,4})?|null|-?0\\.[0-9]{17,30}e-?[0-9]{1,3}",
        field in prop::sample::select(vec!["\"sum\":", "\"min\":", "\"count\":", "\"above_sum\":"]),
    ) {
        let body = serde_json::to_string(&envelope()).unwrap();
        let at = body.find(field).unwrap() + field.len();
        let end = at + body[at..].find([',', '}']).unwrap();
        let body = format!("{}{token}{}", &body[..at], &body[end..]);
        let (reference, ours) = answers(body.as_bytes());
        prop_assert_eq!(ours, reference);
    }

    /// Random values in every field of the features, serialised: read by hand, to the bit.
    #[test]
    fn random_features_round_trip_through_the_fast_path(
        bits in prop::collection::vec(any::<u64>(), 8),
        counts in prop::collection::vec(any::<u64>(), 0..6),
        name in "[a-zA-Z0-9 _.é€-]{0,12}",
        absent in any::<bool>(),
    ) {
        let mut e = envelope();
        let float = |k: usize| {
            let x = f64::from_bits(bits[k]);
            if x.is_finite() { x } else { bits[k] as f64 }
        };
        for f in &mut e.summary.features {
            match f {
                FeatureStats::Numeric(n) => {
                    n.missing = bits[0];
                    n.count = bits[1];
                    n.sum = float(2);
                    n.sum_sq = float(3);
                    n.min = (!absent).then(|| float(4));
                    n.max = (!absent).then(|| float(5));
                    n.bins = counts.clone();
                    n.below_sum = float(6);
                    n.above_sum = -float(7);
                    n.bin_positions = if absent { vec![] } else { counts.clone() };
                }
                FeatureStats::Categorical(c) => {
                    c.missing = bits[1];
                    c.counts.insert(name.clone(), bits[0]);
                    c.overflow = if absent { 0 } else { bits[2] };
                }
            }
        }
        let body = serde_json::to_vec(&e).unwrap();
        let fast = decode_canonical(&body);
        prop_assert!(fast.is_some());
        prop_assert_eq!(serde_json::to_vec(&fast.unwrap()).unwrap(), body.clone());
        let (reference, ours) = answers(&body);
        prop_assert_eq!(ours, reference);
    }
}
