//! Text for readers, shared by the HTML and Markdown renderers: times, numbers, durations and
//! short hashes.

pub use aims_core::time::rfc3339_millis as rfc3339;

/// A number for readers: up to four significant decimals, or a dash.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => {
            let s = format!("{x:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    }
}

/// An estimate's band as `[lower, upper]`, or a dash without one.
pub fn band(lower: Option<f64>, upper: Option<f64>) -> String {
    match (lower, upper) {
        (Some(l), Some(u)) => format!("[{}, {}]", num(Some(l)), num(Some(u))),
        _ => "–".to_owned(),
    }
}

/// A confidence interval as text, `[0.11, 0.13]`, or empty without one.
pub fn bounds(i: Option<aims_core::metrics::intervals::Interval>) -> String {
    i.map_or_else(String::new, |i| band(Some(i.lower), Some(i.upper)))
}

/// The first 12 characters of a hash, for tables (the full ones are in the JSON).
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Seconds as a human duration, to the second (`18h 22m 15s`, not `… 543ms`): evidence is
/// recorded at evaluation cadence, so milliseconds claim a precision the report does not have.
/// Durations under a second keep their milliseconds, so a sub-second cadence is not `0s`.
pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    let d = if seconds < 1.0 {
        std::time::Duration::from_millis((seconds * 1000.0).round() as u64)
    } else {
        std::time::Duration::from_secs(seconds.round() as u64)
    };
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_are_shown_to_the_second() {
        assert_eq!(duration(66_135.543), "18h 22m 16s");
        assert_eq!(duration(2.0), "2s");
        assert_eq!(duration(0.25), "250ms");
        assert_eq!(duration(0.0), "0s");
    }
}
