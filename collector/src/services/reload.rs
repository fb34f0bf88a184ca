//! Loading and reloading the objectives file (SIGHUP, `POST /-/reload`).
//!
//! A file that does not validate never replaces the objectives in force: the old ones keep
//! being evaluated, and the failure is logged, counted and recorded as evidence. A valid file
//! whose objectives changed records each new or changed objective version, so an auditor can
//! see which version every evaluation was judged against.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aims_core::evidence::payload::{
    ConfigReload, ObjectiveVersion, Payload, ReloadOutcome, ReloadProblem,
};
use aims_core::lifecycle::Lifecycle;
use aims_core::objective::{self, ObjectiveError, ObjectivesFile};
use aims_core::ModelSchema;
use thiserror::Error;

use crate::evidence::Entry;
use crate::state::{horizon_ms, App, ObjectiveStatus};
use crate::store::StoreError;

/// Why an objectives file was not taken.
#[derive(Debug, Error)]
pub enum ReloadError {
    /// It cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It does not validate; every problem, each with its line and field.
    #[error("{}", render(path, errors))]
    Invalid {
        /// The file.
        path: String,
        /// The problems.
        errors: Vec<ObjectiveError>,
    },
    /// The evidence could not be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `file:line: location: message`, one per line, as `promtool check` prints.
pub fn render(path: &str, errors: &[ObjectiveError]) -> String {
    errors
        .iter()
        .map(|e| format!("{path}:{}: {}: {}", e.line, e.location, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates an objectives file against the known schemas.
pub fn load(path: &Path, schemas: &[ModelSchema]) -> Result<ObjectivesFile, ReloadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReloadError::Read {
        path: shown.clone(),
        source,
    })?;
    objective::parse(&text, schemas).map_err(|errors| ReloadError::Invalid {
        path: shown,
        errors,
    })
}

/// Brings the statuses in line with `file`: new objectives start in their initial state,
/// changed ones keep their lifecycle under the new version. Returns the evidence of every new
/// or changed version.
pub fn adopt(
    status: &mut HashMap<String, ObjectiveStatus>,
    file: &ObjectivesFile,
    now_ms: i64,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for o in &file.objectives {
        let version = o.version();
        let previous = status.get(&o.id).map(|s| s.version.clone());
        if previous.as_deref() == Some(version.as_str()) {
            continue;
        }
        entries.push(Entry::objective(
            &o.id,
            Payload::ObjectiveVersion(ObjectiveVersion {
                objective: o.id.clone(),
                version: version.clone(),
                previous_version: previous,
                file_version: file.version.clone(),
                policy: file.policy.clone(),
                definition: o.clone(),
            }),
        ));
        status
            .entry(o.id.clone())
            .and_modify(|s| s.version = version.clone())
            .or_insert_with(|| ObjectiveStatus {
                version,
                lifecycle: Lifecycle::initial(now_ms),
                last_value: None,
                last_verdict: None,
                samples: None,
                evaluated_ms: None,
            });
    }
    entries
}

/// Re-reads the objectives file. On success returns the new file version and the ids of new or
/// changed objectives; on failure the objectives in force stay.
pub async fn reload(app: &App, trigger: &str) -> Result<(String, Vec<String>), ReloadError> {
    let _serial = app.reload_lock.lock().await;
    let now = app.now_ms();
    let path = &app.config.evaluation.objectives;
    let schemas = app.profiles.read().schemas();
    match load(path, &schemas) {
        Err(e) => {
            app.metrics
                .config_reloads
                .with_label_values(&["failure"])
                .inc();
            app.metrics.config_last_reload_successful.set(0);
            tracing::error!(trigger, error = %e, "objectives reload failed; keeping the objectives in force");
            let detail = match &e {
                ReloadError::Invalid { errors, .. } => errors
                    .iter()
                    .map(|e| ReloadProblem {
                        line: Some(e.line),
                        field: Some(e.location.clone()),
                        message: e.message.clone(),
                    })
                    .collect(),
                other => vec![ReloadProblem {
                    line: None,
                    field: None,
                    message: other.to_string(),
                }],
            };
            app.evidence
                .append(
                    vec![Entry::global(Payload::ConfigReload(ConfigReload {
                        trigger: trigger.to_owned(),
                        outcome: ReloadOutcome::Failure,
                        file: path.display().to_string(),
                        file_version: None,
                        changed: None,
                        removed: None,
                        errors: Some(detail),
                    }))],
                    &[],
                    now,
                )
                .await?;
            Err(e)
        }
        Ok(file) => {
            let old = app.objectives();
            let (entries, rows, removed) = {
                let mut status = app.status.write();
                let entries = adopt(&mut status, &file, now);
                let keep: std::collections::HashSet<&str> =
                    file.objectives.iter().map(|o| o.id.as_str()).collect();
                let removed: Vec<(String, String)> = old
                    .objectives
                    .iter()
                    .filter(|o| !keep.contains(o.id.as_str()))
                    .map(|o| (o.id.clone(), o.model.clone()))
                    .collect();
                for (id, _) in &removed {
                    status.remove(id);
                }
                let rows: Vec<_> = file
                    .objectives
                    .iter()
                    .filter_map(|o| status.get(&o.id).map(|s| s.row(&o.id)))
                    .collect();
                (entries, rows, removed)
            };
            let changed: Vec<String> = entries.iter().filter_map(|e| e.objective.clone()).collect();
            let mut all = vec![Entry::global(Payload::ConfigReload(ConfigReload {
                trigger: trigger.to_owned(),
                outcome: ReloadOutcome::Success,
                file: path.display().to_string(),
                file_version: Some(file.version.clone()),
                changed: Some(changed.clone()),
                removed: Some(removed.iter().map(|(id, _)| id.clone()).collect()),
                errors: None,
            }))];
            all.extend(entries);
            app.evidence.append(all, &rows, now).await?;
            for (id, model) in &removed {
                app.metrics.forget_objective(id, model);
            }
            let grown = horizon_ms(&file, &app.config) > horizon_ms(&old, &app.config);
            let version = file.version.clone();
            *app.objectives.write() = Arc::new(file);
            if grown {
                let horizon = horizon_ms(&app.objectives(), &app.config);
                app.refresh_aggregates(now, horizon).await?;
            }
            app.metrics
                .config_reloads
                .with_label_values(&["success"])
                .inc();
            app.metrics.config_last_reload_successful.set(1);
            tracing::info!(trigger, file_version = %version, changed = ?changed, "objectives reloaded");
            Ok((version, changed))
        }
    }
}
