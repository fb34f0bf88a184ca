//! The plainest event lines, scanned by hand: compact objects of known keys, strings without
//! escapes, numbers without exponents and of at most 15 digits. That is what models and
//! exporters write almost always, and it is decoded here without a serde visitor per field.
//!
//! Anything else (an escape, an exponent, a nested value the schema does not declare, an
//! unknown or repeated key, `error` set, invalid UTF-8) makes the scanner give up (`None`),
//! and the serde fast path, then aims-core's general path, decide: so it accepts a subset of
//! what [`FastDecoder`]'s serde path accepts, and decodes it to the same event (differential
//! tests in `fast::tests`). Numbers are read by `aims_core::decimal::plain`, correctly rounded
//! like `serde_json`'s `float_roundtrip` parser, so the bits agree.

use aims_core::decimal;
use aims_core::event::{
    parse_timestamp, Event, FeatureValue, Prediction, Target, MAX_MAGNITUDE, PREDICTION_EVENT_KEYS,
};
use aims_core::schema::{FeatureKind, Task};

use super::FastDecoder;

/// A scalar as the scanner reads it; containers make it give up.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    /// `true` or `false`, which no field of the plain kind takes.
    Bool,
    /// The number's text, checked against JSON's grammar (no exponent), and its value when it
    /// has at most 15 digits (read in the same pass, as `decimal::plain` reads it).
    Num(&'a str, Option<f64>),
    Str(&'a str),
}

impl<'a> Val<'a> {
    fn number(self) -> Option<f64> {
        match self {
            Val::Num(_, x) => x.filter(|x| x.is_finite() && x.abs() <= MAX_MAGNITUDE),
            _ => None,
        }
    }

    /// A class label's text: a string, or an integer as JSON writes it (`-0` is a float to
    /// serde_json, so it is left to the other paths).
    fn class_text(self) -> Option<&'a str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Num(t, _) if !t.contains('.') && t != "-0" => Some(t),
            _ => None,
        }
    }
}

/// Seen-flags for up to 256 keys of one object, on the stack.
#[derive(Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Marks `i`; false when it was marked already.
    fn mark(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let fresh = self.0[w] & b == 0;
        self.0[w] |= b;
        fresh
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1u64 << (i % 64)) != 0
    }
}

/// Whether two short strings are equal, compared in place: the keys compared here are a few
/// bytes long, for which a call to `memcmp` costs more than the comparison.
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// The index of a top-level key of an event, when it is one.
#[inline]
fn top_key(key: &str) -> Option<usize> {
    PREDICTION_EVENT_KEYS.iter().position(|k| same(k, key))
}

/// Reads the digits from `i` on into `m` (while it has fewer than 15) and `count`; returns
/// where they end.
#[inline]
fn digit_run(b: &[u8], mut i: usize, m: &mut u64, count: &mut usize) -> usize {
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        if *count < 15 {
            *m = *m * 10 + u64::from(c - b'0');
        }
        *count += 1;
        i += 1;
    }
    i
}

struct Cursor<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                return Some(c);
            }
        }
        None
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters.
    ///
    /// One pass over its bytes: keys and values here are a few bytes long, for which a call to
    /// memchr cost more than the whole loop (callgrind: ~150 instructions a string).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.i;
        let mut end = start;
        loop {
            match *b.get(end)? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => end += 1,
            }
        }
        self.i = end + 1;
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        self.text.get(start..end)
    }

    fn literal(&mut self, word: &str, v: Val<'a>) -> Option<Val<'a>> {
        let end = self.i + word.len();
        (self.bytes().get(self.i..end)? == word.as_bytes()).then(|| {
            self.i = end;
            v
        })
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`; an exponent gives up.
    fn number(&mut self) -> Option<Val<'a>> {
        let b = self.bytes();
        let start = self.i;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        // The digits as one integer (the first 15 of them), and how many there were.
        let (mut m, mut count) = (0u64, 0usize);
        match b.get(i)? {
            b'0' => {
                count = 1;
                i += 1;
            }
            b'1'..=b'9' => i = digit_run(b, i, &mut m, &mut count),
            _ => return None,
        }
        let mut fraction = 0;
        if b.get(i) == Some(&b'.') {
            let before = count;
            let end = digit_run(b, i + 1, &mut m, &mut count);
            if end == i + 1 {
                return None;
            }
            fraction = count - before;
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            return None;
        }
        self.i = i;
        let x = (count <= 15).then(|| decimal::value(m, fraction, negative));
        self.text.get(start..i).map(|t| Val::Num(t, x))
    }

    /// A scalar; objects and arrays give up.
    fn scalar(&mut self) -> Option<Val<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Val::Str),
            b'n' => self.literal("null", Val::Null),
            b't' => self.literal("true", Val::Bool),
            b'f' => self.literal("false", Val::Bool),
            _ => self.number(),
        }
    }

    /// Walks an object, calling `field` with each key, the cursor on its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `null` (true) or the start of an object (false); anything else gives up.
    fn null_or_object(&mut self) -> Option<bool> {
        match self.peek()? {
            b'n' => self.literal("null", Val::Null).map(|_| true),
            b'{' => Some(false),
            _ => None,
        }
    }
}

/// Decodes `json` into `event`, reusing its buffers (category strings, id, vectors); `None`
/// when the line is not of the plainest kind, `event` then holding nothing of use.
pub(super) fn decode_into(
    d: &FastDecoder,
    json: &[u8],
    now_ms: i64,
    event: &mut Event,
) -> Option<()> {
    let schema = &d.schema;
    if schema.features.len() > 256 || schema.attributes.len() > 256 {
        return None;
    }
    let text = std::str::from_utf8(json).ok()?;
    let mut c = Cursor { text, i: 0 };
    let mut seen = Seen::default();
    let mut features = Seen::default();
    let mut prediction = None;
    event.ts_ms = now_ms;
    event.label = None;
    event.latency_ms = None;
    let mut id_set = false;
    event.groups.clear();
    event
        .groups
        .extend(schema.attributes.iter().map(|a| a.groups.len() as u16));
    event
        .features
        .resize(schema.features.len(), FeatureValue::Missing);
    c.object(|c, key| {
        let k = top_key(key)?;
        if !seen.mark(k) {
            return None;
        }
        match k {
            0 => match c.scalar()? {
                Val::Null => {}
                Val::Str(s) => {
                    let buf = event.id.get_or_insert_with(String::new);
                    buf.clear();
                    buf.push_str(s);
                    id_set = true;
                }
                _ => return None,
            },
            1 => match c.scalar()? {
                Val::Null => {}
                Val::Str(s) => event.ts_ms = parse_timestamp("ts", s).ok()?,
                _ => return None,
            },
            2 => {
                if !c.null_or_object()? {
                    // Features usually come in schema order: the next one is tried first.
                    let mut next = 0;
                    c.object(|c, key| {
                        let (i, kind) = match schema.features.get(next) {
                            Some(f) if same(&f.name, key) => (next, f.kind),
                            _ => *d.features.get(key)?,
                        };
                        next = i + 1;
                        if !features.mark(i) {
                            return None;
                        }
                        let slot = &mut event.features[i];
                        match (kind, c.scalar()?) {
                            (_, Val::Null) => *slot = FeatureValue::Missing,
                            (FeatureKind::Numeric, v) => *slot = FeatureValue::Numeric(v.number()?),
                            (FeatureKind::Categorical, Val::Str(s)) => match slot {
                                FeatureValue::Categorical(buf) => {
                                    buf.clear();
                                    buf.push_str(s);
                                }
                                other => *other = FeatureValue::Categorical(s.to_owned()),
                            },
                            _ => return None,
                        }
                        Some(())
                    })?;
                }
            }
            3 => {
                if !c.null_or_object()? {
                    let mut attributes = Seen::default();
                    let mut next = 0;
                    c.object(|c, key| {
                        let i = match schema.attributes.get(next) {
                            Some(a) if same(&a.name, key) => next,
                            _ => *d.attributes.get(key)?,
                        };
                        next = i + 1;
                        if !attributes.mark(i) {
                            return None;
                        }
                        match c.scalar()? {
                            Val::Null => {}
                            Val::Str(s) => event.groups[i] = schema.group_of(i, s),
                            _ => return None,
                        }
                        Some(())
                    })?;
                }
            }
            4 => {
                if c.null_or_object()? {
                    return None;
                }
                let mut fields = Seen::default();
                let (mut label, mut score, mut value) = (None, None, None);
                c.object(|c, key| {
                    let is_score = same(key, "score");
                    let slot = match schema.task {
                        Task::Regression if same(key, "value") => &mut value,
                        Task::Regression => return None,
                        _ if same(key, "label") => &mut label,
                        _ if is_score => &mut score,
                        _ => return None,
                    };
                    if !fields.mark(usize::from(is_score)) {
                        return None;
                    }
                    *slot = Some(c.scalar()?);
                    Some(())
                })?;
                prediction = Some(if schema.task == Task::Regression {
                    Prediction::Value(value?.number()?)
                } else {
                    let class = d.schema.class_index(label?.class_text()?)? as u32;
                    let score = match score {
                        None | Some(Val::Null) => None,
                        Some(s) => Some(s.number().filter(|x| (0.0..=1.0).contains(x))?),
                    };
                    Prediction::Class { class, score }
                });
            }
            5 => {
                event.label = match c.scalar()? {
                    Val::Null => None,
                    v if schema.task == Task::Regression => Some(Target::Value(v.number()?)),
                    v => Some(Target::Class(d.schema.class_index(v.class_text()?)? as u32)),
                }
            }
            _ => {
                event.latency_ms = match c.scalar()? {
                    Val::Null => None,
                    v => Some(v.number().filter(|x| *x >= 0.0)?),
                }
            }
        }
        Some(())
    })?;
    if c.peek().is_some() {
        return None;
    }
    if !id_set {
        event.id = None;
    }
    for (i, slot) in event.features.iter_mut().enumerate() {
        if !features.has(i) {
            *slot = FeatureValue::Missing;
        }
    }
    event.prediction = prediction?;
    Some(())
}
