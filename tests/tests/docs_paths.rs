//! The README and docs/ point only inside this repository (issue 22: they sent readers to a
//! design document that ships with no clone): every repository path they name in backticks or
//! link to exists, and none names the project's private design notes.

use std::path::Path;

use aims_e2e::repo_root;

/// Top-level folders a path in the docs may start with.
const ROOTS: &[&str] = &[
    "agent/",
    "collector/",
    "core/",
    "config/",
    "docs/",
    "python/",
    "runtime/",
    "scripts/",
    "testkit/",
    "tests/",
];

/// Files the tests write, named in the docs but not committed.
const GENERATED: &[&str] = &["tests/artifacts/"];

fn documents(root: &Path) -> Vec<(String, String)> {
    let mut out = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(root.join("README.md")).expect("README.md"),
    )];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("a docs entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
            out.push((name, std::fs::read_to_string(&path).expect("a doc")));
        }
    }
    out
}

#[test]
fn the_readme_and_docs_name_only_paths_that_exist_here() {
    let root = repo_root();
    let mut missing = Vec::new();
    for (name, text) in documents(&root) {
        assert!(
            !text.contains("DESIGN.md") && !text.contains("shared folder"),
            "{name} points outside the repository"
        );
        let dir = Path::new(&name)
            .parent()
            .unwrap_or(Path::new(""))
            .to_owned();
        // `path` in backticks (relative to the repository) and [text](path) links (relative
        // to the document).
        let quoted = text.split('`').skip(1).step_by(2).filter_map(|w| {
            let w = w.split_whitespace().next()?;
            ROOTS
                .iter()
                .any(|r| w.starts_with(r))
                .then(|| root.join(w.trim_end_matches([',', '.', ':'])))
        });
        let linked = text.split("](").skip(1).filter_map(|rest| {
            let target = rest.split(')').next()?.split('#').next()?;
            (!target.is_empty() && !target.contains("://") && !target.starts_with("mailto:"))
                .then(|| root.join(&dir).join(target))
        });
        for path in quoted.chain(linked) {
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if GENERATED.iter().any(|g| shown.starts_with(g)) || shown.contains('*') {
                continue;
            }
            if !path.exists() {
                missing.push(format!("{name}: {shown}"));
            }
        }
    }
    assert!(missing.is_empty(), "named but absent: {missing:#?}");
}
