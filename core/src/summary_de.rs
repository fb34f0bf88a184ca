//! Decoding [`FeatureStats`] without buffering it first.
//!
//! `FeatureStats` is internally tagged (`{"kind": "numeric", ...}`). Serde's derived decoder for
//! such an enum cannot know the variant until it has seen the tag, so it first copies the whole
//! object into an intermediate tree, then decodes the variant from that: every feature of every
//! summary decoded twice, about a fifth of the collector's CPU per summary at ingest. Every
//! summary this code serialises puts `kind` first, so this decoder reads the first key and, when
//! it is `kind`, decodes the variant's fields straight from the input. An object whose `kind`
//! comes later (hand-written JSON) is buffered as before, and decodes to the same value.
//!
//! The wire format is unchanged; only the derived `Deserialize` is replaced.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::summary::{CategoricalStats, FeatureStats, NumericStats};

/// The tag's values.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Numeric,
    Categorical,
}

impl<'de> Deserialize<'de> for FeatureStats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FeatureVisitor)
    }
}

struct FeatureVisitor;

/// The first key of the object: the tag, or another field's name.
enum FirstKey {
    Kind,
    Other(String),
}

struct FirstKeySeed;

impl<'de> DeserializeSeed<'de> for FirstKeySeed {
    type Value = FirstKey;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FirstKey, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FirstKeySeed {
    type Value = FirstKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FirstKey, E> {
        Ok(if v == "kind" {
            FirstKey::Kind
        } else {
            FirstKey::Other(v.to_owned())
        })
    }
}

impl<'de> Visitor<'de> for FeatureVisitor {
    type Value = FeatureStats;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a feature's statistics, an object with a \"kind\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeatureStats, A::Error> {
        match map.next_key_seed(FirstKeySeed)? {
            Some(FirstKey::Kind) => match map.next_value::<Kind>()? {
                Kind::Numeric => NumericStats::deserialize(MapAccessDeserializer::new(map))
                    .map(FeatureStats::Numeric),
                Kind::Categorical => CategoricalStats::deserialize(MapAccessDeserializer::new(map))
                    .map(FeatureStats::Categorical),
            },
            Some(FirstKey::Other(first)) => buffered(first, map),
            None => Err(de::Error::missing_field("kind")),
        }
    }
}

/// The slow path: `kind` is not the first key, so the object is read whole, then decoded.
fn buffered<'de, A: MapAccess<'de>>(first: String, mut map: A) -> Result<FeatureStats, A::Error> {
    let mut fields = serde_json::Map::new();
    fields.insert(first, map.next_value()?);
    while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
        fields.insert(k, v);
    }
    let kind = fields
        .remove("kind")
        .ok_or_else(|| de::Error::missing_field("kind"))?;
    let rest = serde_json::Value::Object(fields);
    match Kind::deserialize(kind).map_err(de::Error::custom)? {
        Kind::Numeric => NumericStats::deserialize(rest).map(FeatureStats::Numeric),
        Kind::Categorical => CategoricalStats::deserialize(rest).map(FeatureStats::Categorical),
    }
    .map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric() -> FeatureStats {
        FeatureStats::Numeric(NumericStats {
            missing: 2,
            count: 5,
            sum: 0.1 + 0.2,
            sum_sq: 1e-300,
            min: Some(-1.5),
            max: Some(3.0),
            bins: vec![1, 0, 4],
            below_sum: -1.5,
            above_sum: 0.0,
            bin_positions: vec![7],
            tail_bins: vec![],
            tail_positions: vec![],
        })
    }

    fn categorical() -> FeatureStats {
        FeatureStats::Categorical(CategoricalStats {
            missing: 0,
            count: 3,
            counts: [("a".to_owned(), 1), ("\"}".to_owned(), 2)].into(),
            overflow: 1,
        })
    }

    #[test]
    fn kind_first_or_last_decodes_to_the_same_value() {
        for f in [numeric(), categorical()] {
            let json = serde_json::to_string(&f).unwrap();
            assert!(json.starts_with("{\"kind\":"), "{json}");
            assert_eq!(serde_json::from_str::<FeatureStats>(&json).unwrap(), f);
            // The same object with the tag moved to the end: the buffered path.
            let mut value = serde_json::to_value(&f).unwrap();
            let kind = value.as_object_mut().unwrap().remove("kind").unwrap();
            let mut text = serde_json::to_string(&value).unwrap();
            text.pop();
            text.push_str(&format!(",\"kind\":{kind}}}"));
            assert_eq!(serde_json::from_str::<FeatureStats>(&text).unwrap(), f);
        }
    }

    #[test]
    fn bad_tags_and_fields_are_named() {
        let err = |s: &str| {
            serde_json::from_str::<FeatureStats>(s)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{}").contains("missing field `kind`"), "{}", err("{}"));
        assert!(err("{\"count\": 1}").contains("missing field `kind`"));
        let unknown = err("{\"kind\": \"text\", \"count\": 1}");
        assert!(unknown.contains("unknown variant `text`"), "{unknown}");
        let late = err("{\"count\": 1, \"kind\": \"text\"}");
        assert!(late.contains("unknown variant `text`"), "{late}");
        let missing = err("{\"kind\": \"categorical\", \"count\": 1}");
        assert!(missing.contains("missing field `counts`"), "{missing}");
        let wrong = err("{\"kind\": \"numeric\", \"count\": -1, \"sum\": 0}");
        assert!(wrong.contains("invalid value"), "{wrong}");
        assert!(err("[1]").contains("invalid type"));
    }
}
