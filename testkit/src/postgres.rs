//! PostgreSQL for the tests: the private server `.ci/run` starts (its URL in
//! `AIMS_TEST_POSTGRES_URL`, see `.ci/postgres`), and a fresh database on it for each collector
//! under test, so tests never see each other's rows.
//!
//! With `AIMS_TEST_BACKEND=postgres`, every collector the harnesses start (in process and the
//! real binary) stores in a fresh PostgreSQL database instead of SQLite: `.ci/run` runs the
//! collector's whole suite a second time that way.

use std::process::Command;

/// The test server's URL (a database-less admin URL on 127.0.0.1).
pub const URL_VAR: &str = "AIMS_TEST_POSTGRES_URL";
/// `postgres` runs the collector suite on PostgreSQL.
pub const BACKEND_VAR: &str = "AIMS_TEST_BACKEND";

/// The test server's URL, or `None` after a visible skip naming the Debian package; under
/// `CI=true` a missing server fails the test instead, so CI never passes by skipping.
pub fn server(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            crate::skip::skip(
                test,
                &format!(
                    "{URL_VAR} is unset; install the Debian package postgresql and start a \
                     server with `.ci/postgres start DIR` (as .ci/run does)"
                ),
            );
            None
        }
    }
}

/// A database created for one test: dropped when this is dropped (at the end of the test,
/// passed or failed), with `FORCE`, so sessions a collector left open do not keep it, and a
/// long CI run does not pile databases up on the server.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name on the server.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        match Command::new("psql")
            .args([self.admin.as_str(), "-qAtc", &sql])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "could not drop test database {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("could not drop test database {}: psql: {e}", self.name),
        }
    }
}

/// Creates a new, empty database on the server at `url` (with `psql`, which the Debian package
/// brings); it is dropped when the returned guard is.
pub fn fresh_database(url: &str) -> TestDatabase {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "aims_t{}_{}_{nanos:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new("psql")
        .args([url, "-qAtc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql (Debian package postgresql-client) runs");
    assert!(
        out.status.success(),
        "CREATE DATABASE {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    TestDatabase {
        admin: url.to_owned(),
        url: with_database(url, &name),
        name,
    }
}

/// `url` naming database `name` instead (any query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let rest = head
        .strip_prefix("postgres://")
        .or_else(|| head.strip_prefix("postgresql://"));
    let authority = rest.map_or(head, |r| r.split('/').next().unwrap_or(r));
    let mut out = format!("postgres://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Whether the collector suite runs on PostgreSQL (`AIMS_TEST_BACKEND=postgres`): then a fresh
/// database (dropped with the guard). Any other value, or none, is SQLite.
pub fn suite_database() -> Option<TestDatabase> {
    match std::env::var(BACKEND_VAR).as_deref() {
        Ok("postgres") => {
            let url = server("the collector suite on PostgreSQL")
                .unwrap_or_else(|| panic!("{BACKEND_VAR}=postgres needs {URL_VAR}"));
            Some(fresh_database(&url))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{fresh_database, server, with_database};

    fn count(admin: &str, sql: &str) -> String {
        let out = std::process::Command::new("psql")
            .args([admin, "-qAtc", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn exists(admin: &str, name: &str) -> bool {
        count(
            admin,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        ) == "1"
    }

    #[test]
    fn a_test_database_is_dropped_with_its_guard_even_while_in_use() {
        let Some(admin) = server("a_test_database_is_dropped_with_its_guard") else {
            return;
        };
        let db = fresh_database(&admin);
        let name = db.name().to_owned();
        assert!(exists(&admin, &name), "{name} was created");
        // A session still open on it (as a collector that was not shut down leaves) does not
        // keep it: the drop ends it.
        let mut session = std::process::Command::new("psql")
            .args([db.url(), "-qAt"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql runs");
        let stdin = session.stdin.as_mut().expect("psql's stdin");
        std::io::Write::write_all(stdin, b"SELECT 1;\n").expect("a query to psql");
        crate::wait_until(
            std::time::Duration::from_secs(30),
            "the session is open on the test database",
            || {
                let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
                (count(&admin, &sql) != "0").then_some(())
            },
        );
        drop(db);
        assert!(!exists(&admin, &name), "{name} was dropped");
        session.kill().ok();
        session.wait().ok();
    }

    #[test]
    fn a_database_is_named_in_place_of_the_servers() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5/postgres", "x"),
            "postgres://postgres@127.0.0.1:5/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
