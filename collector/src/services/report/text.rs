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

/// The first 12 characters of a hash, for tables (the full ones are in the JSON).
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Seconds as a human duration.
pub fn duration(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round().max(0.0) as u64;
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}
