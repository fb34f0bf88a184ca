//! Times as people write them: RFC 3339 rendering of epoch milliseconds and one parser for
//! period bounds, so every command and endpoint reads a time by the same rule.
//!
//! The rule for bare dates (`YYYY-MM-DD`, UTC): as the start of a period it is that day's first
//! millisecond, as the end it is that day's last, so `--from 2026-01-01 --to 2026-01-31` covers
//! the whole of January.

use std::time::{Duration, UNIX_EPOCH};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Which end of a period a time bounds; it decides what a bare date means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A bare date is the start of that day.
    Start,
    /// A bare date is the last millisecond of that day.
    End,
}

/// A time that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a time: expected YYYY-MM-DD (UTC), an RFC 3339 time or milliseconds since the epoch")]
pub struct TimeError {
    /// The text given.
    pub text: String,
}

/// `ms` since the epoch as RFC 3339 with milliseconds (`2026-01-01T00:00:00.000Z`); times
/// before the epoch show as the epoch.
pub fn rfc3339_millis(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

/// `ms` since the epoch as RFC 3339 to the second (`2026-01-01T00:00:00Z`).
pub fn rfc3339_seconds(ms: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

/// Parses milliseconds since the epoch, an RFC 3339 time, or a bare date read as `bound`
/// says.
pub fn parse_time(text: &str, bound: Bound) -> Result<i64, TimeError> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bare_date = text.len() == 10 && text.as_bytes().get(4) == Some(&b'-');
    let full = if bare_date {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    let ms = humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .ok_or_else(|| TimeError {
            text: text.to_owned(),
        })?;
    Ok(if bare_date && bound == Bound::End {
        ms + DAY_MS - 1
    } else {
        ms
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_dates_cover_the_whole_day_at_either_end() {
        let start = parse_time("2026-01-02", Bound::Start).unwrap();
        let end = parse_time("2026-01-02", Bound::End).unwrap();
        assert_eq!(start, 1_767_312_000_000);
        assert_eq!(end, start + DAY_MS - 1);
    }

    #[test]
    fn milliseconds_and_rfc3339_mean_the_same_at_either_end() {
        for bound in [Bound::Start, Bound::End] {
            assert_eq!(parse_time(" 42 ", bound).unwrap(), 42);
            assert_eq!(
                parse_time("2026-01-02T00:00:01Z", bound).unwrap(),
                1_767_312_001_000
            );
        }
    }

    #[test]
    fn nonsense_is_an_error_quoting_the_text() {
        let e = parse_time("yesterday", Bound::Start).unwrap_err();
        assert!(e.to_string().contains("\"yesterday\""), "{e}");
    }

    #[test]
    fn rendering_round_trips_through_the_parser() {
        let ms = 1_767_312_001_234;
        assert_eq!(rfc3339_millis(ms), "2026-01-02T00:00:01.234Z");
        assert_eq!(rfc3339_seconds(ms), "2026-01-02T00:00:01Z");
        assert_eq!(parse_time(&rfc3339_millis(ms), Bound::Start).unwrap(), ms);
        assert_eq!(rfc3339_millis(-5), "1970-01-01T00:00:00.000Z");
    }
}
