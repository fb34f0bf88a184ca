//! The on-disk spool: every closed-window summary waits here until the collector acknowledges it.
//!
//! Each summary is one file, written to a temporary name, fsynced and renamed, so a crash leaves
//! either the whole summary or nothing. File names sort by window start then sequence, so the
//! oldest summary ships first and is evicted first when the spool outgrows its byte bound.
//! Summaries the collector refuses for good move to `dead/` beside a `.reason` file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aims_core::wire::SummaryEnvelope;
use tokio::sync::Notify;

use crate::metrics::AgentMetrics;

/// A spool operation that failed on disk.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {source}")]
pub struct SpoolError {
    /// The file or directory.
    pub path: String,
    /// The I/O error.
    pub source: std::io::Error,
}

impl SpoolError {
    /// The counter's reason label for the failure.
    pub fn reason(&self) -> &'static str {
        use std::io::ErrorKind as K;
        match self.source.kind() {
            K::PermissionDenied => "permission_denied",
            K::StorageFull => "no_space",
            K::ReadOnlyFilesystem => "read_only",
            _ if self.source.raw_os_error() == Some(24) => "too_many_open_files",
            _ => "other",
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Default)]
struct Inner {
    files: BTreeMap<String, u64>,
    bytes: u64,
}

/// The spool directory and its in-memory index.
pub struct Spool {
    dir: PathBuf,
    dead_dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    metrics: AgentMetrics,
    /// Woken whenever a summary is added, so the shipper needs no polling.
    pub added: Notify,
}

/// Whether a file in the spool directory is a summary (the directory also holds the agent's
/// window sequence state and, by default, the cached reference profile).
pub fn is_summary_file(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 32
        && b[..20].iter().all(u8::is_ascii_digit)
        && b[20] == b'-'
        && b[21..31].iter().all(u8::is_ascii_digit)
        && b[31] == b'-'
        && name.ends_with(".json")
}

/// The spool file name of an envelope: window start, sequence, then part of the id.
pub fn file_name(envelope: &SummaryEnvelope) -> String {
    let id: String = envelope.id.chars().take(16).collect();
    format!(
        "{:020}-{:010}-{id}.json",
        envelope.window_start_ms, envelope.seq
    )
}

impl Spool {
    /// Opens (creating) the spool at `dir`, removes leftover temporary files and indexes what
    /// is there: summaries spooled before a crash are shipped after the restart.
    pub fn open(dir: &Path, max_bytes: u64, metrics: AgentMetrics) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let dead_dir = dir.join("dead");
        fs::create_dir_all(&dead_dir).map_err(io_error(&dead_dir))?;
        let mut inner = Inner::default();
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(".tmp-") {
                fs::remove_file(&path).map_err(io_error(&path))?;
            } else if is_summary_file(&name) && path.is_file() {
                let size = entry.metadata().map_err(io_error(&path))?.len();
                inner.bytes += size;
                inner.files.insert(name, size);
            }
        }
        if !inner.files.is_empty() {
            tracing::info!(
                files = inner.files.len(),
                bytes = inner.bytes,
                "spool holds summaries from an earlier run"
            );
        }
        let spool = Self {
            dir: dir.to_owned(),
            dead_dir,
            max_bytes,
            inner: Mutex::new(inner),
            metrics,
            added: Notify::new(),
        };
        spool.publish();
        Ok(spool)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self) {
        let inner = self.lock();
        self.metrics.spool_files.set(inner.files.len() as i64);
        self.metrics.spool_bytes.set(inner.bytes as i64);
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Durably adds a summary, then evicts the oldest others while over the byte bound.
    pub fn write(&self, envelope: &SummaryEnvelope) -> Result<(), SpoolError> {
        let name = file_name(envelope);
        let body = serde_json::to_vec(envelope).map_err(|e| SpoolError {
            path: name.clone(),
            source: std::io::Error::other(e),
        })?;
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let written = fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&body)?;
                f.sync_all()
            })
            .map_err(io_error(&tmp))
            .and_then(|()| fs::rename(&tmp, &path).map_err(io_error(&path)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if let Ok(d) = fs::File::open(&self.dir) {
            // Persists the rename; some filesystems refuse fsync on directories, which only
            // weakens durability, so it is not an error.
            let _ = d.sync_all();
        }
        let mut evicted = Vec::new();
        {
            let mut inner = self.lock();
            if let Some(old) = inner.files.insert(name.clone(), body.len() as u64) {
                inner.bytes -= old;
            }
            inner.bytes += body.len() as u64;
            while inner.bytes > self.max_bytes {
                let Some(oldest) = inner.files.keys().find(|k| **k != name).cloned() else {
                    break;
                };
                if let Some(size) = inner.files.remove(&oldest) {
                    inner.bytes -= size;
                }
                evicted.push(oldest);
            }
        }
        for old in evicted {
            let _ = fs::remove_file(self.dir.join(&old));
            self.metrics.spool_evicted.inc();
            tracing::warn!(file = %old, max_bytes = self.max_bytes, "spool full: evicted the oldest undelivered summary");
        }
        self.publish();
        self.added.notify_one();
        Ok(())
    }

    /// The oldest summary waiting, by file name.
    pub fn oldest(&self) -> Option<String> {
        self.lock().files.keys().next().cloned()
    }

    /// Names of every waiting summary, oldest first.
    pub fn names(&self) -> Vec<String> {
        self.lock().files.keys().cloned().collect()
    }

    /// Reads a waiting summary's bytes; `None` when it disappeared (evicted meanwhile).
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(name)).ok()
    }

    /// Forgets a delivered summary.
    pub fn remove(&self, name: &str) {
        let removed = {
            let mut inner = self.lock();
            let size = inner.files.remove(name);
            if let Some(size) = size {
                inner.bytes -= size;
            }
            size.is_some()
        };
        if removed {
            if let Err(e) = fs::remove_file(self.dir.join(name)) {
                tracing::warn!(file = name, error = %e, "could not delete a delivered summary");
            }
        }
        self.publish();
    }

    /// Moves a refused summary to the dead-letter folder with the reason beside it.
    pub fn dead_letter(&self, name: &str, reason: &str) {
        {
            let mut inner = self.lock();
            if let Some(size) = inner.files.remove(name) {
                inner.bytes -= size;
            }
        }
        let from = self.dir.join(name);
        let to = self.dead_dir.join(name);
        if let Err(e) = fs::rename(&from, &to) {
            tracing::error!(file = name, error = %e, "could not move a refused summary to dead/");
        }
        // Written beside and renamed, so a reader never sees the reason file half written.
        let reason_file = self.dead_dir.join(format!("{name}.reason"));
        let tmp = self.dead_dir.join(format!("{name}.reason.tmp"));
        if let Err(e) = fs::write(&tmp, reason).and_then(|()| fs::rename(&tmp, &reason_file)) {
            tracing::error!(file = name, error = %e, "could not write why a summary was refused");
        }
        self.metrics.summaries_dead_lettered.inc();
        tracing::error!(
            file = name,
            reason,
            "collector refused a summary; moved to dead/"
        );
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aims_core::profile::ProfileBuilder;
    use aims_core::schema::{ModelSchema, Task};
    use aims_core::summary::WindowSummary;

    fn envelope(start: i64, seq: u64) -> SummaryEnvelope {
        let schema = ModelSchema {
            intersections: Vec::new(),
            name: "m".into(),
            version: "1".into(),
            task: Task::Binary,
            classes: vec![],
            positive_class: None,
            features: vec![],
            attributes: vec![],
        }
        .validated()
        .unwrap();
        let profile = ProfileBuilder::new(&schema).finish();
        SummaryEnvelope::new(
            "a",
            "m",
            "1",
            start,
            1000,
            seq,
            WindowSummary::new(&schema, &profile),
        )
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("aims-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn survives_reopen_and_orders_oldest_first() {
        let dir = tempdir("reopen");
        let s = Spool::open(&dir, 1 << 20, AgentMetrics::new()).unwrap();
        s.write(&envelope(2000, 0)).unwrap();
        s.write(&envelope(1000, 1)).unwrap();
        s.write(&envelope(1000, 0)).unwrap();
        fs::write(dir.join(".tmp-leftover"), b"x").unwrap();
        fs::write(dir.join("window-sequences.json"), b"[]").unwrap();
        fs::write(dir.join("reference.json"), b"{}").unwrap();
        drop(s);
        let s = Spool::open(&dir, 1 << 20, AgentMetrics::new()).unwrap();
        let names = s.names();
        assert_eq!(names.len(), 3);
        assert!(names[0].starts_with("00000000000000001000-0000000000"));
        assert!(names[2].starts_with("00000000000000002000"));
        assert!(!dir.join(".tmp-leftover").exists());
        let body = s.read(&names[0]).unwrap();
        let e: SummaryEnvelope = serde_json::from_slice(&body).unwrap();
        assert_eq!((e.window_start_ms, e.seq), (1000, 0));
        s.remove(&names[0]);
        assert_eq!(s.names().len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn evicts_the_oldest_past_the_byte_bound() {
        let dir = tempdir("evict");
        let size = serde_json::to_vec(&envelope(0, 0)).unwrap().len() as u64;
        let metrics = AgentMetrics::new();
        let s = Spool::open(&dir, size * 3 + size / 2, metrics.clone()).unwrap();
        for w in 0..5 {
            s.write(&envelope(w * 1000, 0)).unwrap();
        }
        let names = s.names();
        assert_eq!(names.len(), 3);
        assert!(names[0].starts_with("00000000000000002000"));
        assert_eq!(metrics.spool_evicted.get(), 2);
        assert_eq!(metrics.spool_files.get(), 3);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            4,
            "3 summaries and dead/"
        );
        s.dead_letter(&names[0], "400 bad");
        assert!(dir.join("dead").join(&names[0]).exists());
        assert_eq!(metrics.summaries_dead_lettered.get(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
