//! Leadership among collector replicas that share one PostgreSQL database.
//!
//! Every replica ingests and serves; one, the leader, evaluates objectives. The leader holds
//! a session advisory lock on a connection of its own (not from the pool, so the lock lives
//! exactly as long as that session). The session is given `idle_session_timeout` =
//! `lock_timeout`, and the leader touches it at every tick: a leader that dies (kill -9)
//! loses its socket and so the lock at once; a leader that stalls (SIGSTOP, a long pause)
//! goes idle past the timeout, the server ends its session, and the lock is free for another
//! replica after at most `lock_timeout`.
//!
//! Winning the lock begins a new leadership term in the database ([`Store::begin_term`]).
//! The leader's evidence appends carry that term and the store refuses them once a newer term
//! holds (fencing): a stalled leader that resumes, not yet knowing it was replaced, appends
//! nothing.
//!
//! On SQLite there is one process and so one leader, always: [`Elector::single`].

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::store::{Store, StoreError};

/// The advisory lock key of the leader ("AIMSLEAD").
pub const LEADER_LOCK: i64 = 0x4149_4d53_4c45_4144;

/// What one election tick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This replica leads in `term`; `elected` is true on the tick that won it.
    Leader {
        /// The leadership term.
        term: i64,
        /// Whether this tick won the lock (state must be reloaded from the database).
        elected: bool,
    },
    /// Another replica leads, or none can be reached.
    Follower,
}

/// Campaigns for, and keeps, leadership.
#[derive(Debug)]
pub struct Elector {
    kind: Kind,
    replica: String,
    term: Option<i64>,
    previous: Option<String>,
}

#[derive(Debug)]
enum Kind {
    /// SQLite: the only process leads.
    Single,
    /// PostgreSQL: the advisory lock on a dedicated session.
    Postgres {
        options: Box<PgConnectOptions>,
        lock_timeout: Duration,
        session: Option<PgConnection>,
    },
}

impl Elector {
    /// The elector of a single-process (SQLite) collector: it leads from the first tick.
    pub fn single(replica: &str) -> Self {
        Self {
            kind: Kind::Single,
            replica: replica.to_owned(),
            term: None,
            previous: None,
        }
    }

    /// An elector campaigning on the PostgreSQL server `options` names. A replica that stalls
    /// for longer than `lock_timeout` loses the lock.
    pub fn postgres(replica: &str, options: PgConnectOptions, lock_timeout: Duration) -> Self {
        Self {
            kind: Kind::Postgres {
                options: Box::new(options),
                lock_timeout,
                session: None,
            },
            replica: replica.to_owned(),
            term: None,
            previous: None,
        }
    }

    /// This replica's name, as recorded with its terms.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Who held the term before the one this replica last won, if recorded.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }

    /// The term held, if leading (as of the last tick).
    pub fn term(&self) -> Option<i64> {
        self.term
    }

    /// Campaigns (a follower) or keeps the session alive (the leader); call it more often than
    /// the lock timeout. A leader whose session was ended learns here that it is a follower.
    pub async fn tick(&mut self, store: &Store, now_ms: i64) -> Result<Role, StoreError> {
        match &mut self.kind {
            Kind::Single => {
                if let Some(term) = self.term {
                    return Ok(Role::Leader {
                        term,
                        elected: false,
                    });
                }
                let previous = store.leadership().await?.1;
                self.previous = Some(previous).filter(|h| !h.is_empty());
                let term = store.begin_term(&self.replica, now_ms).await?;
                self.term = Some(term);
                Ok(Role::Leader {
                    term,
                    elected: true,
                })
            }
            Kind::Postgres {
                options,
                lock_timeout,
                session,
            } => {
                if let (Some(term), Some(conn)) = (self.term, session.as_mut()) {
                    match sqlx::query("SELECT 1").execute(&mut *conn).await {
                        Ok(_) => {
                            return Ok(Role::Leader {
                                term,
                                elected: false,
                            })
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, term, "leader session lost; following");
                            *session = None;
                            self.term = None;
                            return Ok(Role::Follower);
                        }
                    }
                }
                self.term = None;
                if session.is_none() {
                    let mut conn = options.connect().await?;
                    sqlx::query(&format!(
                        "SET idle_session_timeout = {}",
                        lock_timeout.as_millis().max(1)
                    ))
                    .execute(&mut conn)
                    .await?;
                    *session = Some(conn);
                }
                let conn = session.as_mut().expect("a session was just opened");
                let won: bool = match sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LEADER_LOCK)
                    .fetch_one(&mut *conn)
                    .await
                {
                    Ok(won) => won,
                    Err(e) => {
                        *session = None;
                        return Err(e.into());
                    }
                };
                if !won {
                    return Ok(Role::Follower);
                }
                let previous = store.leadership().await.ok().map(|(_, holder)| holder);
                self.previous = previous.filter(|h| !h.is_empty());
                let term = match store.begin_term(&self.replica, now_ms).await {
                    Ok(term) => term,
                    Err(e) => {
                        // Without a term, do not hold the lock: let another replica try.
                        if let Some(conn) = session.take() {
                            conn.close().await.ok();
                        }
                        return Err(e);
                    }
                };
                self.term = Some(term);
                Ok(Role::Leader {
                    term,
                    elected: true,
                })
            }
        }
    }

    /// Gives up leadership (closing the session releases the lock at once).
    pub async fn resign(&mut self) {
        self.term = None;
        if let Kind::Postgres { session, .. } = &mut self.kind {
            if let Some(conn) = session.take() {
                conn.close().await.ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Instant;

    use aims_core::evidence::payload::{Payload, Startup};

    use super::*;
    use crate::evidence::{verify, Entry, EvidenceLog};
    use crate::metrics::Metrics;
    use crate::test_support::stores;

    fn startup(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| {
                Entry::global(Payload::Startup(Startup {
                    version: format!("test-{i}"),
                    objectives_file: "o.yaml".into(),
                    file_version: "f".into(),
                }))
            })
            .collect()
    }

    /// Ticks `elector` until it leads, or fails after `within`.
    async fn lead_within(
        elector: &mut Elector,
        store: &Store,
        within: Duration,
    ) -> (i64, Duration) {
        let start = Instant::now();
        loop {
            if let Role::Leader { term, elected } = elector.tick(store, 1).await.unwrap() {
                assert!(elected, "a follower that wins was elected on that tick");
                return (term, start.elapsed());
            }
            assert!(start.elapsed() < within, "no takeover within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two replicas' evidence writers on one store: interleaved appends re-seal on each
    /// other's head, and the chain stays one chain, on both backends.
    #[tokio::test]
    async fn writers_in_two_replicas_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            let a = EvidenceLog::open(store.clone(), Metrics::new())
                .await
                .unwrap();
            let b = EvidenceLog::open(store.clone(), Metrics::new())
                .await
                .unwrap();
            for round in 0..5 {
                a.append(startup(2), &[], round).await.unwrap();
                b.append(startup(3), &[], round).await.unwrap();
            }
            let (x, y) = tokio::join!(a.append(startup(4), &[], 9), b.append(startup(4), &[], 9));
            x.unwrap();
            y.unwrap();
            let checked = verify(&store).await.unwrap();
            assert_eq!(checked.records, 5 * 5 + 8, "{backend}");
            assert_eq!(
                checked.head_seq, checked.records,
                "{backend}: no gap in sequence"
            );
            store.close().await;
        }
    }

    /// On SQLite the one process leads at once, with a new term at every start.
    #[tokio::test]
    async fn a_single_process_leads_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, store, _database) = stores(dir.path()).await.remove(0);
        let mut e = Elector::single("solo");
        let first = e.tick(&store, 5).await.unwrap();
        assert_eq!(
            first,
            Role::Leader {
                term: 1,
                elected: true
            }
        );
        assert_eq!(
            e.tick(&store, 6).await.unwrap(),
            Role::Leader {
                term: 1,
                elected: false
            }
        );
        assert_eq!(store.leadership().await.unwrap(), (1, "solo".to_owned()));
        let mut again = Elector::single("solo");
        assert_eq!(
            again.tick(&store, 7).await.unwrap(),
            Role::Leader {
                term: 2,
                elected: true
            }
        );
    }

    /// One leader at a time on PostgreSQL; a stalled leader loses the lock after the lock
    /// timeout, its appends are fenced when it resumes, and a resigned (or dead) leader's lock
    /// is taken over at once.
    #[tokio::test]
    async fn one_leader_and_a_stalled_one_is_fenced() {
        let dir = tempfile::tempdir().unwrap();
        let Some((_, store, _database)) = stores(dir.path())
            .await
            .into_iter()
            .find(|(b, _, _)| *b == "postgres")
        else {
            return;
        };
        let url = std::env::var("AIMS_TEST_POSTGRES_URL").unwrap();
        let db = store
            .database_name()
            .expect("a PostgreSQL store names its database");
        let options = PgConnectOptions::from_str(&url).unwrap().database(&db);
        // Long enough that a takeover "at once" (a closed session) is told apart from one
        // after the timeout (a stalled session) even on a loaded machine.
        let timeout = Duration::from_millis(1500);
        let mut a = Elector::postgres("a", options.clone(), timeout);
        let mut b = Elector::postgres("b", options, timeout);
        let (term_a, _) = lead_within(&mut a, &store, Duration::from_secs(5)).await;
        // A's session was last used by that tick: the server ends it `timeout` after this.
        let a_idle_since = Instant::now();
        assert_eq!(b.tick(&store, 1).await.unwrap(), Role::Follower);
        assert_eq!(
            b.tick(&store, 1).await.unwrap(),
            Role::Follower,
            "the lock is held"
        );

        let log_a = EvidenceLog::open(store.clone(), Metrics::new())
            .await
            .unwrap();
        log_a.set_term(Some(term_a));
        log_a.append(startup(3), &[], 1).await.unwrap();

        // A stalls (no ticks). Its session goes idle past the timeout and the server ends it.
        let (term_b, _) = lead_within(&mut b, &store, Duration::from_secs(20)).await;
        assert!(term_b > term_a);
        let held = a_idle_since.elapsed();
        assert!(
            held >= timeout / 2,
            "the lock was held while A's session lived ({held:?})"
        );
        assert_eq!(store.leadership().await.unwrap(), (term_b, "b".to_owned()));

        // A resumes, not knowing: its append is refused and the chain is as it was.
        let before = store.evidence_head().await.unwrap();
        let err = log_a.append(startup(2), &[], 2).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Fenced { held, current } if held == term_a && current == term_b),
            "{err}"
        );
        assert_eq!(store.evidence_head().await.unwrap(), before);
        // Its next tick tells it that it follows.
        assert_eq!(a.tick(&store, 2).await.unwrap(), Role::Follower);

        let log_b = EvidenceLog::open(store.clone(), Metrics::new())
            .await
            .unwrap();
        log_b.set_term(Some(term_b));
        log_b.append(startup(2), &[], 3).await.unwrap();
        let checked = verify(&store).await.unwrap();
        assert_eq!((checked.records, checked.head_seq), (5, 5));

        // B goes away (its session closes, as when the process is killed): A takes over at
        // once, well inside the lock timeout.
        b.resign().await;
        let (term_a2, took) = lead_within(&mut a, &store, timeout).await;
        assert!(term_a2 > term_b, "{term_a2} after {took:?}");
        store.close().await;
    }
}
