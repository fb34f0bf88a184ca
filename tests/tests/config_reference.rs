//! `docs/configuration.md` documents exactly the keys the binaries accept: a key in the
//! configuration structs but not in the reference, or in the reference but not accepted, fails.
//!
//! The accepted keys come from the real binaries, not from a copy of the structs: every
//! section denies unknown keys, so loading a document with an unknown key `zzz_probe` at some
//! place makes serde list the fields accepted there ("unknown field `zzz_probe`, expected one
//! of ..."). Probing each field in turn with a table, then an array of tables, walks the whole
//! tree; a field that answers neither is a leaf.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use aims_e2e::{binary, repo_root};
use serde_json::{json, Map, Value};

const PROBE: &str = "zzz_probe";

/// The fields serde lists after "unknown field `zzz_probe`", or `None` for any other error.
fn listed_fields(error: &str) -> Option<Vec<String>> {
    let marker = format!("unknown field `{PROBE}`");
    let rest = &error[error.find(&marker)? + marker.len()..];
    let end = [" for key", " at line", ": ", "\n"]
        .iter()
        .filter_map(|e| rest.find(e))
        .min()
        .unwrap_or(rest.len());
    Some(
        rest[..end]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// `value` nested at `path` (segments; `[]` is an array of one element).
fn nest(path: &[String], value: Value) -> Value {
    path.iter().rev().fold(value, |inner, segment| {
        if segment == "[]" {
            Value::Array(vec![inner])
        } else {
            let mut m = Map::new();
            m.insert(segment.clone(), inner);
            Value::Object(m)
        }
    })
}

/// Walks the tree under `path`; `probe` loads a document and returns the error text.
fn walk(path: &mut Vec<String>, probe: &dyn Fn(&Value) -> String, keys: &mut BTreeSet<String>) {
    let Some(fields) = listed_fields(&probe(&nest(path, json!({PROBE: 1})))) else {
        return;
    };
    for field in fields {
        path.push(field);
        let as_table = listed_fields(&probe(&nest(path, json!({PROBE: 1})))).is_some();
        let as_array = !as_table && {
            path.push("[]".to_owned());
            let found = listed_fields(&probe(&nest(path, json!({PROBE: 1})))).is_some();
            if !found {
                path.pop();
            }
            found
        };
        if as_table || as_array {
            walk(path, probe, keys);
            if as_array {
                path.pop();
            }
        } else {
            keys.insert(path.join(".").replace(".[]", "[]"));
        }
        path.pop();
    }
}

fn accepted_keys(probe: &dyn Fn(&Value) -> String) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    walk(&mut Vec::new(), probe, &mut keys);
    assert!(!keys.is_empty(), "probing found no keys at all");
    keys
}

/// TOML for a JSON tree of objects, arrays and numbers (inline tables below the top level).
fn toml(value: &Value, top: bool) -> String {
    match value {
        Value::Object(m) if top => m
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", toml(v, false)))
            .collect(),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k} = {}", toml(v, false)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|v| toml(v, false))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Runs `program args` in `dir` (so a probe that happens to be valid touches nothing else)
/// and returns its stderr.
fn stderr_of(dir: &Path, program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Keys in the first column of the tables in the section of the reference whose heading
/// starts with `heading`.
fn documented(heading: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("docs/configuration.md"))
        .expect("docs/configuration.md exists");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/configuration.md has a section \"## {heading}\""));
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_owned()))
        .collect()
}

fn compare(what: &str, accepted: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let missing: Vec<_> = accepted.difference(documented).collect();
    let unknown: Vec<_> = documented.difference(accepted).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/configuration.md, {what}:\n  accepted but not documented: {missing:?}\n  documented but not accepted: {unknown:?}"
    );
}

#[test]
fn the_collector_reference_lists_every_accepted_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("probe.toml");
    let collector = binary("aims-collector");
    let probe = |doc: &Value| {
        std::fs::write(&file, toml(doc, true)).expect("probe file");
        stderr_of(
            dir.path(),
            &collector,
            &[
                "evidence",
                "verify",
                "--config",
                &file.display().to_string(),
            ],
        )
    };
    compare(
        "collector",
        &accepted_keys(&probe),
        &documented("Collector"),
    );
}

#[test]
fn the_agent_reference_lists_every_accepted_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("probe.toml");
    let agent = binary("aims-agent");
    let missing = dir.path().join("missing.csv").display().to_string();
    let probe = |doc: &Value| {
        std::fs::write(&file, toml(doc, true)).expect("probe file");
        stderr_of(
            dir.path(),
            &agent,
            &[
                "reference",
                "build",
                "--config",
                &file.display().to_string(),
                "--data",
                &missing,
                "-o",
                &missing,
            ],
        )
    };
    compare("agent", &accepted_keys(&probe), &documented("Agent"));
}

#[test]
fn the_objectives_reference_lists_every_accepted_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("probe.yaml");
    let collector = binary("aims-collector");
    // JSON is YAML, so the probe documents are written as JSON.
    let probe = |doc: &Value| {
        std::fs::write(&file, doc.to_string()).expect("probe file");
        stderr_of(
            dir.path(),
            &collector,
            &["check", &file.display().to_string()],
        )
    };
    let accepted: BTreeSet<String> = accepted_keys(&probe)
        .into_iter()
        .map(|k| {
            k.strip_prefix("objectives[].")
                .map_or(k.clone(), str::to_owned)
        })
        .collect();
    compare("objectives file", &accepted, &documented("Objectives"));
}

#[test]
fn probing_reads_every_serde_wording() {
    assert_eq!(
        listed_fields("x: unknown field `zzz_probe`, expected one of `a`, `b` for key `s`: again"),
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        listed_fields("unknown field `zzz_probe`, expected `a` or `b` at line 1 column 2"),
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        listed_fields("unknown field `zzz_probe`, there are no fields"),
        Some(vec![])
    );
    assert_eq!(listed_fields("invalid type: map, expected a string"), None);
    assert_eq!(
        toml(&json!({"a": {"b": [{"c": 1}]}}), true),
        "a = {b = [{c = 1}]}\n"
    );
}
