//! Layered configuration: a TOML file, overridden by environment variables
//! `PREFIX__SECTION__KEY` (values parsed as numbers and booleans where they look like them).
//!
//! Relative paths in a configuration mean paths next to its file ([`resolve`]).
//!
//! Unknown keys are errors, not silently ignored settings: the configuration types deny them
//! (`#[serde(deny_unknown_fields)]`), and the error names the key and the file.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration that cannot be read or does not deserialise.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct LoadError {
    /// The file, or `(defaults)` without one.
    pub path: String,
    /// Why, naming the key.
    #[source]
    pub source: Box<::config::ConfigError>,
}

/// Reads `path` (when given) under the environment variables starting `env_prefix__`.
pub fn load<T: DeserializeOwned>(path: Option<&Path>, env_prefix: &str) -> Result<T, LoadError> {
    let shown = path.map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string());
    let mut builder = ::config::Config::builder();
    if let Some(path) = path {
        builder = builder.add_source(::config::File::from(path).format(::config::FileFormat::Toml));
    }
    builder
        .add_source(
            ::config::Environment::with_prefix(env_prefix)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .and_then(::config::Config::try_deserialize)
        .map_err(|source| LoadError {
            path: shown,
            source: Box::new(source),
        })
}

/// Makes a relative `path` relative to the folder of the configuration file `config`, so a
/// configuration means the same files whatever folder the binary is started from. Absolute
/// paths, and every path when there is no configuration file, stay as they are.
pub fn resolve(config: Option<&Path>, path: &mut PathBuf) {
    if path.is_relative() {
        if let Some(folder) = config.and_then(Path::parent) {
            *path = folder.join(&*path);
        }
    }
}

/// [`resolve`] for an optional path.
pub fn resolve_opt(config: Option<&Path>, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        resolve(config, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Section {
        port: u16,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        server: Section,
    }

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn relative_paths_resolve_against_the_configuration_folder() {
        let config = Path::new("/etc/aims/agent.toml");
        let mut p = PathBuf::from("profile.json");
        resolve(Some(config), &mut p);
        assert_eq!(p, Path::new("/etc/aims/profile.json"));
        let mut up = PathBuf::from("../data");
        resolve(Some(config), &mut up);
        assert_eq!(up, Path::new("/etc/aims/../data"));
        let mut abs = PathBuf::from("/var/lib/x");
        resolve(Some(config), &mut abs);
        assert_eq!(abs, Path::new("/var/lib/x"));
        let mut here = PathBuf::from("data");
        resolve(Some(Path::new("agent.toml")), &mut here);
        assert_eq!(here, Path::new("data"), "a file in the working folder");
        let mut none = PathBuf::from("data");
        resolve(None, &mut none);
        assert_eq!(none, Path::new("data"), "no file: the working folder");
        let mut opt = Some(PathBuf::from("ca.pem"));
        resolve_opt(Some(config), &mut opt);
        assert_eq!(opt.as_deref(), Some(Path::new("/etc/aims/ca.pem")));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_the_file() {
        let (_d, path) = file("[server]\nport = 1\nprot = 2\n");
        let e = load::<Conf>(Some(&path), "AIMS_RUNTIME_TEST_A").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("prot"), "{text}");
        assert!(text.contains("c.toml"), "{text}");
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let (_d, path) = file("[server]\nport = 1\n");
        std::env::set_var("AIMS_RUNTIME_TEST_B__SERVER__PORT", "9");
        let c = load::<Conf>(Some(&path), "AIMS_RUNTIME_TEST_B").unwrap();
        std::env::remove_var("AIMS_RUNTIME_TEST_B__SERVER__PORT");
        assert_eq!(c.server.port, 9);
    }
}
