//! A schema-aware decoder for the common case: a well-formed event decoded straight into an
//! [`Event`], without building `serde_json::Value` trees first.
//!
//! It accepts only what it can decode exactly as `ModelSchema::validate` would (strings for
//! ids, categories and groups; integers or strings for classes; finite numbers elsewhere). On
//! anything else, valid or not, it gives up and the caller decodes the item again through the
//! general path, so every rejection and every unusual-but-valid event is still judged by
//! aims-core alone. A differential test checks both paths agree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use aims_core::event::{
    parse_timestamp, Event, FeatureValue, Prediction, Target, MAX_MAGNITUDE, RAW_EVENT_KEYS,
};
use aims_core::schema::{FeatureKind, ModelSchema, Task};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// FNV-1a: a much cheaper hash than SipHash for short names. The maps are built from the
/// schema and never grow from input (input keys are only looked up), so hash flooding cannot
/// degrade them.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

mod scan;

type NameMap<V> = HashMap<String, V, std::hash::BuildHasherDefault<Fnv>>;

/// Lookups derived once from a schema.
#[derive(Debug)]
pub struct FastDecoder {
    features: NameMap<(usize, FeatureKind)>,
    attributes: NameMap<usize>,
    schema: ModelSchema,
}

/// A JSON scalar as the fast path sees it; containers are skipped and reported as `Other`.
enum Scalar<'de> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(Cow<'de, str>),
    Other,
}

impl Scalar<'_> {
    fn number(&self) -> Option<f64> {
        match *self {
            Self::Unsigned(u) => Some(u as f64),
            Self::Signed(i) => Some(i as f64),
            Self::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The text of a class label: strings, and integers as JSON writes them.
    fn class_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Self::Unsigned(u) => Some(Cow::Owned(u.to_string())),
            Self::Signed(i) => Some(Cow::Owned(i.to_string())),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Unsigned(u))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Signed(i))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(f))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(s)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The next key of an object, borrowed from the input when it has no escapes (serde's own
/// `Cow<str>` always copies).
fn next_key<'de, A: MapAccess<'de>>(m: &mut A) -> Result<Option<Cow<'de, str>>, A::Error> {
    match m.next_key::<Scalar<'de>>()? {
        None => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(_) => give_up(),
    }
}

fn give_up<T, E: serde::de::Error>() -> Result<T, E> {
    Err(E::custom("not on the fast path"))
}

impl FastDecoder {
    /// Prepares the lookups of `schema`.
    pub fn new(schema: &ModelSchema) -> Self {
        Self {
            features: schema
                .features
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.clone(), (i, f.kind)))
                .collect(),
            attributes: schema
                .attributes
                .iter()
                .enumerate()
                .map(|(i, a)| (a.name.clone(), i))
                .collect(),
            schema: schema.clone(),
        }
    }

    /// The schema it decodes for.
    pub fn schema(&self) -> &ModelSchema {
        &self.schema
    }

    /// Decodes one JSON object; `None` when the general path must decide.
    pub fn decode(&self, json: &[u8], now_ms: i64) -> Option<Event> {
        let mut event = Event::blank(now_ms);
        self.decode_into(json, now_ms, &mut event).then_some(event)
    }

    /// The scanner alone: the event when the item is of the plainest kind (see `scan`), which
    /// also means it passes the JSON rule; `None` when the rule and the other paths must judge.
    pub fn decode_plain(&self, json: &[u8], now_ms: i64) -> Option<Event> {
        let mut event = Event::blank(now_ms);
        scan::decode_into(self, json, now_ms, &mut event).map(|()| event)
    }

    /// [`decode_plain`](Self::decode_plain) into `event`, reusing its buffers (category strings,
    /// id, vectors); false when the item is not of the plainest kind (`event` then holds nothing
    /// of use, and the next call fills it whole again).
    pub fn decode_plain_into(&self, json: &[u8], now_ms: i64, event: &mut Event) -> bool {
        scan::decode_into(self, json, now_ms, event).is_some()
    }

    /// [`decode`](Self::decode) into `event`, reusing its buffers when the line is of the
    /// plainest kind (see `scan`); false when the general path must decide (`event` then
    /// holds nothing of use).
    pub fn decode_into(&self, json: &[u8], now_ms: i64, event: &mut Event) -> bool {
        if scan::decode_into(self, json, now_ms, event).is_some() {
            return true;
        }
        match self.decode_serde(json, now_ms) {
            Some(e) => {
                *event = e;
                true
            }
            None => false,
        }
    }

    /// The serde fast path, for what the scanner gives up on.
    fn decode_serde(&self, json: &[u8], now_ms: i64) -> Option<Event> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let event = EventSeed { d: self, now_ms }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        event
    }

    fn class<E: serde::de::Error>(&self, v: &Scalar<'_>) -> Result<u32, E> {
        match v.class_text().and_then(|t| self.schema.class_index(&t)) {
            Some(c) => Ok(c as u32),
            None => give_up(),
        }
    }

    fn finite<E: serde::de::Error>(v: &Scalar<'_>) -> Result<f64, E> {
        match v.number() {
            Some(x) if x.is_finite() && x.abs() <= MAX_MAGNITUDE => Ok(x),
            _ => give_up(),
        }
    }
}

struct EventSeed<'a> {
    d: &'a FastDecoder,
    now_ms: i64,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Option<Event>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

struct FeaturesSeed<'a>(&'a FastDecoder);
struct AttributesSeed<'a>(&'a FastDecoder);
struct PredictionSeed<'a>(&'a FastDecoder);

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_> {
    type Value = Vec<FeatureValue>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_> {
    type Value = Vec<FeatureValue>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of features")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![FeatureValue::Missing; self.0.schema.features.len()];
        while let Some(key) = next_key(&mut m)? {
            let Some(&(i, kind)) = self.0.features.get(key.as_ref()) else {
                return give_up();
            };
            let v: Scalar<'de> = m.next_value()?;
            out[i] = match (kind, v) {
                (_, Scalar::Null) => FeatureValue::Missing,
                (FeatureKind::Numeric, v) => FeatureValue::Numeric(FastDecoder::finite(&v)?),
                (FeatureKind::Categorical, Scalar::Str(s)) => {
                    FeatureValue::Categorical(s.into_owned())
                }
                _ => return give_up(),
            };
        }
        Ok(out)
    }
}

impl<'de> DeserializeSeed<'de> for AttributesSeed<'_> {
    type Value = Vec<u16>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AttributesSeed<'_> {
    type Value = Vec<u16>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of attributes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let schema = &self.0.schema;
        let mut out: Vec<u16> = schema
            .attributes
            .iter()
            .map(|a| a.groups.len() as u16)
            .collect();
        while let Some(key) = next_key(&mut m)? {
            let Some(&i) = self.0.attributes.get(key.as_ref()) else {
                return give_up();
            };
            match m.next_value::<Scalar<'de>>()? {
                Scalar::Null => {}
                Scalar::Str(s) => out[i] = schema.group_of(i, &s),
                _ => return give_up(),
            }
        }
        Ok(out)
    }
}

impl<'de> DeserializeSeed<'de> for PredictionSeed<'_> {
    type Value = Prediction;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PredictionSeed<'_> {
    type Value = Prediction;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a prediction object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let d = self.0;
        let (mut label, mut score, mut value) = (None, None, None);
        while let Some(key) = next_key(&mut m)? {
            match key.as_ref() {
                "label" => label = Some(m.next_value::<Scalar<'de>>()?),
                "score" => score = Some(m.next_value::<Scalar<'de>>()?),
                "value" => value = Some(m.next_value::<Scalar<'de>>()?),
                // Per-class probabilities are checked (and kept) by the general path only.
                "scores" => return give_up(),
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        if d.schema.task == Task::Regression {
            return match value {
                Some(v) if !matches!(v, Scalar::Null) => {
                    FastDecoder::finite(&v).map(Prediction::Value)
                }
                _ => give_up(),
            };
        }
        let class = match label {
            Some(l) if !matches!(l, Scalar::Null) => d.class(&l)?,
            _ => return give_up(),
        };
        let score = match score {
            None | Some(Scalar::Null) => None,
            Some(s) => {
                let x = FastDecoder::finite(&s)?;
                if !(0.0..=1.0).contains(&x) {
                    return give_up();
                }
                Some(x)
            }
        };
        Ok(Prediction::Class { class, score })
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = Option<Event>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let d = self.d;
        let schema = &d.schema;
        let mut id = None;
        let mut ts_ms = self.now_ms;
        let mut features = None;
        let mut groups = None;
        let mut prediction = None;
        let mut label = None;
        let mut latency_ms = None;
        let mut failed = false;
        // The general path (a derived Deserialize) refuses a repeated known key; so must this.
        let mut seen = [false; RAW_EVENT_KEYS.len()];
        while let Some(key) = next_key(&mut m)? {
            if let Some(k) = RAW_EVENT_KEYS.iter().position(|k| *k == key.as_ref()) {
                if std::mem::replace(&mut seen[k], true) {
                    return give_up();
                }
            }
            match key.as_ref() {
                "id" => match m.next_value::<Scalar<'de>>()? {
                    Scalar::Null => id = None,
                    Scalar::Str(s) => id = Some(s.into_owned()),
                    _ => return give_up(),
                },
                "ts" => match m.next_value::<Scalar<'de>>()? {
                    Scalar::Null => ts_ms = self.now_ms,
                    Scalar::Str(s) => match parse_timestamp("ts", &s) {
                        Ok(t) => ts_ms = t,
                        Err(_) => return give_up(),
                    },
                    _ => return give_up(),
                },
                "features" => features = m.next_value_seed(OptionSeed(FeaturesSeed(d)))?,
                "attributes" => groups = m.next_value_seed(OptionSeed(AttributesSeed(d)))?,
                "prediction" => prediction = m.next_value_seed(OptionSeed(PredictionSeed(d)))?,
                "label" => {
                    label = match m.next_value::<Scalar<'de>>()? {
                        Scalar::Null => None,
                        v if schema.task == Task::Regression => {
                            Some(Target::Value(FastDecoder::finite(&v)?))
                        }
                        v => Some(Target::Class(d.class(&v)?)),
                    }
                }
                "latency_ms" => {
                    latency_ms = match m.next_value::<Scalar<'de>>()? {
                        Scalar::Null => None,
                        v => {
                            let x = FastDecoder::finite(&v)?;
                            if x < 0.0 {
                                return give_up();
                            }
                            Some(x)
                        }
                    }
                }
                "error" => {
                    failed = match m.next_value::<Scalar<'de>>()? {
                        Scalar::Null | Scalar::Bool(false) => false,
                        Scalar::Str(_) | Scalar::Bool(true) => true,
                        _ => return give_up(),
                    }
                }
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        let prediction = match (prediction, failed) {
            (Some(p), _) => p,
            (None, true) => Prediction::Failed,
            (None, false) => return give_up(),
        };
        Ok(Some(Event {
            id,
            ts_ms,
            features: features
                .unwrap_or_else(|| vec![FeatureValue::Missing; schema.features.len()]),
            groups: groups.unwrap_or_else(|| {
                schema
                    .attributes
                    .iter()
                    .map(|a| a.groups.len() as u16)
                    .collect()
            }),
            prediction,
            label,
            latency_ms,
        }))
    }
}

/// `null` or the inner seed's value.
struct OptionSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OptionSeed<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OptionSeed<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or an object")
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(de).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{Generator, Scenario};
    use aims_core::RawEvent;

    fn schema() -> ModelSchema {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
                .unwrap();
        let start = text.find("[model]").unwrap();
        let end = text.find("[reference]").unwrap();
        #[derive(Deserialize)]
        struct Wrapper {
            model: ModelSchema,
        }
        let w: Wrapper = toml_like(&text[start..end]);
        w.model.validated().unwrap()
    }

    fn toml_like<T: serde::de::DeserializeOwned>(text: &str) -> T {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    fn general(schema: &ModelSchema, line: &str) -> Option<Event> {
        serde_json::from_str::<RawEvent>(line)
            .ok()
            .and_then(|raw| schema.validate(raw, 7).ok())
    }

    #[test]
    fn agrees_with_the_general_path_on_simulated_traffic() {
        let schema = schema();
        let fast = FastDecoder::new(&schema);
        let mut g = Generator::new(11);
        for scenarios in [
            &[Scenario::Steady][..],
            &[Scenario::LabelDelay, Scenario::Bias, Scenario::Drift],
        ] {
            for _ in 0..2000 {
                let line =
                    serde_json::to_string(&g.event(scenarios, std::time::SystemTime::now()).event)
                        .unwrap();
                let quick = fast.decode(line.as_bytes(), 7);
                assert!(
                    quick.is_some(),
                    "simulated events take the fast path: {line}"
                );
                assert_eq!(quick, general(&schema, &line), "{line}");
            }
        }
    }

    #[test]
    fn never_accepts_what_the_general_path_rejects_and_agrees_when_it_accepts() {
        let schema = schema();
        let fast = FastDecoder::new(&schema);
        let cases = [
            r#"{"prediction": {"label": 1}}"#,
            r#"{"prediction": {"label": "1", "score": null}, "label": "0", "ts": null, "id": null}"#,
            r#"{"prediction": {"label": 1.0}}"#,
            r#"{"prediction": {"label": 2}}"#,
            r#"{"prediction": {"label": 1, "score": 1.5}}"#,
            r#"{"prediction": {"label": 1, "extra": [1, {"a": 2}]}, "unknown_top": {"x": 1}}"#,
            r#"{"error": "timeout"}"#,
            r#"{"error": 5}"#,
            r#"{}"#,
            r#"{"features": {"income": "x"}, "prediction": {"label": 1}}"#,
            r#"{"features": {"zip": 1}, "prediction": {"label": 1}}"#,
            r#"{"features": {"income": 1e400}, "prediction": {"label": 1}}"#,
            r#"{"features": {"region": 5}, "prediction": {"label": 1}}"#,
            r#"{"features": null, "attributes": null, "prediction": {"label": 0}}"#,
            r#"{"attributes": {"gender": "Z", "age_band": null}, "prediction": {"label": 0}}"#,
            r#"{"attributes": {"gender": 1}, "prediction": {"label": 0}}"#,
            r#"{"attributes": {"religion": "x"}, "prediction": {"label": 0}}"#,
            r#"{"id": 17, "prediction": {"label": 0}}"#,
            r#"{"id": "a\"b", "ts": "2026-11-29T10:15:02.120Z", "prediction": {"label": 0}, "latency_ms": 0}"#,
            r#"{"ts": "yesterday", "prediction": {"label": 0}}"#,
            r#"{"latency_ms": -1, "prediction": {"label": 0}}"#,
            r#"{"prediction": {"label": 0}, "prediction": {"label": 1}}"#,
            r#"[1, 2]"#,
            r#"{"prediction": {"label": 0}} trailing"#,
            r#"{"prediction": "yes"}"#,
            r#"{"prediction": {"label": 1, "scores": [0.2, 0.9]}}"#,
            r#"{"prediction": {"label": 1, "scores": [0.2, 0.8]}}"#,
        ];
        for line in cases {
            let general = general(&schema, line);
            if let Some(e) = fast.decode(line.as_bytes(), 7) {
                assert_eq!(Some(e), general, "{line}");
            }
        }
        // Per-class probabilities, good or bad, are left to the general path, which keeps them.
        for line in [
            r#"{"prediction": {"scores": [0.2, 0.8], "label": 1}}"#,
            r#"{"prediction": {"label": 1, "scores": null}}"#,
        ] {
            assert_eq!(fast.decode(line.as_bytes(), 7), None, "{line}");
        }
        assert!(general(
            &schema,
            r#"{"prediction": {"label": 1, "scores": [0.2, 0.9]}}"#
        )
        .is_none());
    }

    fn blank() -> Event {
        Event::blank(0)
    }

    /// The scanner, into a buffer reused from line to line (stale values must never leak).
    fn scanned(fast: &FastDecoder, line: &str, reused: &mut Event) -> Option<Event> {
        scan::decode_into(fast, line.as_bytes(), 7, reused).map(|()| reused.clone())
    }

    #[test]
    fn the_scanner_takes_plain_traffic_and_decodes_it_as_serde_does() {
        let schema = schema();
        let fast = FastDecoder::new(&schema);
        let mut g = Generator::new(5);
        let mut reused = blank();
        let (mut lines, mut scanned_lines) = (0, 0);
        for scenarios in [
            &[Scenario::Steady][..],
            &[Scenario::LabelDelay, Scenario::Bias, Scenario::Drift],
        ] {
            for _ in 0..2000 {
                let line =
                    serde_json::to_string(&g.event(scenarios, std::time::SystemTime::now()).event)
                        .unwrap();
                lines += 1;
                if let Some(e) = scanned(&fast, &line, &mut reused) {
                    scanned_lines += 1;
                    assert_eq!(
                        crate::ingest::rule::check_item(line.as_bytes(), 1 << 20),
                        Ok(())
                    );
                    assert_eq!(Some(e), fast.decode_serde(line.as_bytes(), 7), "{line}");
                }
            }
        }
        assert!(
            scanned_lines * 10 >= lines * 9,
            "{scanned_lines} of {lines} simulated lines scanned"
        );
    }

    #[test]
    fn the_scanner_gives_up_where_it_must() {
        let schema = schema();
        let fast = FastDecoder::new(&schema);
        let mut reused = blank();
        let base = r#"{"id":"a","prediction":{"label":1,"score":0.25},"label":0}"#;
        assert!(scanned(&fast, base, &mut reused).is_some());
        for line in [
            r#"{"id":"a\"b","prediction":{"label":1}}"#,
            r#"{"id":"a","prediction":{"label":1,"score":2.5e-1}}"#,
            r#"{"id":"a","prediction":{"label":1,"score":0.1234567890123456}}"#,
            r#"{"id":"a","prediction":{"label":1},"extra":1}"#,
            r#"{"id":"a","id":"b","prediction":{"label":1}}"#,
            r#"{"prediction":{"label":1,"label":0}}"#,
            r#"{"prediction":{"label":1,"scores":[0.1,0.9]}}"#,
            r#"{"prediction":{"label":-0}}"#,
            r#"{"prediction":{"label":1.0}}"#,
            r#"{"prediction":{"label":01}}"#,
            r#"{"prediction":{"label":1},}"#,
            r#"{"prediction":{"label":1}} x"#,
            r#"{"error":"timeout"}"#,
            r#"{"prediction":null}"#,
            r#"{"features":{"income":"5"},"prediction":{"label":1}}"#,
            r#"{"features":{"income":1,"income":2},"prediction":{"label":1}}"#,
            r#"{"features":{"income":1e400},"prediction":{"label":1}}"#,
            r#"{"latency_ms":-0.5,"prediction":{"label":1}}"#,
            "{\"id\":\"a\tb\",\"prediction\":{\"label\":1}}",
            r#"{"id":"abc"#,
            r#"{"i":"a","prediction":{"label":1}}"#,
            r#"{"idx":"a","prediction":{"label":1}}"#,
            r#"{"prediction":{"labe":1}}"#,
            r#"{"prediction":{"label":1,"scorE":0.5}}"#,
        ] {
            assert_eq!(scanned(&fast, line, &mut reused), None, "{line}");
        }
    }

    proptest::proptest! {
        /// Lines assembled from plain and unusual pieces: whatever the scanner takes, the
        /// serde path (and so the general path) decodes to the same event.
        #[test]
        fn whatever_the_scanner_takes_serde_decodes_alike(
            pieces in proptest::collection::vec((0usize..12, 0usize..10, proptest::bool::ANY), 0..10),
            label in 0usize..6,
            ws in proptest::bool::ANY,
        ) {
            let schema = schema();
            let fast = FastDecoder::new(&schema);
            let numbers = ["0", "-0", "1", "-17", "3.25", "-0.001", "12345678901234.5",
                "1234567890123456", "1e3", "0.5E-2"];
            let texts = ["\"a\"", "\"F\"", "\"\"", "\"x\\u0041\"", "null", "true", "[1]", "{}",
                "\"2026-11-29T10:15:02.120Z\"", "\"M\""];
            let numeric: Vec<&str> = schema.features.iter()
                .filter(|f| f.kind == FeatureKind::Numeric).map(|f| f.name.as_str()).collect();
            let categorical: Vec<&str> = schema.features.iter()
                .filter(|f| f.kind == FeatureKind::Categorical).map(|f| f.name.as_str()).collect();
            let attributes: Vec<&str> = schema.attributes.iter().map(|a| a.name.as_str()).collect();
            let sep = if ws { ", " } else { "," };
            let mut features = Vec::new();
            let mut attrs = Vec::new();
            let mut top = Vec::new();
            for (kind, pick, as_number) in pieces {
                let value = if as_number { numbers[pick] } else { texts[pick] };
                match kind {
                    0..=3 => features.push(format!("\"{}\":{value}", numeric[pick % numeric.len()])),
                    4 | 5 => features.push(format!("\"{}\":{value}", categorical[pick % categorical.len()])),
                    6 | 7 => attrs.push(format!("\"{}\":{value}", attributes[pick % attributes.len()])),
                    8 => top.push(format!("\"id\":{value}")),
                    9 => top.push(format!("\"ts\":{value}")),
                    10 => top.push(format!("\"latency_ms\":{value}")),
                    _ => top.push(format!("\"label\":{value}")),
                }
            }
            let labels = ["1", "0", "\"1\"", "\"0\"", "2", "true"];
            top.push(format!("\"prediction\":{{\"label\":{},\"score\":0.75}}", labels[label]));
            top.push(format!("\"features\":{{{}}}", features.join(sep)));
            top.push(format!("\"attributes\":{{{}}}", attrs.join(sep)));
            let line = format!("{{{}}}", top.join(sep));
            // A reused buffer that held a full event before.
            let mut reused = fast
                .decode_serde(br#"{"id":"old","features":{"income":1.5,"region":"north"},"prediction":{"label":1},"label":1,"latency_ms":3}"#, 7)
                .unwrap_or_else(blank);
            if let Some(e) = scanned(&fast, &line, &mut reused) {
                // What the scanner takes passes the JSON rule: ingest skips the rule for it.
                proptest::prop_assert_eq!(crate::ingest::rule::check_item(line.as_bytes(), 1 << 20), Ok(()));
                proptest::prop_assert_eq!(Some(e), fast.decode_serde(line.as_bytes(), 7), "{}", line);
            }
        }
    }
}
