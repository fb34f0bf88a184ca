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

/// Creates a new, empty database on the server at `url` (with `psql`, which the Debian package
/// brings) and returns its URL.
pub fn fresh_database(url: &str) -> String {
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
    with_database(url, &name)
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
/// database's URL. Any other value, or none, is SQLite.
pub fn suite_database() -> Option<String> {
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
    use super::with_database;

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
