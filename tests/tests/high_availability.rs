//! Two real collector replicas on one real PostgreSQL (the server `.ci/run` starts,
//! `AIMS_TEST_POSTGRES_URL`), with agents' summaries spread across both:
//!
//! - failover during a breach: the leader is killed (SIGKILL) while an alert fires at a real
//!   Alertmanager; the other replica takes over and Alertmanager never sees the alert resolve;
//!   afterwards `evidence verify` passes, every acknowledged summary is stored exactly once, and
//!   the killed replica, restarted, follows;
//! - fencing: a leader that is SIGSTOPped, then SIGCONTed after the other took over, appends
//!   nothing;
//! - rolling restart: restarting both replicas one after the other leaves no gap between
//!   evaluations longer than the takeover bound.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aims_e2e::{alertmanager, binary, free_port, wait_until};
use aims_testkit::collector::Collector;
use aims_testkit::fixtures::{envelope, minute, profile, schema, summary, Traffic};
use aims_testkit::postgres;
use aims_testkit::prom::sample;

/// `storage.lock_timeout` of the replicas: a stalled leader loses the lock after this.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// `evaluation.interval` (the harness's).
const INTERVAL: Duration = Duration::from_millis(300);
/// The takeover bound the issue sets: 2 x the evaluation interval plus the lock timeout.
const TAKEOVER: Duration = Duration::from_millis(2 * 300 + 5_000);
const LONG: Duration = Duration::from_secs(60);

fn objectives(notify: &str) -> String {
    format!(
        r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 1h
    min_samples: 200
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
    notify: [{notify}]
"#
    )
}

/// A replica named `name` in `dir`, on the database at `url`.
fn replica(dir: &Path, name: &str, url: &str, objectives: &str, extra: &str) -> Collector {
    let bin = binary("aims-collector");
    let storage = format!(
        "backend = \"postgres\"\nurl = \"{url}\"\npool_size = 4\nlock_timeout = \"{}s\"\nreplica = \"{name}\"\n",
        LOCK_TIMEOUT.as_secs()
    );
    let c = Collector::prepare_with(bin.to_str().unwrap(), dir, &storage, extra);
    std::fs::write(dir.join("objectives.yaml"), objectives).unwrap();
    c
}

fn metric(c: &Collector, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    aims_testkit::collector::client()
        .get(c.url("/metrics"))
        .send()
        .ok()
        .and_then(|r| r.text().ok())
        .and_then(|page| sample(&page, name, labels))
}

fn leads(c: &Collector) -> Option<bool> {
    metric(c, "aims_collector_leader", &[]).map(|v| v == 1.0)
}

/// Waits until exactly one of `both` leads; returns its index.
fn leader_of(both: &[&Collector; 2]) -> usize {
    wait_until(LONG, "exactly one leader", || {
        match (leads(both[0]), leads(both[1])) {
            (Some(true), Some(false)) => Some(0),
            (Some(false), Some(true)) => Some(1),
            _ => None,
        }
    })
}

/// Agents posting biased summaries (each a new id), spread over the replicas' URLs in turn;
/// a refused or failed post goes to the other replica. Remembers every acknowledged id.
struct Agents {
    urls: Arc<Mutex<[String; 2]>>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agents {
    fn start(urls: [String; 2], traffic: Traffic) -> Agents {
        let urls = Arc::new(Mutex::new(urls));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (u, a, s) = (urls.clone(), acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let schema = schema(3);
            let profile = profile(&schema);
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let e = envelope(
                    &format!("agent-{}", i % 5),
                    minute(),
                    i,
                    summary(&schema, &profile, traffic, 300, i),
                );
                let targets = u.lock().unwrap().clone();
                for k in 0..2 {
                    let url = &targets[(i as usize + k) % 2];
                    let ok = client
                        .post(format!("{url}/v1/summaries"))
                        .json(&e)
                        .send()
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        a.lock().unwrap().push(e.id.clone());
                        break;
                    }
                }
                i += 1;
                // The agents' pace (a send rate, not a wait for a condition).
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Agents {
            urls,
            acked,
            stop,
            thread: Some(thread),
        }
    }

    fn point(&self, index: usize, url: String) {
        self.urls.lock().unwrap()[index] = url;
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops sending; returns the acknowledged ids.
    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.acked.lock().unwrap().clone()
    }
}

/// Runs `sql` on the database at `url` with psql; one output line per row, `|` between columns.
fn psql(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([url, "-qAtc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `evidence verify` over the whole chain passes.
fn verify(c: &Collector) {
    let out = c.command(&["evidence", "verify"]);
    assert!(
        out.status.success(),
        "evidence verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every acknowledged id is stored exactly once.
fn stored_exactly_once(url: &str, acked: &[String]) {
    let counts: HashMap<String, u64> = psql(url, "SELECT id, count(*) FROM summaries GROUP BY id")
        .iter()
        .filter_map(|l| {
            let (id, n) = l.split_once('|')?;
            Some((id.to_owned(), n.parse().ok()?))
        })
        .collect();
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "an id acknowledged twice");
    for id in acked {
        assert_eq!(counts.get(id), Some(&1), "acknowledged summary {id}");
    }
}

/// The evidence records of `kind` as (seq, at_ms, record), in sequence order.
fn records(c: &Collector, kind: &str) -> Vec<(u64, i64, serde_json::Value)> {
    c.evidence(None)
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["record"]["at_ms"].as_i64().unwrap(),
                r["record"].clone(),
            )
        })
        .collect()
}

#[test]
fn failover_during_a_breach_keeps_the_alert_firing_and_one_chain() {
    let Some(server) = postgres::server("failover_during_a_breach") else {
        return;
    };
    let Some(tools) = alertmanager::tools() else {
        return;
    };
    let am_dir = tempfile::tempdir().unwrap();
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let _am = alertmanager::start(&tools, am_dir.path(), am_port);
    let database = postgres::fresh_database(&server);
    let url = database.url().to_owned();
    // A 2 s resend makes an 8 s lease: Alertmanager keeps the alert only if the new leader
    // carries on sending it.
    let extra = format!(
        "[notify]\nresend_interval = \"2s\"\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\nmax_attempts = 2\ntimeout = \"2s\"\n\n[[notify.receivers]]\nname = \"am\"\nkind = \"alertmanager\"\nurls = [\"{am_url}\"]\n"
    );
    let objectives = objectives("am");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut a = replica(dirs[0].path(), "a", &url, &objectives, &extra);
    let mut b = replica(dirs[1].path(), "b", &url, &objectives, &extra);
    a.start();
    b.start();
    let schema = schema(3);
    assert_eq!(b.put_profile(&profile(&schema), None).status(), 201);
    let agents = Agents::start([a.url(""), b.url("")], Traffic::Biased);

    let first = leader_of(&[&a, &b]);
    let (leader, follower) = if first == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    leader.wait_state("parity", "firing", LONG);
    let alert = wait_until(LONG, "the parity alert in Alertmanager", || {
        alertmanager::active_alert(&am_url, "parity")
    });
    let starts_at = alert["startsAt"].clone();
    let acked_before = agents.acked();

    // kill -9 the leader during the breach; the agents send to the follower meanwhile.
    leader.kill9();
    agents.point(first, follower.url(""));
    let delivered = |c: &Collector| {
        metric(
            c,
            "aims_notifications_total",
            &[("receiver", "am"), ("outcome", "delivered")],
        )
        .unwrap_or(0.0)
    };
    // Until the new leader has sent the alert twice, Alertmanager holds it active at every
    // look, with the start it had: it never sees it resolve.
    wait_until(LONG, "the new leader to resend the alert twice", || {
        let held = alertmanager::active_alert(&am_url, "parity");
        let held =
            held.unwrap_or_else(|| panic!("Alertmanager lost the alert during the failover"));
        assert_eq!(held["startsAt"], starts_at, "the same alert, not a new one");
        (leads(follower) == Some(true) && delivered(follower) >= 2.0).then_some(())
    });
    assert_eq!(
        follower.state("parity"),
        "firing",
        "pending/firing since survived"
    );
    wait_until(LONG, "summaries acknowledged by the survivor", || {
        (agents.acked() > acked_before + 5).then_some(())
    });

    // The killed replica is restarted and follows.
    leader.start();
    agents.point(first, leader.url(""));
    wait_until(LONG, "the restarted replica follows", || {
        (leads(leader) == Some(false) && leads(follower) == Some(true)).then_some(())
    });
    wait_until(
        LONG,
        "the restarted replica serves the shared state",
        || (leader.state("parity") == "firing").then_some(()),
    );
    let acked = agents.stop();
    assert!(
        alertmanager::active_alert(&am_url, "parity").is_some(),
        "still firing"
    );
    assert!(leader.stop().unwrap().success());
    assert!(follower.stop().unwrap().success());

    verify(&a);
    stored_exactly_once(&url, &acked);
    let terms = psql(
        &url,
        "SELECT count(*) FROM evidence WHERE kind = 'leader_change'",
    );
    assert!(
        terms[0].parse::<u64>().unwrap() >= 2,
        "a leader_change record per term: {terms:?}"
    );
}

#[test]
fn a_paused_leader_appends_nothing_and_rolling_restarts_keep_evaluating() {
    let Some(server) = postgres::server("a_paused_leader_appends_nothing") else {
        return;
    };
    let database = postgres::fresh_database(&server);
    let url = database.url().to_owned();
    let objectives = objectives("");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut a = replica(dirs[0].path(), "a", &url, &objectives, "");
    let mut b = replica(dirs[1].path(), "b", &url, &objectives, "");
    a.start();
    b.start();
    let schema = schema(3);
    assert_eq!(a.put_profile(&profile(&schema), None).status(), 201);
    let agents = Agents::start([a.url(""), b.url("")], Traffic::Normal);
    let evaluations = |c: &Collector| records(c, "evaluation").len();

    // Fencing: the leader is paused past the lock timeout; the other takes over.
    let first = leader_of(&[&a, &b]);
    let (paused, other) = if first == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let paused_name = if first == 0 { "a" } else { "b" };
    wait_until(LONG, "evaluations", || {
        (evaluations(other) > 3).then_some(())
    });
    paused.signal("STOP");
    agents.point(first, other.url(""));
    wait_until(LONG, "the other replica takes over", || {
        (leads(other) == Some(true)).then_some(())
    });
    let log_at_resume = paused.log().len();
    let seen = evaluations(other);
    paused.signal("CONT");
    wait_until(LONG, "the resumed replica follows", || {
        (leads(paused) == Some(false)).then_some(())
    });
    // The resumed replica has had many of its evaluation ticks meanwhile.
    wait_until(LONG, "more evaluations by the new leader", || {
        (evaluations(other) > seen + 5).then_some(())
    });
    // A completed cycle logs `evaluation cycle objectives=...`; a fenced one logs
    // `evaluation cycle failed ... fenced`.
    let since = paused.log()[log_at_resume..].to_owned();
    assert!(
        !since
            .lines()
            .any(|l| l.contains("evaluation cycle") && !l.contains("evaluation cycle failed")),
        "the resumed leader completed a cycle: {since}"
    );
    let changes = records(other, "leader_change");
    let last = &changes.last().unwrap().2;
    assert_ne!(last["data"]["replica"], paused_name, "{changes:?}");
    agents.point(first, paused.url(""));

    // Rolling restart: each replica in turn, the leader first. The restarted one may win the
    // lock again or follow; either way one replica leads and evaluations go on.
    let from_ms = aims_testkit::fixtures::now_ms();
    let (leader, follower) = (other, paused);
    assert!(leader.stop().unwrap().success());
    leader.start();
    leader_of(&[leader, follower]);
    assert!(follower.stop().unwrap().success());
    follower.start();
    let now = leader_of(&[leader, follower]);
    let leader = if now == 0 { &*leader } else { &*follower };
    let settled = evaluations(leader);
    wait_until(LONG, "evaluations after the restarts", || {
        (evaluations(leader) > settled + 3).then_some(())
    });
    let acked = agents.stop();
    let times: Vec<i64> = records(leader, "evaluation")
        .into_iter()
        .map(|(_, at, _)| at)
        .filter(|at| *at >= from_ms)
        .collect();
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    eprintln!("longest gap between evaluations over the rolling restart: {gap} ms");
    assert!(
        gap <= TAKEOVER.as_millis() as i64,
        "a gap of {gap} ms between evaluations, over the takeover bound {TAKEOVER:?} ({INTERVAL:?} interval)"
    );
    assert!(a.stop().unwrap().success());
    assert!(b.stop().unwrap().success());
    verify(&a);
    stored_exactly_once(&url, &acked);
}
