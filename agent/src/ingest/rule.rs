//! The one JSON rule every ingest item passes before it is decoded, on the JSON and the NDJSON
//! paths alike, so the same item gets the same verdict whichever way it arrives.
//!
//! Beyond RFC 8259 well-formedness an item must: be an object; be no longer than the item cap;
//! nest no deeper than [`MAX_DEPTH`]; repeat no key within an object (compared after unescaping);
//! hold only numbers that are finite as `f64` (`1e309` is refused); hold only strings that are
//! valid UTF-8 without lone surrogate escapes. These apply everywhere in the item, unknown fields
//! included, because serde would otherwise judge them differently by path (a derived
//! `Deserialize` skips unknown fields, a `Value` tree keeps the last duplicate).
//!
//! The scanner is iterative (a bit per nesting level), so a body of 16 MiB of `[` costs 2 MiB,
//! not a stack overflow. A violation inside an element does not stop the scan: the element's end
//! is still found, so one bad element of a JSON array costs only itself.

use std::borrow::Cow;

use aims_core::event::{EventError, RejectReason};

/// Deepest nesting an item may have (serde_json's own limit is 128, so it is never reached).
pub const MAX_DEPTH: usize = 64;

/// A JSON text that is not well-formed: where and why. The item's (or body's) end cannot be
/// found past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    /// Byte offset.
    pub offset: usize,
    /// What was expected.
    pub message: &'static str,
}

impl std::fmt::Display for Syntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Nesting kinds, one bit per level (set = object).
#[derive(Default)]
struct Stack {
    bits: Vec<u64>,
    depth: usize,
}

impl Stack {
    fn push(&mut self, object: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if word == self.bits.len() {
            self.bits.push(0);
        }
        if object {
            self.bits[word] |= 1 << bit;
        } else {
            self.bits[word] &= !(1 << bit);
        }
        self.depth += 1;
    }

    fn top_is_object(&self) -> Option<bool> {
        let d = self.depth.checked_sub(1)?;
        Some(self.bits[d / 64] & (1 << (d % 64)) != 0)
    }
}

/// Scans one JSON value starting at `pos` (after whitespace); returns its end, and the first
/// rule violation inside it (if any). `Err` only when it is not well-formed JSON.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    violation: Option<String>,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8], pos: usize) -> Self {
        Self {
            b,
            pos,
            violation: None,
        }
    }

    fn violate(&mut self, message: impl FnOnce() -> String) {
        if self.violation.is_none() {
            self.violation = Some(message());
        }
    }

    fn syntax<T>(&self, message: &'static str) -> Result<T, Syntax> {
        Err(Syntax {
            offset: self.pos,
            message,
        })
    }

    fn ws(&mut self) {
        while self.pos < self.b.len() && is_ws(self.b[self.pos]) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Syntax> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.syntax("invalid literal")
        }
    }

    fn hex4(&mut self) -> Result<u16, Syntax> {
        let Some(digits) = self.b.get(self.pos..self.pos + 4) else {
            return self.syntax("truncated \\u escape");
        };
        let text = std::str::from_utf8(digits).ok();
        match text.and_then(|t| u16::from_str_radix(t, 16).ok()) {
            Some(u) if digits.iter().all(u8::is_ascii_hexdigit) => {
                self.pos += 4;
                Ok(u)
            }
            _ => self.syntax("invalid \\u escape"),
        }
    }

    /// A string at `pos` (on its opening quote); returns its unescaped bytes when `keep`.
    fn string(&mut self, keep: bool) -> Result<Option<Cow<'a, [u8]>>, Syntax> {
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            // Fast skip over plain bytes.
            let rest = &self.b[self.pos..];
            let run = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(rest.len());
            if std::str::from_utf8(&rest[..run]).is_err() {
                self.violate(|| "a string is not valid UTF-8".to_owned());
            }
            if let Some(o) = owned.as_mut() {
                o.extend_from_slice(&rest[..run]);
            }
            self.pos += run;
            match self.peek() {
                None => return self.syntax("unterminated string"),
                Some(b'"') => {
                    let raw = &self.b[start..self.pos];
                    self.pos += 1;
                    if !keep {
                        return Ok(None);
                    }
                    return Ok(Some(match owned {
                        Some(o) => Cow::Owned(o),
                        None => Cow::Borrowed(raw),
                    }));
                }
                Some(b'\\') => {
                    if keep && owned.is_none() {
                        owned = Some(self.b[start..self.pos].to_vec());
                    }
                    self.pos += 1;
                    let esc = self.peek();
                    self.pos += 1;
                    let simple = match esc {
                        Some(b'"') => Some(b'"'),
                        Some(b'\\') => Some(b'\\'),
                        Some(b'/') => Some(b'/'),
                        Some(b'b') => Some(8),
                        Some(b'f') => Some(12),
                        Some(b'n') => Some(b'\n'),
                        Some(b'r') => Some(b'\r'),
                        Some(b't') => Some(b'\t'),
                        Some(b'u') => None,
                        _ => return self.syntax("invalid escape"),
                    };
                    let ch = match simple {
                        Some(c) => Some(char::from(c)),
                        None => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                if self.b[self.pos..].starts_with(b"\\u") {
                                    self.pos += 2;
                                    let lo = self.hex4()?;
                                    if (0xDC00..0xE000).contains(&lo) {
                                        let c = 0x10000
                                            + ((u32::from(hi) - 0xD800) << 10)
                                            + (u32::from(lo) - 0xDC00);
                                        char::from_u32(c)
                                    } else {
                                        None
                                    }
                                } else {
                                    None
                                }
                            } else if (0xDC00..0xE000).contains(&hi) {
                                None
                            } else {
                                char::from_u32(u32::from(hi))
                            }
                        }
                    };
                    match (ch, owned.as_mut()) {
                        (None, _) => self.violate(|| "a string holds a lone surrogate".to_owned()),
                        (Some(c), Some(o)) => {
                            let mut buf = [0u8; 4];
                            o.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        (Some(_), None) => {}
                    }
                }
                Some(_) => return self.syntax("control character in a string"),
            }
        }
    }

    fn number(&mut self) -> Result<(), Syntax> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |s: &mut Self| {
            let n = s.b[s.pos..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            s.pos += n;
            n
        };
        let int_digits = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(c) if c.is_ascii_digit() => digits(self),
            _ => return self.syntax("invalid number"),
        };
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return self.syntax("invalid number");
            }
        }
        let mut exponent_digits = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            exponent_digits = digits(self);
            if exponent_digits == 0 {
                return self.syntax("invalid number");
            }
        }
        // Below 10^300 a number is finite for sure; only longer ones (or large exponents) are
        // parsed to find out, so the common case costs no float parse.
        let surely_finite = exponent_digits <= 2 && int_digits < 200;
        if !surely_finite {
            let text = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("");
            if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                self.violate(|| format!("the number {text} is out of range"));
            }
        }
        Ok(())
    }

    /// One whole value; `pos` ends just past it.
    fn value(&mut self) -> Result<(), Syntax> {
        let mut stack = Stack::default();
        // Keys of each open object within MAX_DEPTH, to find duplicates.
        let mut keys: Vec<Vec<Cow<'a, [u8]>>> = Vec::new();
        loop {
            self.ws();
            // A value.
            match self.peek() {
                Some(b'{') | Some(b'[') => {
                    let object = self.peek() == Some(b'{');
                    self.pos += 1;
                    stack.push(object);
                    if stack.depth == MAX_DEPTH + 1 {
                        self.violate(|| format!("nesting deeper than {MAX_DEPTH}"));
                    }
                    if object && stack.depth <= MAX_DEPTH {
                        keys.push(Vec::new());
                    }
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        self.close(&mut stack, &mut keys);
                    } else if object {
                        self.key(&stack, &mut keys)?;
                        continue;
                    } else {
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string(false)?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return self.syntax("expected a value"),
            }
            // After a value: a separator or closers.
            loop {
                let Some(object) = stack.top_is_object() else {
                    return Ok(());
                };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.ws();
                            self.key(&stack, &mut keys)?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        self.close(&mut stack, &mut keys);
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        self.close(&mut stack, &mut keys);
                    }
                    _ => return self.syntax("expected ',' or a closing bracket"),
                }
            }
        }
    }

    /// Pops a level just closed; checks an object's keys for duplicates.
    fn close(&mut self, stack: &mut Stack, keys: &mut Vec<Vec<Cow<'a, [u8]>>>) {
        let object = stack.top_is_object() == Some(true);
        if object && stack.depth <= MAX_DEPTH {
            let mut names = keys.pop().unwrap_or_default();
            let dup = if names.len() <= 16 {
                names
                    .iter()
                    .enumerate()
                    .find(|(i, k)| names[..*i].contains(k))
                    .map(|(_, k)| k.clone())
            } else {
                names.sort_unstable();
                names
                    .windows(2)
                    .find(|w| w[0] == w[1])
                    .map(|w| w[0].clone())
            };
            if let Some(k) = dup {
                self.violate(|| format!("duplicate key {:?}", String::from_utf8_lossy(&k)));
            }
        }
        stack.depth -= 1;
    }

    /// A key and its colon, inside the object on top of the stack.
    fn key(&mut self, stack: &Stack, keys: &mut [Vec<Cow<'a, [u8]>>]) -> Result<(), Syntax> {
        if self.peek() != Some(b'"') {
            return self.syntax("expected a key");
        }
        let keep = stack.depth <= MAX_DEPTH;
        let k = self.string(keep)?;
        if let (Some(k), Some(set)) = (k, keys.last_mut()) {
            set.push(k);
        }
        self.ws();
        if self.peek() != Some(b':') {
            return self.syntax("expected ':'");
        }
        self.pos += 1;
        Ok(())
    }
}

fn rule_error(message: String) -> EventError {
    EventError::new("$", RejectReason::InvalidJson, message)
}

/// Checks one item (an NDJSON line or a JSON array element) against the rule. `max_bytes` caps
/// its length.
pub fn check_item(item: &[u8], max_bytes: usize) -> Result<(), EventError> {
    if item.len() > max_bytes {
        return Err(EventError::new(
            "$",
            RejectReason::TooLong,
            format!(
                "the item is {} bytes, more than limits.max_item_bytes ({max_bytes})",
                item.len()
            ),
        ));
    }
    let mut s = Scanner::new(item, 0);
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(rule_error("each item must be a JSON object".to_owned()));
    }
    s.value()
        .map_err(|e| rule_error(format!("invalid JSON: {e}")))?;
    s.ws();
    if s.pos != item.len() {
        return Err(rule_error(format!(
            "invalid JSON: trailing characters at byte {}",
            s.pos
        )));
    }
    match s.violation {
        Some(v) => Err(rule_error(v)),
        None => Ok(()),
    }
}

/// Scans a JSON body, calling `f` with each item: the elements of a top-level array, or the
/// one value.
fn scan_json<'a>(body: &'a [u8], f: &mut dyn FnMut(&'a [u8])) -> Result<(), Syntax> {
    let mut s = Scanner::new(body, 0);
    s.ws();
    if s.peek() == Some(b'[') {
        s.pos += 1;
        s.ws();
        if s.peek() == Some(b']') {
            s.pos += 1;
        } else {
            loop {
                s.ws();
                let start = s.pos;
                s.value()?;
                f(&body[start..s.pos]);
                s.ws();
                match s.peek() {
                    Some(b',') => s.pos += 1,
                    Some(b']') => {
                        s.pos += 1;
                        break;
                    }
                    _ => return s.syntax("expected ',' or ']'"),
                }
            }
        }
    } else {
        let start = s.pos;
        s.value()?;
        f(&body[start..s.pos]);
    }
    s.ws();
    if s.pos != body.len() {
        return s.syntax("trailing characters");
    }
    Ok(())
}

/// Calls `f` with each item of a JSON body, but only once the whole body is known to be
/// well-formed (a body that is not is refused whole, before any item is used). Rule violations
/// are the items' own. Nothing is collected, so a body of millions of tiny items costs no
/// memory beyond itself.
pub fn for_each_json_item<'a>(body: &'a [u8], f: &mut dyn FnMut(&'a [u8])) -> Result<(), Syntax> {
    scan_json(body, &mut |_| {})?;
    scan_json(body, f)
}

/// The items of a JSON body, collected (see [`for_each_json_item`]).
pub fn split_json(body: &[u8]) -> Result<Vec<&[u8]>, Syntax> {
    let mut items = Vec::new();
    scan_json(body, &mut |i| items.push(i))?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(item: &str) -> Result<(), String> {
        check_item(item.as_bytes(), 1 << 20).map_err(|e| e.message)
    }

    #[test]
    fn accepts_what_json_accepts() {
        for ok in [
            r#"{}"#,
            r#"{"a": [1, -2.5e3, 0, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {"c": {}}}"#,
            " { \"a\" : 1 } ",
        ] {
            assert_eq!(verdict(ok), Ok(()), "{ok}");
            assert!(serde_json::from_str::<serde_json::Value>(ok).is_ok());
        }
    }

    #[test]
    fn refuses_the_fuzzed_disagreements() {
        let deep = format!(r#"{{"x": {}{}}}"#, "[".repeat(100), "]".repeat(100));
        for (bad, why) in [
            (r#"{"a": 1, "a": 2}"#, "duplicate key"),
            (r#"{"u": {"a": 1, "\u0061": 2}}"#, "duplicate key"),
            (r#"{"u": 1e309}"#, "out of range"),
            (r#"{"u": -2e+308}"#, "out of range"),
            (r#"{"u": 1E0400}"#, "out of range"),
            (r#"{"u": "\ud800"}"#, "lone surrogate"),
            (r#"{"u": "\udc00x"}"#, "lone surrogate"),
            (deep.as_str(), "nesting deeper"),
            (r#"{"a": 1"#, "invalid JSON"),
            (r#"[1]"#, "must be a JSON object"),
            (r#"{"a": 01}"#, "invalid JSON"),
        ] {
            let got = verdict(bad).unwrap_err();
            assert!(got.contains(why), "{bad}: {got}");
        }
        let e = check_item(br#"{"a": "long"}"#, 5).unwrap_err();
        assert_eq!(e.reason, RejectReason::TooLong);
    }

    #[test]
    fn a_bad_element_costs_only_itself_and_deep_bodies_do_not_overflow() {
        let body = br#"[{"a": 1}, {"a": 1, "a": 2}, {"b": 1e999}]"#;
        let items = split_json(body).unwrap();
        assert_eq!(items.len(), 3);
        assert!(check_item(items[0], 100).is_ok());
        assert!(check_item(items[1], 100).is_err());
        assert!(check_item(items[2], 100).is_err());
        let huge = "[".repeat(2_000_000);
        assert!(split_json(huge.as_bytes()).is_err());
        let balanced = format!("{}{}", "[".repeat(500_000), "]".repeat(500_000));
        assert_eq!(split_json(balanced.as_bytes()).unwrap().len(), 1);
        assert!(split_json(b"{\"a\": 1} x").is_err());
        assert!(split_json(b"[]").unwrap().is_empty());
    }
}
