//! The schema migrations of both backends, embedded in the binary.
//!
//! Built here from `include_str!` rather than by `sqlx::migrate!`, so the build compiles no
//! SQL driver for the host as well (the macro links SQLite's C amalgamation and PostgreSQL's
//! driver into a proc-macro: a quarter of a cold build). The checksums are sqlx's own (SHA-384
//! of the file), so a database migrated by either way is the same to the other. A test checks
//! that every file in the two folders is listed.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(file name, contents)` of each migration, oldest first.
type Files = &'static [(&'static str, &'static str)];

macro_rules! files {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../", $dir, "/", $file)))),*]
    };
}

const SQLITE: Files = files!("migrations":
    "0001_initial.sql",
    "20261201000020_nonconformities.sql",
    "20261201000030_leadership.sql",
    "20261201000040_notifier_alerts.sql",
    "20261201000050_checkpoints.sql",
    "20261201000051_report_snapshots.sql",
    "20261201000460_report_snapshot_records.sql",
    "20261202050000_summary_envelope_gzip.sql",
);

const POSTGRES: Files = files!("migrations_postgres":
    "0001_initial.sql",
    "20261201000020_nonconformities.sql",
    "20261201000030_leadership.sql",
    "20261201000040_notifier_alerts.sql",
    "20261201000050_checkpoints.sql",
    "20261201000051_report_snapshots.sql",
    "20261201000460_report_snapshot_records.sql",
    "20261201001400_summary_body_lz4.sql",
    "20261202000900_summary_body_inline.sql",
    "20261202050000_summary_envelope_gzip.sql",
);

/// The SQLite store's migrations (`collector/migrations/`).
pub fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL store's migrations (`collector/migrations_postgres/`).
pub fn postgres() -> Migrator {
    migrator(POSTGRES)
}

/// A migrator as `sqlx::migrate!` builds it: version and description from `<version>_<words>.sql`,
/// in a transaction each, holding the database's migration lock.
fn migrator(files: Files) -> Migrator {
    let migrations = files
        .iter()
        .map(|(name, sql)| {
            let stem = name.trim_end_matches(".sql");
            let (version, words) = stem.split_once('_').unwrap_or((stem, ""));
            Migration::new(
                version
                    .parse()
                    .expect("a migration file starts with its version"),
                Cow::Owned(words.replace('_', " ")),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(files: Files) -> Vec<String> {
        files.iter().map(|(name, _)| (*name).to_owned()).collect()
    }

    fn on_disk(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        assert_eq!(listed(SQLITE), on_disk("migrations"));
        assert_eq!(listed(POSTGRES), on_disk("migrations_postgres"));
        let versions: Vec<i64> = sqlite().iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions[0], 1);
    }

    #[test]
    fn checksums_are_sqlx_s_own() {
        let m = &sqlite().migrations[0];
        assert_eq!(m.description, "initial");
        assert_eq!(
            m.checksum.as_ref(),
            Migration::new(
                1,
                Cow::Borrowed(""),
                MigrationType::Simple,
                Cow::Borrowed(SQLITE[0].1),
                false
            )
            .checksum
            .as_ref()
        );
        assert_eq!(m.checksum.len(), 48, "SHA-384");
    }
}
