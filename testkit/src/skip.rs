//! Tests that need an outside tool (Prometheus, Alertmanager, Chromium, a Python with pinned
//! packages): on a developer's machine they skip when it is missing, visibly; under `CI=true`
//! they fail, so CI never passes by skipping.
//!
//! libtest reports a test that returns early as passed and hides what it printed, so a skip
//! is written straight to the process's stderr (which libtest does not capture) and, when
//! `AIMS_TEST_SKIPS` names a file, appended to it as one line: `.ci/run` counts those lines
//! into its closing `skipped` figure.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Whether this run is CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips `what` because of `why`: fails under CI, else says so where it will be seen.
pub fn skip(what: &str, why: &str) {
    let file = std::env::var_os("AIMS_TEST_SKIPS").map(PathBuf::from);
    skip_in(in_ci(), file.as_deref(), what, why);
}

/// [`skip`], with CI and the skip file given rather than read from the environment.
fn skip_in(ci: bool, file: Option<&Path>, what: &str, why: &str) {
    assert!(!ci, "{what} cannot be skipped under CI=true: {why}");
    let line = format!("SKIPPED {what}: {why}");
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(path) = file {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// An outside tool on `PATH`: its path, or `None` after [`skip`] naming the Debian package.
pub fn require_tool(tool: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(
            &format!("a test needing {tool}"),
            &format!("{tool} not found; install the Debian package {package}"),
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::skip_in;

    #[test]
    fn a_skip_is_one_line_of_the_skip_file() {
        let dir = crate::temp_dir();
        let file = dir.path().join("skips");
        skip_in(false, Some(&file), "the test", "tool missing");
        skip_in(false, Some(&file), "another", "also missing");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text,
            "SKIPPED the test: tool missing\nSKIPPED another: also missing\n"
        );
    }

    #[test]
    #[should_panic(expected = "cannot be skipped under CI=true")]
    fn under_ci_a_skip_fails() {
        skip_in(true, None, "the test", "tool missing");
    }
}
