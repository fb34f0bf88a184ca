//! Issue 13, the agent's half: no event, client or disk fault may cost a window. One test per
//! finding, each against the real binary on loopback ports chosen at run time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aims_core::invariants;
use common::*;

const NDJSON: &str = "application/x-ndjson";

/// Events of every unique summary the collector acknowledged, checked for the summary
/// invariants the collector will enforce.
fn delivered_events(c: &TestCollector) -> u64 {
    c.unique()
        .values()
        .map(|e| {
            invariants::validate(&e.summary).expect("a delivered summary satisfies the invariants");
            e.summary.events
        })
        .sum()
}

fn one_event(id: &str, features: &str) -> String {
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    format!(
        r#"{{"id": "{id}", "ts": "{ts}", "features": {{{features}}}, "attributes": {{"gender": "F"}}, "prediction": {{"label": 1, "score": 0.7}}}}"#
    )
}

async fn started(
    name: &str,
    collector: Option<&TestCollector>,
    window: &'static str,
    env: &[(&str, &str)],
) -> (Agent, std::path::PathBuf) {
    let dir = temp_dir(name);
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.map(|c| c.url()).unwrap_or_default(),
            reference_path: Some(profile),
            window,
            max_body_bytes: 16 << 20,
            ..Setup::default()
        },
    );
    (Agent::start_with_env(&config, env), config)
}

/// Finding 1: a number that would overflow `sum_sq` is refused alone; the window ships.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_number_costs_only_its_own_event() {
    let collector = TestCollector::start(None).await;
    let (agent, _) = started("huge", Some(&collector), "1s", &[]).await;
    let mut body = events("good", 500);
    for (i, x) in ["1e200", "1.7976931348623157e308"].iter().enumerate() {
        body.extend(one_event(&format!("huge-{i}"), &format!(r#""income": {x}"#)).as_bytes());
        body.push(b'\n');
    }
    let (status, reply) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        NDJSON,
        None,
        body,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(
        (reply["accepted"].as_u64(), reply["rejected"].as_u64()),
        (Some(500), Some(2))
    );
    assert_eq!(reply["errors"][0]["line"], 501);
    assert_eq!(reply["errors"][0]["field"], "features.income");
    assert_eq!(reply["errors"][0]["reason"], "invalid_number");
    eventually(
        Duration::from_secs(10),
        "all 500 good events delivered",
        || delivered_events(&collector) == 500,
    )
    .await;
    assert!(agent
        .metrics()
        .await
        .contains("aims_agent_summaries_dead_lettered_total 0"));
}

/// Finding 2: a 9,000,000-character category value is refused alone (`too_long`); the
/// summary stays within the byte budget and ships.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_long_category_value_costs_only_its_own_event() {
    let collector = TestCollector::start(None).await;
    let (agent, _) = started("long", Some(&collector), "1s", &[]).await;
    let mut body = events("good", 300);
    let region = "r".repeat(9_000_000);
    body.extend(one_event("long", &format!(r#""region": "{region}""#)).as_bytes());
    body.push(b'\n');
    // A value just past the category cap (but a small item) is refused by that cap.
    body.extend(one_event("cat", &format!(r#""region": "{}""#, "c".repeat(257))).as_bytes());
    let (status, reply) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        NDJSON,
        None,
        body,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["accepted"], 300, "{reply}");
    assert_eq!(reply["errors"][0]["reason"], "too_long");
    assert_eq!(reply["errors"][0]["field"], "$");
    assert_eq!(reply["errors"][1]["reason"], "too_long");
    assert_eq!(reply["errors"][1]["field"], "features.region");
    eventually(
        Duration::from_secs(10),
        "all 300 good events delivered",
        || delivered_events(&collector) == 300,
    )
    .await;
    let metrics = agent.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"aims_agent_events_rejected_total{reason="too_long"}"#
        ),
        2.0
    );
}

fn raw_connect(agent: &Agent) -> TcpStream {
    let s = TcpStream::connect(agent.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
fn read_to_close(mut s: TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// Finding 3: slow bodies get 408 and free their slot; slow headers and idle connections are
/// closed; every ingest slot held by slow bodies does not lock other clients out for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_slow_headers_and_idle_connections_are_cut() {
    let env = [
        ("AIMS_AGENT__SERVER__MAX_CONCURRENT_REQUESTS", "4"),
        ("AIMS_AGENT__SERVER__BODY_GRACE", "500ms"),
        ("AIMS_AGENT__SERVER__BODY_MIN_RATE_BYTES", "1000"),
        ("AIMS_AGENT__SERVER__HEADER_TIMEOUT", "500ms"),
        ("AIMS_AGENT__SERVER__IDLE_TIMEOUT", "700ms"),
    ];
    let (agent, _) = started("slow", None, "60s", &env).await;
    // Four slow bodies take every ingest slot.
    let slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = raw_connect(&agent);
            write!(
                s,
                "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: {NDJSON}\r\ncontent-length: 100000\r\n\r\n{{"
            )
            .unwrap();
            s
        })
        .collect();
    let slow_header = {
        let mut s = raw_connect(&agent);
        s.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        s
    };
    let idle = raw_connect(&agent);
    let threads: Vec<_> = slow
        .into_iter()
        .chain([slow_header, idle])
        .map(|s| std::thread::spawn(move || read_to_close(s)))
        .collect();
    let results: Vec<(String, Duration)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (text, took) in &results[..4] {
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        assert!(
            *took < Duration::from_secs(5),
            "slow body held for {took:?}"
        );
    }
    for (text, took) in &results[4..] {
        // Closed by the agent (hyper may answer a half-sent request with 408 first).
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
        assert!(
            *took < Duration::from_secs(5),
            "connection kept for {took:?}"
        );
    }
    // The slots are free again.
    let (status, reply) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        NDJSON,
        None,
        events("after", 3),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    let metrics = agent.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"aims_agent_requests_rejected_total{reason="body_too_slow"}"#
        ),
        4.0
    );
}

/// Finding 3 (descriptors): under `ulimit -n 128`, 300 idle connections neither starve the
/// spool (windows keep closing into it) nor keep `/healthz` away for longer than the idle
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_under_a_low_fd_limit_costs_no_window() {
    let dir = temp_dir("fds");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            reference_path: Some(profile),
            window: "300ms",
            ..Setup::default()
        },
    );
    let env = [("AIMS_AGENT__SERVER__IDLE_TIMEOUT", "500ms")];
    let agent = Agent::start_with_fd_limit(&config, 128, &env);
    assert!(
        agent.log_text().contains("max_connections=64"),
        "{}",
        agent.log_text()
    );
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(agent.addr).ok())
        .collect();
    let spool = dir.join("spool");
    let summaries = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        aims_agent::spool::is_summary_file(&e.file_name().to_string_lossy())
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let before = summaries();
    eventually(
        Duration::from_secs(10),
        "windows keep closing into the spool",
        || summaries() >= before + 5,
    )
    .await;
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = client.get(agent.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(8));
    let metrics = agent.metrics().await;
    assert!(
        !agent.log_text().contains("could not spool"),
        "{}",
        agent.log_text()
    );
    for reason in ["too_many_open_files", "other"] {
        assert_eq!(
            sample(
                &metrics,
                &format!(r#"aims_agent_spool_write_failures_total{{reason="{reason}"}}"#)
            ),
            0.0
        );
    }
    drop(flood);
}

/// How `dir` was made to refuse new files.
enum Unwritable {
    /// `chmod 500` (an ordinary user): writes fail with permission denied.
    Mode,
    /// The directory moved aside and a plain file put in its place (root ignores modes):
    /// writes fail with "not a directory".
    Swapped(std::path::PathBuf),
}

fn make_unwritable(dir: &std::path::Path) -> Unwritable {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let probe = dir.join(".probe");
    if std::fs::write(&probe, b"x").is_err() {
        return Unwritable::Mode;
    }
    let _ = std::fs::remove_file(&probe);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let aside = dir.with_extension("aside");
    std::fs::rename(dir, &aside).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
    Unwritable::Swapped(aside)
}

fn make_writable(dir: &std::path::Path, how: Unwritable) {
    use std::os::unix::fs::PermissionsExt;
    match how {
        Unwritable::Mode => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap()
        }
        Unwritable::Swapped(aside) => {
            std::fs::remove_file(dir).unwrap();
            std::fs::rename(aside, dir).unwrap();
        }
    }
}

/// Finding 4: while the spool refuses writes, closed summaries wait in memory, the failures are
/// counted by reason and `/readyz` is 503; once it is writable again nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_spool_is_counted_not_ready_and_loses_nothing() {
    let (agent, config) = started("spoolfail", None, "300ms", &[]).await;
    let spool = config.parent().unwrap().join("spool");
    let client = reqwest::Client::new();
    let how = make_unwritable(&spool);
    let reason = match how {
        Unwritable::Mode => "permission_denied",
        Unwritable::Swapped(_) => "other",
    };
    let mut sent = 0u64;
    for i in 0..5 {
        let (status, _) = post(
            &client,
            &agent.url("/v1/events"),
            NDJSON,
            None,
            events(&format!("s{i}"), 20),
        )
        .await;
        assert_eq!(status, 202);
        sent += 20;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = || async {
        client
            .get(agent.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 503 {
        assert!(Instant::now() < deadline, "readyz never went not-ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = agent.metrics().await;
    let failures = format!(r#"aims_agent_spool_write_failures_total{{reason="{reason}"}}"#);
    assert!(sample(&metrics, &failures) >= 1.0, "{metrics}");
    assert!(sample(&metrics, "aims_agent_spool_unwritten") >= 1.0);
    make_writable(&spool, how);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 200 {
        assert!(Instant::now() < deadline, "readyz never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.terminate();
    let spooled: u64 = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| aims_agent::spool::is_summary_file(&e.file_name().to_string_lossy()))
        .map(|e| {
            let env: aims_core::wire::SummaryEnvelope =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            env.summary.events
        })
        .sum();
    assert_eq!(spooled, sent, "every event reached the spool");
}

/// Finding 6: kill -9 loses at most `window.checkpoint` of events: events recorded before the
/// last checkpoint come back after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_checkpoint_interval() {
    let collector = TestCollector::start(None).await;
    let env = [("AIMS_AGENT__WINDOW__CHECKPOINT", "200ms")];
    let (agent, config) = started("ckpt", Some(&collector), "1m", &env).await;
    let (status, _) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        NDJSON,
        None,
        events("k", 700),
    )
    .await;
    assert_eq!(status, 202);
    let checkpoint = config
        .parent()
        .unwrap()
        .join("spool/open-windows.checkpoint");
    let checkpointed = || -> u64 {
        let Ok(bytes) = std::fs::read(&checkpoint) else {
            return 0;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return 0;
        };
        v["open"]
            .as_array()
            .map(|open| {
                open.iter()
                    .map(|w| w[1]["events"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    eventually(
        Duration::from_secs(10),
        "the 700 events checkpointed",
        || checkpointed() == 700,
    )
    .await;
    agent.kill9();
    let agent = Agent::start_with_env(&config, &env);
    assert!(
        agent.log_text().contains("restored the open windows"),
        "{}",
        agent.log_text()
    );
    agent.terminate();
    eventually(
        Duration::from_secs(10),
        "the 700 events delivered after the crash",
        || delivered_events(&collector) >= 700,
    )
    .await;
    assert_eq!(
        delivered_events(&collector),
        700,
        "restored once, not twice"
    );
}

/// Finding 8: a 503 for overload says `Connection: close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_503_closes_the_connection_cleanly() {
    // The holder's slow body must outlast the wait below on a loaded machine, so its grace is
    // longer than the deadline; until the agent has read the holder's headers the other
    // requests are still served (202), and only then refused.
    let env = [
        ("AIMS_AGENT__SERVER__MAX_CONCURRENT_REQUESTS", "1"),
        ("AIMS_AGENT__SERVER__BODY_GRACE", "120s"),
    ];
    let (agent, _) = started("close", None, "60s", &env).await;
    let mut holder = raw_connect(&agent);
    write!(holder, "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: {NDJSON}\r\ncontent-length: 1000\r\n\r\n{{").unwrap();
    holder.flush().unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let resp = loop {
        let resp = client
            .post(agent.url("/v1/events"))
            .header("content-type", NDJSON)
            .body(events("x", 1))
            .send()
            .await
            .unwrap();
        seen.push(resp.status().as_u16());
        if resp.status() == 503 || Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        resp.status(),
        503,
        "statuses while the holder's body was pending: {seen:?}"
    );
    assert_eq!(resp.headers()["connection"], "close");
    assert_eq!(resp.headers()["retry-after"], "1");
    drop(holder);
}

/// Finding 10: the reply says what happened to every event, and the counters add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_accounted_for() {
    let (agent, _) = started("accounting", None, "60s", &[]).await;
    let mut body = events("ok", 3);
    body.extend(br#"{"id": "late", "ts": "2020-01-01T00:00:00Z", "prediction": {"label": 1}}"#);
    body.push(b'\n');
    body.extend(br#"{"id": "future", "ts": "2100-01-01T00:00:00Z", "prediction": {"label": 1}}"#);
    body.push(b'\n');
    body.extend(br#"{"id": "bad", "prediction": {"label": 7}}"#);
    let (status, reply) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        NDJSON,
        None,
        body,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["accepted"], 5, "{reply}");
    assert_eq!(reply["rejected"], 1);
    assert_eq!(reply["dropped"], 2);
    assert_eq!(reply["dropped_items"][0]["line"], 4);
    assert_eq!(reply["dropped_items"][0]["reason"], "late");
    assert_eq!(reply["dropped_items"][1]["reason"], "future");
    assert_eq!(reply["errors"][0]["line"], 6);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = agent.metrics().await;
        let received = sample(&m, "aims_agent_events_received_total");
        let accepted = sample(&m, "aims_agent_events_accepted_total");
        let rejected: f64 = ["unknown_class"]
            .iter()
            .map(|r| {
                sample(
                    &m,
                    &format!(r#"aims_agent_events_rejected_total{{reason="{r}"}}"#),
                )
            })
            .sum();
        let dropped: f64 = ["overload", "late", "future"]
            .iter()
            .map(|r| {
                sample(
                    &m,
                    &format!(r#"aims_agent_events_dropped_total{{reason="{r}"}}"#),
                )
            })
            .sum();
        let summarised = sample(&m, "aims_agent_events_summarised_total");
        assert_eq!(
            (received, accepted, rejected, dropped),
            (6.0, 5.0, 1.0, 2.0)
        );
        if summarised == 3.0 {
            assert_eq!(accepted, summarised + dropped);
            break;
        }
        assert!(Instant::now() < deadline, "summarised {summarised}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finding 11: delivery resumes within seconds of the collector's return although the
/// backoff has grown long; a collector answering errors is still paced by the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_within_seconds_of_the_collectors_return() {
    let mut collector = TestCollector::start(None).await;
    collector.go_down().await;
    // Full jitter draws each delay from [0, 60 s]: without the probe, delivery within 4 s of
    // the return would be luck (under 7 %).
    let env = [
        ("AIMS_AGENT__SHIP__INITIAL_BACKOFF", "60s"),
        ("AIMS_AGENT__SHIP__MAX_BACKOFF", "60s"),
    ];
    let (agent, _) = started("probe", Some(&collector), "300ms", &env).await;
    let (status, _) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        NDJSON,
        None,
        events("p", 10),
    )
    .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&agent.metrics().await, "aims_agent_spool_files") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "nothing spooled while the collector is down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reference upload at start has failed by now and is waiting out its backoff.
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.come_back().await;
    let back = Instant::now();
    eventually(
        Duration::from_secs(4),
        "the 10 events delivered soon after the return",
        || delivered_events(&collector) == 10,
    )
    .await;
    assert!(back.elapsed() < Duration::from_secs(4));
    // Errors are not probed past: with a 60 s backoff, a 500-answering collector sees one
    // attempt per backoff, not one per probe.
    collector.set_mode(Mode::Error500);
    let attempts = collector.seen.lock().unwrap().attempts;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let more = collector.seen.lock().unwrap().attempts - attempts;
    assert!(
        more <= 2,
        "{more} attempts in 3 s against a collector answering 500"
    );
}

/// Finding 12: `/metrics` can require a bearer token; off by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_bearer_token() {
    let env = [("AIMS_AGENT__SERVER__METRICS_TOKEN", "s3cret")];
    let (agent, _) = started("token", None, "60s", &env).await;
    let client = reqwest::Client::new();
    let anonymous = client.get(agent.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = client
        .get(agent.url("/metrics"))
        .bearer_auth("s3creT")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client
        .get(agent.url("/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("aims_agent_info"));
    assert_eq!(
        client
            .get(agent.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Finding 5 and the RSS bound: long ids, huge bodies and many connections at once keep the
/// agent's peak RSS under the bound documented in docs/hardening.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_under_its_bound_under_attack() {
    const BOUND: u64 = 200 << 20;
    let (agent, _) = started("rss", None, "1s", &[]).await;
    let client = reqwest::Client::new();
    // 400 events with 1 MB ids: refused per item, never held.
    let id = "i".repeat(1 << 20);
    let mut body = Vec::new();
    for i in 0..10 {
        body.extend(format!(r#"{{"id": "{id}{i}", "prediction": {{"label": 1}}}}"#).as_bytes());
        body.push(b'\n');
    }
    for _ in 0..40 {
        let (status, reply) = post(
            &client,
            &agent.url("/v1/events"),
            NDJSON,
            None,
            body.clone(),
        )
        .await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["errors"][0]["reason"], "too_long");
    }
    // 80 concurrent 14 MB bodies: the body-memory budget refuses most at once.
    let big = axum::body::Bytes::from(vec![b' '; 14 << 20]);
    let sends: Vec<_> = (0..80)
        .map(|_| {
            let (client, url, big) = (client.clone(), agent.url("/v1/events"), big.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("content-type", NDJSON)
                    .body(big)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let conns: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(agent.addr).ok())
        .collect();
    let mut statuses = Vec::new();
    for s in sends {
        statuses.push(s.await.unwrap());
    }
    drop(conns);
    let metrics = agent.metrics().await;
    assert!(
        sample(
            &metrics,
            r#"aims_agent_requests_rejected_total{reason="memory"}"#
        ) >= 1.0,
        "{statuses:?}"
    );
    let peak = agent.peak_rss_bytes().expect("Linux /proc");
    eprintln!("peak RSS under attack: {} MiB", peak >> 20);
    assert!(peak < BOUND, "peak RSS {} MiB", peak >> 20);
}

/// Finding 9 against the binary: the hostile items the fuzzer found get the same verdict as a
/// JSON array and as NDJSON, and a bad element costs only itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_ndjson_agree_on_the_fuzzed_cases() {
    let (agent, _) = started("oneRule", None, "60s", &[]).await;
    let deep = format!(
        r#"{{"prediction": {{"label": 1}}, "x": {}{}}}"#,
        "[".repeat(130),
        "]".repeat(130)
    );
    let items = [
        r#"{"prediction": {"label": 1}}"#.to_owned(),
        r#"{"prediction": {"label": 1}, "x": 1, "x": 2}"#.to_owned(),
        r#"{"prediction": {"label": 1}, "label": 1, "label": 0}"#.to_owned(),
        deep,
        r#"{"prediction": {"label": 1}, "x": 1e309}"#.to_owned(),
        r#"{"prediction": {"label": 1}, "x": "\ud800"}"#.to_owned(),
    ];
    let client = reqwest::Client::new();
    let url = agent.url("/v1/events");
    let (s1, ndjson) = post(&client, &url, NDJSON, None, items.join("\n").into_bytes()).await;
    let (s2, json) = post(
        &client,
        &url,
        "application/json",
        None,
        format!("[{}]", items.join(",")).into_bytes(),
    )
    .await;
    assert_eq!((s1, s2), (202, 202), "{ndjson} {json}");
    assert_eq!(
        (ndjson["accepted"].as_u64(), json["accepted"].as_u64()),
        (Some(1), Some(1))
    );
    let verdicts = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap().to_owned(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(verdicts(&ndjson), verdicts(&json));
    assert_eq!(verdicts(&json).len(), 5);
    for (reason, _) in verdicts(&json) {
        assert_eq!(reason, "invalid_json");
    }
}

/// The summary budget is enforced by construction: caps that could make a summary larger than
/// `limits.max_summary_bytes` stop the agent at start, naming the keys.
#[test]
fn caps_that_could_outgrow_the_summary_budget_refuse_to_start() {
    let dir = temp_dir("budget");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            reference_path: Some(profile),
            extra: "[limits]\nmax_category_bytes = 100000\nmax_summary_bytes = 8388608\n".into(),
            ..Setup::default()
        },
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aims-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("limits.max_summary_bytes") && err.contains("limits.max_category_bytes"),
        "{err}"
    );
}
