//! One sampler for the Prometheus text exposition format.

/// The value of the first sample of `name` carrying every one of `labels`, if any. `name` must
/// match whole (`aims_x` does not match `aims_x_total`).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The exposition a running binary serves at `url` (its `/metrics`), failing the test naming
/// the address when it does not answer.
pub async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"))
}

/// Checks an exposition with `promtool check metrics` (Prometheus's own linter of names, types
/// and help), failing the test on any complaint; skips visibly when promtool is missing
/// ([`crate::skip`]), which fails under `CI=true`.
pub fn promtool_check_metrics(exposition: &str) {
    use std::io::Write as _;
    let Some(promtool) = crate::skip::require_tool("promtool", "prometheus") else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_whole_name_and_labels() {
        let text = "# HELP aims_x_total x\n# TYPE aims_x_total counter\naims_x_total{outcome=\"a\"} 2\naims_x_total{outcome=\"b\"} 3\naims_x 9\n";
        assert_eq!(sample(text, "aims_x_total", &[("outcome", "b")]), Some(3.0));
        assert_eq!(sample(text, "aims_x", &[]), Some(9.0));
        assert_eq!(sample(text, "aims_x_total", &[("outcome", "c")]), None);
        assert_eq!(sample(text, "aims_y", &[]), None);
    }
}
