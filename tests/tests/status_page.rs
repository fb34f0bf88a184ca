//! The status page behind read tokens: a read endpoint like the others, reachable from a
//! browser with `?token=`, and never cached or leaked as a referrer.

use aims_e2e::{http, Stack, StackConfig};

const OBJECTIVES: &str = r#"policy: "AI Policy <v3>"
objectives:
  - id: parity
    title: Approval rates <b>do not</b> disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 1m
    owner: risk@example.com
"#;

/// SHA-256 of "s3cret", as `printf %s s3cret | sha256sum` prints it.
const TOKEN_SHA256: &str = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";

#[test]
fn the_status_page_needs_a_read_token_when_read_tokens_are_configured() {
    let stack = Stack::start(&StackConfig {
        objectives: OBJECTIVES,
        collector_extra: &format!("[auth]\nread_token_sha256 = [\"{TOKEN_SHA256}\"]\n"),
        ..StackConfig::default()
    });
    let page = format!("{}/", stack.collector_url);
    let client = http();

    let anonymous = client.get(&page).send().expect("the collector answers");
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = client
        .get(format!("{page}?token=guess"))
        .send()
        .expect("answer");
    assert_eq!(wrong.status().as_u16(), 401);

    let by_header = client
        .get(&page)
        .bearer_auth("s3cret")
        .send()
        .expect("answer");
    assert_eq!(by_header.status().as_u16(), 200);

    let by_query = client
        .get(format!("{page}?token=s3cret"))
        .send()
        .expect("answer");
    assert_eq!(by_query.status().as_u16(), 200);
    let headers = by_query.headers().clone();
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = by_query.text().expect("body");
    assert!(
        html.contains("url=/?token=s3cret"),
        "the refresh keeps the token"
    );
    assert!(html.contains("AI Policy &lt;v3&gt;") && html.contains("&lt;b&gt;do not&lt;/b&gt;"));
    assert!(html.contains("parity") && html.contains("credit-scoring"));
}
