//! HTML escaping for the status page, whose text comes from configuration or data. (The
//! Clause 9 report is rendered with maud, which escapes by default.)

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An inline SVG bar for a value and its confidence interval on the axis `domain` (e.g.
/// `(0.0, 1.0)` for a rate): a grey track, the interval as a band, the value as a tick. Used
/// beside every fairness value on the status page and in the report. Only numbers go in, so
/// the result needs no escaping; an interval without a value or a value outside the domain is
/// clamped to the track.
pub fn interval_bar(
    value: Option<f64>,
    interval: Option<(f64, f64)>,
    domain: (f64, f64),
) -> String {
    const W: f64 = 120.0;
    const H: f64 = 12.0;
    let (lo, hi) = domain;
    let span = if hi - lo > 1e-12 { hi - lo } else { 1.0 };
    let x = |v: f64| ((v - lo) / span).clamp(0.0, 1.0) * W;
    let label = match (value, interval) {
        (Some(v), Some((a, b))) => format!("{v:.4} in [{a:.4}, {b:.4}]"),
        (Some(v), None) => format!("{v:.4}, no interval"),
        (None, Some((a, b))) => format!("[{a:.4}, {b:.4}]"),
        (None, None) => "no value".to_owned(),
    };
    let mut svg = format!(
        "<svg class=\"ci\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{label}\">\
         <line class=\"track\" x1=\"0\" y1=\"6\" x2=\"{W}\" y2=\"6\"/>"
    );
    if let Some((a, b)) = interval {
        let (a, b) = (x(a.min(b)), x(a.max(b)));
        svg.push_str(&format!(
            "<rect class=\"band\" x=\"{a:.1}\" y=\"2\" width=\"{:.1}\" height=\"8\"/>",
            (b - a).max(1.0)
        ));
    }
    if let Some(v) = value {
        let v = x(v);
        svg.push_str(&format!(
            "<line class=\"point\" x1=\"{v:.1}\" y1=\"0\" x2=\"{v:.1}\" y2=\"{H}\"/>"
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::{escape, interval_bar};

    #[test]
    fn interval_bars_place_the_band_and_the_value_on_the_axis() {
        let bar = interval_bar(Some(0.5), Some((0.25, 0.75)), (0.0, 1.0));
        assert!(bar.contains("x=\"30.0\" y=\"2\" width=\"60.0\""), "{bar}");
        assert!(bar.contains("x1=\"60.0\""), "{bar}");
        assert!(bar.contains("0.5000 in [0.2500, 0.7500]"), "{bar}");
        let out = interval_bar(Some(3.0), None, (0.0, 1.0));
        assert!(
            out.contains("x1=\"120.0\"") && !out.contains("band"),
            "{out}"
        );
        assert!(!interval_bar(None, None, (0.0, 0.0)).contains("NaN"));
    }

    #[test]
    fn escape_covers_the_five_html_specials() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain text · ü"), "plain text · ü");
    }
}
