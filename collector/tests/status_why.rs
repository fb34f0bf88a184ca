//! The status page says why (issue 22): for a fairness objective the per-group rates with their
//! sample sizes and interval bars, naming the disadvantaged group; for drift the drifted
//! features with their statistics and threshold; sparklines with their scale, time span,
//! target and warning; values with their units and sample counts in words.
//!
//! The Clause 9 report shows the same intervals and sample sizes beside every fairness value.
//!
//! The figures travel typed from the evaluator (the evaluation record's `why`) to the page;
//! this test reads the page a collector in process renders on real evaluations.

mod common;

use std::time::Duration;

use aims_testkit::eventually;
use aims_testkit::fixtures::{envelope, profile, schema, summary, Traffic};

const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    warning: ">= 0.85"
    window: 1h
    min_samples: 100
    for: 1s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: drift-share
    title: Most features keep their distribution
    model: credit-scoring
    metric: dataset_drift_share
    target: "< 0.5"
    window: 1h
    min_samples: 100
    owner: ml-platform@example.com
  - id: income-psi
    title: Income stays close to the training data
    model: credit-scoring
    metric: psi
    feature: income
    target: "<= 0.2"
    window: 1h
    min_samples: 100
    owner: ml-platform@example.com
  - id: gap
    title: The agent keeps reporting
    model: credit-scoring
    metric: no_data
    target: "<= 600"
    window: 1m
    owner: ml-platform@example.com
  - id: accuracy-wants-more
    title: Accuracy, on more samples than there are
    model: credit-scoring
    metric: accuracy
    target: ">= 0.5"
    window: 1h
    min_samples: 1000000
    owner: ml-platform@example.com
"#;

/// The `<tr>` of objective `id` and the "why" row after it, if any.
fn rows<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<tr id=\"o-{id}\">"))
        .unwrap_or_else(|| panic!("no row for {id}:\n{html}"));
    let rest = &html[start..];
    // Up to the next objective's row or the end of the table.
    let end = rest[1..]
        .find("<tr id=\"o-")
        .map(|i| i + 1)
        .or_else(|| rest.find("</table><h2>"))
        .unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_groups_drifted_features_scales_and_units() {
    // Evaluating every second: the sparkline's 60 evaluations then span a minute of real
    // time, long enough to read the page while they straddle the clock's jump below.
    let c = common::InProcess::start(OBJECTIVES, |config| {
        config.evaluation.interval = Duration::from_secs(1);
    });
    let (base, clock, start) = (c.base.clone(), c.clock.clone(), c.start);
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(30), "healthz", || async {
        client.get(format!("{base}/healthz")).send().await.ok()
    })
    .await;

    let schema = schema(3);
    let profile = profile(&schema);
    let put = client
        .put(format!("{base}/v1/models/{}/reference", schema.name))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    // Biased traffic (F approved at 0.2, M at 0.8) and drifted traffic (every numeric feature
    // three standard deviations up) in the same window.
    for (agent, traffic, seed) in [("a1", Traffic::Biased, 3), ("a2", Traffic::Drifted, 4)] {
        let e = envelope(
            agent,
            start,
            0,
            summary(&schema, &profile, traffic, 2000, seed),
        );
        let post = client
            .post(format!("{base}/v1/summaries"))
            .json(&e)
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 202);
    }

    let page = || async {
        let r = client.get(format!("{base}/")).send().await.ok()?;
        r.text().await.ok()
    };
    // Every evaluation of the test happens at the manual clock's time; advancing it gives the
    // sparkline a time span to state.
    let _ = eventually(Duration::from_secs(60), "a first evaluation", || async {
        page().await.filter(|h| h.contains("disadvantaged:"))
    })
    .await;
    clock.advance(Duration::from_secs(90));
    let html = eventually(
        Duration::from_secs(60),
        "evaluations across 90 s",
        || async {
            page()
                .await
                .filter(|h| h.contains("evaluations over the last 90 s"))
        },
    )
    .await;

    // Fairness: per-group rates, each with its sample size and interval bar, and the
    // disadvantaged group named.
    let parity = rows(&html, "parity");
    assert!(
        parity.contains("selection rate by gender")
            && parity.contains("disadvantaged: <strong class=\"disadvantaged\">F</strong>"),
        "{parity}"
    );
    let groups: Vec<&str> = parity.split("<tr class=\"group\">").skip(1).collect();
    assert_eq!(groups.len(), 2, "one line per group: {parity}");
    for (line, name) in groups.iter().zip(["F", "M"]) {
        assert!(line.starts_with(&format!("<td>{name}</td>")), "{line}");
        assert!(line.contains("class=\"ci\""), "an interval bar: {line}");
        assert!(
            line.contains("95\u{a0}%"),
            "the interval's confidence: {line}"
        );
        let n: u64 = line
            .split("n = ")
            .nth(1)
            .and_then(|t| t.split(['<', ' ']).next())
            .map(|t| t.replace(',', ""))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("a sample size: {line}"));
        assert!(
            n > 500 && n < 3500,
            "{name} has about half the 4,000 predictions: {line}"
        );
    }
    assert!(
        groups[1].contains("(reference)"),
        "M is the declared reference group: {}",
        groups[1]
    );
    // The sparkline's scale, target and warning.
    assert!(
        parity.contains("class=\"scale scale-max\"")
            && parity.contains("class=\"scale scale-min\"")
            && parity.contains("class=\"target\"")
            && parity.contains("class=\"warning\""),
        "{parity}"
    );
    assert!(
        parity.contains("target 0.8") && parity.contains("warning 0.85"),
        "{parity}"
    );

    // Drift: the drifted features, with PSI, KS, Wasserstein and the threshold.
    let share = rows(&html, "drift-share");
    assert!(
        share.contains("<strong>Drifted features</strong>"),
        "{share}"
    );
    for feature in ["income", "x1", "x2"] {
        assert!(
            share.contains(&format!("<tr class=\"feature\"><td>{feature}</td>")),
            "{feature} drifted: {share}"
        );
    }
    assert!(
        !share.contains("<td>region</td>"),
        "region did not drift: {share}"
    );
    assert!(share.contains("(3 of 4 judged)"), "{share}");
    let income = rows(&html, "income-psi");
    assert!(
        income.contains("<tr class=\"feature\"><td>income</td>")
            && income.contains("<th>PSI</th>")
            && income.contains("<th>threshold</th>"),
        "{income}"
    );

    // Units and sample counts a reader can read.
    let gap = rows(&html, "gap");
    assert!(
        gap.contains("&lt;= 600\u{a0}s") && gap.contains("not sample-based"),
        "the no_data objective shows seconds: {gap}"
    );
    let value = gap
        .split("</small></td><td>")
        .nth(2)
        .expect("the value cell");
    assert!(
        value.split("</td>").next().unwrap().ends_with("\u{a0}s"),
        "the value has its unit: {value}"
    );
    let short = rows(&html, "accuracy-wants-more");
    assert!(
        short.contains("4,000 of the 1,000,000 needed"),
        "samples against the minimum, in words: {short}"
    );
    assert!(!html.contains("– / "), "no bare dash-slash counts: {html}");

    // The Clause 9 report, HTML and Markdown from the one model: every per-group rate and
    // parity value with its interval and, beside it, the sample size.
    let report = |format: &'static str| {
        let url = format!(
            "{base}/v1/reports?from={}&to={}&format={format}",
            start - 3_600_000,
            start + 3_600_000
        );
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let html = report("html").await;
    let section = &html[html.find("id=\"analysis\"").expect("section 7")..];
    let f_row = section
        .split("<tr>")
        .find(|r| r.starts_with("<td>gender</td><td>F</td>"))
        .unwrap_or_else(|| panic!("a row for F: {section}"));
    assert!(
        f_row.matches("class=\"ci\"").count() >= 2 && f_row.contains("class=\"ci-bounds\">["),
        "selection rate and TPR with interval bars and bounds: {f_row}"
    );
    assert!(
        section.contains("<th>n compared</th>"),
        "the parity table has the sample size: {section}"
    );
    let parity = section
        .split("<tr>")
        .find(|r| r.starts_with("<td>gender</td><td>4000</td>"))
        .unwrap_or_else(|| panic!("the parity line with its 4,000 predictions: {section}"));
    assert!(parity.contains("class=\"ci\""), "{parity}");
    // The parity objective's own section: its last value with interval and samples.
    let own = &html[html
        .find("parity — ")
        .expect("the parity objective's section")..];
    let own = &own[..own.find("</table>").unwrap()];
    assert!(
        own.contains("Last value, interval and samples")
            && own.contains("class=\"ci\"")
            && own.contains(" n = 4000"),
        "{own}"
    );
    let md = report("md").await;
    assert!(
        md.lines()
            .any(|l| l.starts_with("| Last value, interval and samples | ")
                && l.contains(" [")
                && l.ends_with(" n = 4000 |")),
        "{md}"
    );
    let f_line = md
        .lines()
        .find(|l| l.starts_with("| gender | F |"))
        .unwrap_or_else(|| panic!("a Markdown line for F: {md}"));
    assert!(
        f_line.matches(" [").count() >= 2,
        "bounds beside the rates: {f_line}"
    );
    let parity = md
        .lines()
        .find(|l| l.starts_with("| gender | 4000 |"))
        .unwrap_or_else(|| panic!("the Markdown parity line: {md}"));
    assert!(parity.contains(" ["), "{parity}");

    c.shutdown().await;
}
