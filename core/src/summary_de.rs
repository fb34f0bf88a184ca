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
//! The count arrays (a numeric feature's bins and positions, the score bins; a 20-feature summary
//! holds about 2,500 counts) are read by [`counts`]: serde_json's element-by-element path costs
//! about 170 instructions a count, a third of decoding a summary. Taking the array as raw text
//! (serde_json still skips over it, about 75 a count) and scanning that (about 50) costs less;
//! decoding a summary took 7.5 % fewer instructions (BENCHMARKS.md, issue 14, round 10).
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

/// A `Vec<u64>` field of a summary (`#[serde(deserialize_with = "crate::summary_de::counts")]`).
///
/// From serde_json the array is taken as raw JSON text (serde_json's raw-value request: from a
/// slice or string it is the input's own text, borrowed, already checked to be valid JSON; from
/// a `Value` it is that value printed), then read in one pass. Any other decoder answers the
/// request as an ordinary newtype and the array is read element by element. Either way it
/// accepts what the derived decoder accepted, a JSON array of integers in `0..=u64::MAX`, and
/// refuses anything else with a message naming the element at fault.
pub(crate) fn counts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    d.deserialize_newtype_struct(RAW_VALUE_TOKEN, Counts)
}

/// The name under which serde_json hands a value over as its raw text (what its `RawValue`
/// asks for; other decoders see a plain newtype).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

struct Counts;

impl<'de> Visitor<'de> for Counts {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of counts (integers from 0)")
    }

    /// serde_json's raw value: a map of one entry whose value is the text.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u64>, A::Error> {
        if map.next_key::<de::IgnoredAny>()?.is_none() {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        map.next_value_seed(RawText)
    }

    /// Any other decoder.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(n) = seq.next_element()? {
            out.push(n);
        }
        out.shrink_to_fit();
        Ok(out)
    }
}

/// The raw text of a count array, borrowed when the input allows.
struct RawText;

impl<'de> DeserializeSeed<'de> for RawText {
    type Value = Vec<u64>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for RawText {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the raw text of an array of counts")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u64>, E> {
        parse_counts(text).map_err(de::Error::custom)
    }
}

/// Reads `text`, valid JSON, as an array of `u64`.
fn parse_counts(text: &str) -> Result<Vec<u64>, String> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            i += 1;
        }
        i
    };
    let refused = |what: &str| {
        let mut shown: String = what.chars().take(40).collect();
        if shown.len() < what.len() {
            shown.push('…');
        }
        shown
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'[') {
        return Err(format!(
            "invalid type: `{}`, expected an array of counts (integers from 0)",
            refused(text[i..].trim_end())
        ));
    }
    i = ws(i + 1);
    if b.get(i) == Some(&b']') {
        return Ok(Vec::new());
    }
    // Valid JSON whose elements are numbers has one comma fewer than elements; anything else
    // is refused below, so this is the exact length whenever it matters.
    let mut out = Vec::with_capacity(b[i..].iter().filter(|&&c| c == b',').count() + 1);
    loop {
        let start = i;
        let mut n: u64 = 0;
        while let Some(&c) = b.get(i) {
            let digit = c.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            n = n.wrapping_mul(10).wrapping_add(u64::from(digit));
            i += 1;
        }
        // Up to 19 digits cannot wrap; past that, read again with checks.
        let fits = i - start <= 19
            || text[start..i]
                .bytes()
                .try_fold(0u64, |m, c| {
                    m.checked_mul(10)?.checked_add(u64::from(c - b'0'))
                })
                .is_some();
        let after = ws(i);
        let ends = matches!(b.get(after), Some(b',' | b']'));
        if i == start || !ends || !fits {
            // Not a plain integer (a sign, a fraction, an exponent, null, a string, an array),
            // or one past u64.
            let token_end = start
                + b[start..]
                    .iter()
                    .position(|&c| c == b',' || c == b']')
                    .unwrap_or(b.len() - start);
            let token = refused(text[start..token_end].trim_end());
            let at = out.len();
            return Err(if i > start && ends {
                format!("count `{token}` at index {at} does not fit 64 bits")
            } else {
                format!("invalid count `{token}` at index {at}: expected an integer from 0")
            });
        }
        out.push(n);
        if b[after] == b']' {
            return Ok(out);
        }
        i = ws(after + 1);
    }
}

/// The features array of a summary, read from `b` (starting at its `[`) when it is in exactly
/// the form [`serde_json`] writes it: no whitespace, `kind` first, every field in declaration
/// order, the optional ones left out only as the serialiser leaves them out, integers without
/// leading zeros, every float with a fraction or an exponent, strings without escapes. Returns
/// the features and the index just past the array's `]`.
///
/// Anything else, well-formed or not, is `None`, and the caller decodes with serde_json
/// instead, so that input and serde_json's answer (value or error) decide the result, never
/// this reader. Within that form both agree by construction (tested against serde_json on
/// random summaries and on mutations of them): integers are `u64` without wrapping, floats are
/// parsed correctly rounded from a token of JSON's number grammar (Rust's parser, as exact as
/// serde_json's `float_roundtrip`), a category name is valid UTF-8 and unique.
///
/// It exists for speed: a 20-feature summary's features are about 2,500 counts, which serde_json
/// reads (skips as raw text, then [`counts`] scans them) at well over a hundred instructions
/// each; this reads a count in about ten (BENCHMARKS.md, issue 14, round 11).
pub(crate) fn canonical_features(b: &[u8]) -> Option<(Vec<FeatureStats>, usize)> {
    let mut p = Canonical {
        b,
        i: 0,
        scratch: Vec::new(),
    };
    p.lit(b"[")?;
    let mut out = Vec::new();
    if p.eat(b']') {
        return Some((out, p.i));
    }
    loop {
        out.push(p.feature()?);
        if p.eat(b',') {
            continue;
        }
        p.lit(b"]")?;
        return Some((out, p.i));
    }
}

/// `text` as a JSON integer in `0..=u64::MAX`: digits only, no leading zero.
fn integer(text: &[u8]) -> Option<u64> {
    let digit = |c: u8| {
        let d = c.wrapping_sub(b'0');
        (d <= 9).then_some(u64::from(d))
    };
    match text {
        [] | [b'0', _, ..] => None,
        [c] => digit(*c),
        // Up to 19 digits cannot wrap.
        _ if text.len() <= 19 => text
            .iter()
            .try_fold(0, |n: u64, &c| Some(n * 10 + digit(c)?)),
        _ => text
            .iter()
            .try_fold(0, |n: u64, &c| n.checked_mul(10)?.checked_add(digit(c)?)),
    }
}

/// A cursor over text in the serialiser's exact form; every method is `None` on anything else.
struct Canonical<'a> {
    b: &'a [u8],
    i: usize,
    /// The count array being read.
    scratch: Vec<u64>,
}

impl Canonical<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn lit(&mut self, text: &[u8]) -> Option<()> {
        if self.b[self.i.min(self.b.len())..].starts_with(text) {
            self.i += text.len();
            Some(())
        } else {
            None
        }
    }

    /// `,"name":` when it comes next (a field the serialiser may leave out).
    fn field(&mut self, name: &str) -> bool {
        let rest = &self.b[self.i.min(self.b.len())..];
        let n = name.len();
        let hit = rest.len() > n + 4
            && rest[0] == b','
            && rest[1] == b'"'
            && &rest[2..2 + n] == name.as_bytes()
            && rest[2 + n] == b'"'
            && rest[3 + n] == b':';
        if hit {
            self.i += n + 4;
        }
        hit
    }

    /// `,"name":`, which must come next.
    fn need(&mut self, name: &str) -> Option<()> {
        self.field(name).then_some(())
    }

    /// An integer in `0..=u64::MAX`, followed by a separator.
    fn u64(&mut self) -> Option<u64> {
        let start = self.i;
        self.digits();
        let n = integer(&self.b[start..self.i])?;
        self.at_separator().then_some(n)
    }

    fn at_separator(&self) -> bool {
        matches!(self.b.get(self.i), Some(b',' | b'}' | b']'))
    }

    /// A float token of JSON's grammar with a fraction or an exponent, finite once parsed.
    fn f64(&mut self) -> Option<f64> {
        let start = self.i;
        self.eat(b'-');
        let int = self.digits();
        if int == 0 || (int > 1 && self.b[self.i - int] == b'0') {
            return None;
        }
        let mut exact = true;
        if self.eat(b'.') {
            exact = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if self.eat(b'e') || self.eat(b'E') {
            exact = false;
            let _ = self.eat(b'+') || self.eat(b'-');
            if self.digits() == 0 {
                return None;
            }
        }
        if exact || !self.at_separator() {
            return None;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        text.parse::<f64>().ok().filter(|x| x.is_finite())
    }

    fn opt_f64(&mut self) -> Option<Option<f64>> {
        if self.lit(b"null").is_some() {
            return self.at_separator().then_some(None);
        }
        self.f64().map(Some)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// `[n,n,...]`, held at its exact length. Read into the cursor's scratch, then copied: the
    /// length is not known until the `]`. Most counts are one digit (`0,`), read in a step.
    fn counts(&mut self) -> Option<Vec<u64>> {
        let b = self.b;
        let mut j = self.i;
        if b.get(j) != Some(&b'[') {
            return None;
        }
        j += 1;
        if b.get(j) == Some(&b']') {
            self.i = j + 1;
            return Some(Vec::new());
        }
        let out = &mut self.scratch;
        out.clear();
        loop {
            let first = b.get(j)?.wrapping_sub(b'0');
            if first > 9 {
                return None;
            }
            let mut n = u64::from(first);
            j += 1;
            let mut next = *b.get(j)?;
            if next.is_ascii_digit() {
                // Several digits: read with `integer`'s checks (no leading zero, no wrap).
                let start = j - 1;
                while next.is_ascii_digit() {
                    j += 1;
                    next = *b.get(j)?;
                }
                n = integer(&b[start..j])?;
            }
            out.push(n);
            j += 1;
            match next {
                b',' => {}
                b']' => break,
                _ => return None,
            }
        }
        self.i = j;
        Some(out.as_slice().to_vec())
    }

    /// A string without escapes or control characters, valid UTF-8.
    fn string(&mut self) -> Option<String> {
        self.lit(b"\"")?;
        let start = self.i;
        let len = self.b[start..].iter().position(|&c| c == b'"')?;
        let raw = &self.b[start..start + len];
        if raw.iter().any(|&c| c == b'\\' || c < 0x20) {
            return None;
        }
        self.i = start + len + 1;
        std::str::from_utf8(raw).ok().map(str::to_owned)
    }

    fn feature(&mut self) -> Option<FeatureStats> {
        self.lit(b"{\"kind\":\"")?;
        if self.lit(b"numeric\"").is_some() {
            self.numeric().map(FeatureStats::Numeric)
        } else {
            self.lit(b"categorical\"")?;
            self.categorical().map(FeatureStats::Categorical)
        }
    }

    /// [`NumericStats`]'s fields, in its declaration order.
    fn numeric(&mut self) -> Option<NumericStats> {
        let mut s = NumericStats::default();
        if self.field("missing") {
            s.missing = self.u64()?;
        }
        self.need("count")?;
        s.count = self.u64()?;
        self.need("sum")?;
        s.sum = self.f64()?;
        self.need("sum_sq")?;
        s.sum_sq = self.f64()?;
        self.need("min")?;
        s.min = self.opt_f64()?;
        self.need("max")?;
        s.max = self.opt_f64()?;
        self.need("bins")?;
        s.bins = self.counts()?;
        self.need("below_sum")?;
        s.below_sum = self.f64()?;
        self.need("above_sum")?;
        s.above_sum = self.f64()?;
        if self.field("bin_positions") {
            s.bin_positions = self.counts()?;
        }
        if self.field("tail_bins") {
            s.tail_bins = self.counts()?;
        }
        if self.field("tail_positions") {
            s.tail_positions = self.counts()?;
        }
        self.lit(b"}")?;
        Some(s)
    }

    /// [`CategoricalStats`]'s fields, in its declaration order.
    fn categorical(&mut self) -> Option<CategoricalStats> {
        let mut s = CategoricalStats::default();
        if self.field("missing") {
            s.missing = self.u64()?;
        }
        self.need("count")?;
        s.count = self.u64()?;
        self.need("counts")?;
        self.lit(b"{")?;
        if !self.eat(b'}') {
            loop {
                let name = self.string()?;
                self.lit(b":")?;
                let n = self.u64()?;
                if s.counts.insert(name, n).is_some() {
                    return None;
                }
                if self.eat(b',') {
                    continue;
                }
                self.lit(b"}")?;
                break;
            }
        }
        if self.field("overflow") {
            s.overflow = self.u64()?;
        }
        self.lit(b"}")?;
        Some(s)
    }
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
    fn counts_read_as_the_derived_decoder_read_them() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Fast(#[serde(deserialize_with = "counts")] Vec<u64>);
        #[derive(Deserialize, Debug, PartialEq)]
        struct Derived(Vec<u64>);
        for text in [
            "[]",
            " [ ] ",
            "[0]",
            "[1,0,4]",
            "[ 1 , 22\n,\t333 ]",
            "[18446744073709551615, 0]",
            "[1779830,551732,109744,0]",
        ] {
            let fast: Fast = serde_json::from_str(text).unwrap();
            let derived: Derived = serde_json::from_str(text).unwrap();
            assert_eq!(fast.0, derived.0, "{text}");
            assert_eq!(fast.0.capacity(), fast.0.len(), "{text}");
            // From a `Value` (the buffered path) too.
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::from_value::<Fast>(value).unwrap(), fast);
        }
        for (text, says) in [
            (
                "[1,-1]",
                "invalid count `-1` at index 1: expected an integer from 0",
            ),
            ("[1.5]", "invalid count `1.5` at index 0"),
            ("[1e3]", "invalid count `1e3` at index 0"),
            ("[2, null]", "invalid count `null` at index 1"),
            ("[\"3\"]", "invalid count `\"3\"` at index 0"),
            ("[[1]]", "invalid count `[1` at index 0"),
            (
                "[18446744073709551616]",
                "count `18446744073709551616` at index 0 does not fit 64 bits",
            ),
            ("null", "invalid type: `null`, expected an array of counts"),
            (
                "{\"a\": 1}",
                "invalid type: `{\"a\": 1}`, expected an array",
            ),
        ] {
            let err = serde_json::from_str::<Fast>(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(serde_json::from_str::<Derived>(text).is_err(), "{text}");
        }
        // A decoder other than serde_json reads the array element by element, alike.
        for counts in [vec![], vec![0], vec![1, 0, 4, u64::MAX]] {
            let d = serde::de::value::SeqDeserializer::<_, de::value::Error>::new(
                counts.clone().into_iter(),
            );
            assert_eq!(super::counts(d).unwrap(), counts);
        }
        let d = serde::de::value::SeqDeserializer::<_, de::value::Error>::new([-1i64].into_iter());
        assert!(super::counts(d).is_err());
        // Invalid JSON never reaches the scan: serde_json refuses it first.
        assert!(serde_json::from_str::<Fast>("[1,]").is_err());
        assert!(serde_json::from_str::<Fast>("[01]").is_err());
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
