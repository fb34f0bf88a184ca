//! Two collector replicas in process on one PostgreSQL database (`AIMS_TEST_POSTGRES_URL`,
//! started by `.ci/run`): both ingest, idempotently across replicas; one leads; when the
//! leader stops, the other takes over with the lifecycle it left, and the evidence chain is
//! one chain with a `leader_change` record per term.

use std::time::Duration;

use aims_collector::config::Backend;
use aims_collector::store::Store;
use aims_collector::{Clock, Config};
use aims_testkit::fixtures::{envelope, minute, profile, schema, summary, Traffic, OBJECTIVES};
use aims_testkit::{eventually, net, prom::sample};
use serde_json::Value;

/// The test server's URL, or `None` (a visible skip; a failure under `CI=true`).
fn postgres_url() -> Option<String> {
    aims_testkit::postgres::server("replicas")
}

async fn get(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

async fn state(client: &reqwest::Client, base: &str, id: &str) -> String {
    let v: Value =
        serde_json::from_str(&get(client, format!("{base}/v1/objectives")).await).unwrap();
    v["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .map(|o| o["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

async fn leader(client: &reqwest::Client, base: &str) -> Option<f64> {
    sample(
        &get(client, format!("{base}/metrics")).await,
        "aims_collector_leader",
        &[],
    )
}

struct Replica {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(url: &str, name: &str, objectives: &std::path::Path, clock: &Clock) -> Replica {
    start_with(url, name, objectives, clock, |_| {})
}

fn start_with(
    url: &str,
    name: &str,
    objectives: &std::path::Path,
    clock: &Clock,
    configure: impl FnOnce(&mut Config),
) -> Replica {
    let mut config = Config::default();
    config.storage.backend = Backend::Postgres;
    config.storage.url = Some(url.to_owned());
    config.storage.pool_size = 4;
    // Long enough that a loaded machine does not stall the leader's ticks past it.
    config.storage.lock_timeout = Duration::from_secs(2);
    config.storage.replica = Some(name.to_owned());
    config.evaluation.objectives = objectives.to_owned();
    config.evaluation.interval = Duration::from_millis(50);
    configure(&mut config);
    let listener = net::listener();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aims_collector::server::run_with_clock(
        config,
        clock.clone(),
        listener,
        async move {
            stopped.await.ok();
        },
    ));
    Replica { base, stop, server }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_ingest_and_hand_over_the_evaluation() {
    let Some(admin) = postgres_url() else { return };
    let database = aims_testkit::postgres::fresh_database(&admin);
    let url = database.url().to_owned();
    let dir = aims_testkit::temp_dir();
    let objectives = dir.path().join("objectives.yaml");
    std::fs::write(&objectives, OBJECTIVES).unwrap();
    let start_ms = minute();
    let clock = Clock::manual(start_ms + 1_000);
    let client = reqwest::Client::new();

    let one = start(&url, "one", &objectives, &clock);
    eventually(Duration::from_secs(20), "one leads", || async {
        (leader(&client, &one.base).await == Some(1.0)).then_some(())
    })
    .await;
    let two = start(&url, "two", &objectives, &clock);
    eventually(Duration::from_secs(20), "two serves, following", || async {
        (leader(&client, &two.base).await == Some(0.0)).then_some(())
    })
    .await;

    // The follower takes the reference and the summary; the leader sees them.
    let schema = schema(3);
    let profile = profile(&schema);
    let put = client
        .put(format!("{}/v1/models/{}/reference", two.base, schema.name))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let drifted = envelope(
        "a1",
        start_ms,
        0,
        summary(&schema, &profile, Traffic::Drifted, 300, 1),
    );
    let post = |base: &str| {
        client
            .post(format!("{base}/v1/summaries"))
            .json(&drifted)
            .send()
    };
    assert_eq!(post(&two.base).await.unwrap().status(), 202);
    assert_eq!(
        post(&one.base).await.unwrap().status(),
        200,
        "a duplicate across replicas"
    );

    eventually(Duration::from_secs(20), "pending on the leader", || async {
        (state(&client, &one.base, "income-drift").await == "pending").then_some(())
    })
    .await;
    assert_eq!(
        leader(&client, &two.base).await,
        Some(0.0),
        "one leader at a time"
    );

    // The leader stops; the follower takes over within the bound and keeps `pending since`:
    // two seconds of clock later (past `for: 1s`), it fires.
    one.stop.send(()).unwrap();
    one.server.await.unwrap().unwrap();
    eventually(Duration::from_secs(30), "two takes over", || async {
        (leader(&client, &two.base).await == Some(1.0)).then_some(())
    })
    .await;
    clock.advance(Duration::from_secs(2));
    eventually(
        Duration::from_secs(20),
        "firing on the new leader",
        || async { (state(&client, &two.base, "income-drift").await == "firing").then_some(()) },
    )
    .await;
    two.stop.send(()).unwrap();
    two.server.await.unwrap().unwrap();

    let mut config = Config::default();
    config.storage.backend = Backend::Postgres;
    config.storage.url = Some(url.clone());
    let store = Store::connect(&config.storage, &config.database_path())
        .await
        .unwrap();
    assert_eq!(store.summary_count().await.unwrap(), 1, "stored once");
    let checked = aims_collector::evidence::verify(&store).await.unwrap();
    assert_eq!(checked.head_seq, checked.records, "one chain, no gap");
    let terms = store
        .evidence_page(0, 10_000, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "leader_change")
        .count();
    let (term, holder) = store.leadership().await.unwrap();
    assert!(term >= 2, "one and then two led: term {term}");
    assert_eq!(terms as i64, term, "a leader_change record per term");
    assert_eq!(holder, "two");
    store.close().await;
}

async fn signed(client: &reqwest::Client, base: &str) -> f64 {
    sample(
        &get(client, format!("{base}/metrics")).await,
        "aims_evidence_checkpoints_signed_total",
        &[],
    )
    .unwrap_or(-1.0)
}

/// The checkpoint a replica serves, verified with `key`: its note and tree head.
async fn served(
    client: &reqwest::Client,
    base: &str,
    key: &aims_core::checkpoint::VerifierKey,
) -> Option<(String, aims_core::checkpoint::TreeHead)> {
    let r = client
        .get(format!("{base}/v1/evidence/checkpoint"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let note = r.text().await.ok()?;
    let head = aims_core::checkpoint::TreeHead::open(&note, key)
        .expect("a served checkpoint verifies with the key");
    Some((note, head))
}

/// With several replicas, checkpoints are the leader's job: the follower signs none, even when
/// one is due on its clock, and serves the latest one the leader stored; when the leader stops,
/// the follower takes over and signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_signs_checkpoints_and_the_follower_serves_them() {
    let Some(admin) = postgres_url() else { return };
    let database = aims_testkit::postgres::fresh_database(&admin);
    let url = database.url().to_owned();
    let dir = aims_testkit::temp_dir();
    let objectives = dir.path().join("objectives.yaml");
    std::fs::write(&objectives, OBJECTIVES).unwrap();
    const ORIGIN: &str = "test.example/replicas";
    let key = aims_core::checkpoint::SigningKey::from_seed(ORIGIN, [9; 32]).unwrap();
    let key_path = dir.path().join("evidence.key");
    std::fs::write(&key_path, key.to_text()).unwrap();
    let public = key.verifier().clone();
    let signing = |c: &mut Config| {
        c.evidence.origin = ORIGIN.to_owned();
        c.evidence.key_file = Some(key_path.clone());
    };
    let clock = Clock::manual(minute() + 1_000);
    let client = reqwest::Client::new();

    let one = start_with(&url, "one", &objectives, &clock, signing);
    eventually(Duration::from_secs(30), "one leads and signs", || async {
        (leader(&client, &one.base).await == Some(1.0) && signed(&client, &one.base).await >= 1.0)
            .then_some(())
    })
    .await;
    let two = start_with(&url, "two", &objectives, &clock, signing);
    eventually(
        Duration::from_secs(30),
        "two serves one's checkpoint",
        || async {
            let theirs = served(&client, &one.base, &public).await?;
            let mine = served(&client, &two.base, &public).await?;
            (theirs.0 == mine.0).then_some(())
        },
    )
    .await;

    // A checkpoint is due on both replicas' clock: only the leader signs it.
    let before = served(&client, &one.base, &public).await.unwrap().1.size;
    let signed_before = signed(&client, &one.base).await;
    clock.advance(Duration::from_secs(11 * 60));
    let head = eventually(
        Duration::from_secs(30),
        "one signs the due checkpoint",
        || async {
            let (_, head) = served(&client, &one.base, &public).await?;
            (signed(&client, &one.base).await > signed_before && head.size > before).then_some(head)
        },
    )
    .await;
    eventually(Duration::from_secs(30), "two serves it", || async {
        let (_, h) = served(&client, &two.base, &public).await?;
        (h.size >= head.size).then_some(())
    })
    .await;
    // The follower had its own second of clock to sign in, on every tick: it signed nothing.
    assert_eq!(
        signed(&client, &two.base).await,
        0.0,
        "a follower signs no checkpoint"
    );
    assert_eq!(leader(&client, &two.base).await, Some(0.0));

    // The leader stops (signing its last one); the follower takes over and signs.
    one.stop.send(()).unwrap();
    one.server.await.unwrap().unwrap();
    eventually(Duration::from_secs(30), "two leads and signs", || async {
        (leader(&client, &two.base).await == Some(1.0) && signed(&client, &two.base).await >= 1.0)
            .then_some(())
    })
    .await;
    let (_, last) = served(&client, &two.base, &public).await.unwrap();
    assert!(last.size > head.size, "{} > {}", last.size, head.size);
    two.stop.send(()).unwrap();
    two.server.await.unwrap().unwrap();
}
