//! Nonconformities and corrective actions (ISO/IEC 42001 Clause 10.2).
//!
//! The lifecycle itself is pure (`aims_core::nonconformity`); this service feeds it. The
//! evaluator calls [`observe`] every cycle: a newly firing objective opens a nonconformity (or
//! attaches to the one still active), and every evaluation's outcome goes to the
//! nonconformities in verification. People act through [`act`] (the API and the CLI).
//!
//! Every accepted step is an evidence record (`nonconformity`), written in the same append as
//! the evaluation that caused it; the current form of each nonconformity is then stored in its
//! table, which is what a restart restores. Changes are serialised by `App::corrective_lock`,
//! held across the evidence write, so the evaluator and a request never both change the same
//! nonconformity from the same starting point.

use std::collections::BTreeMap;

use aims_core::evidence::payload::{NonconformityStep, Payload};
use aims_core::nonconformity::{Input, Nonconformity, Outcome, Policy, Refusal, Status, Step};
use aims_core::objective::ObjectivesFile;

use crate::evidence::Entry;
use crate::state::App;
use crate::store::StoreError;

/// Why an action on a nonconformity was not taken. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// No nonconformity has this id.
    #[error("nonconformity {0} does not exist")]
    NotFound(u64),
    /// The lifecycle refused the input.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The verification policy in force.
pub fn policy(app: &App) -> Policy {
    let e = &app.config.effectiveness;
    Policy {
        evaluations: e.evaluations,
        period_ms: e.period.map(|p| p.as_millis().min(u64::MAX as u128) as u64),
    }
}

/// What verification makes of an evaluation verdict: a warning still meets the target.
pub fn outcome(verdict: &str) -> Outcome {
    match verdict {
        "met" | "at_risk" => Outcome::Met,
        "breached" => Outcome::Breached,
        _ => Outcome::Unjudged,
    }
}

fn entry(nc: &Nonconformity, step: &Step, input: Input) -> Entry {
    Entry::objective(
        &nc.objective,
        Payload::Nonconformity(NonconformityStep {
            nonconformity: nc.id,
            objective: nc.objective.clone(),
            version: nc.version.clone(),
            severity: nc.severity.clone(),
            from: step.from,
            to: step.to,
            at_ms: step.at_ms,
            actor: step.actor.clone(),
            input,
        }),
    )
}

/// One cycle's effect on the nonconformities: the evidence entries to append with the
/// cycle's, and the changed nonconformities to [`commit`] once they are written.
#[derive(Debug, Default)]
pub struct Observed {
    /// Evidence of every accepted step.
    pub entries: Vec<Entry>,
    /// The nonconformities changed, in their new form.
    pub changed: Vec<Nonconformity>,
}

/// Applies one evaluation cycle: `verdicts` are (objective, verdict) of this cycle, `firing`
/// the objectives that started firing. Pure over the current nonconformities; the caller
/// holds `corrective_lock` until it has committed the result.
pub fn observe(
    app: &App,
    objectives: &ObjectivesFile,
    verdicts: &[(&str, &str)],
    firing: &[String],
    now_ms: i64,
) -> Observed {
    let policy = policy(app);
    let current = app.nonconformities.read();
    let mut changed: BTreeMap<u64, Nonconformity> = BTreeMap::new();
    let mut out = Observed::default();
    let mut next_id = current.keys().next_back().copied().unwrap_or(0) + 1;
    let active = |objective: &str, changed: &BTreeMap<u64, Nonconformity>| {
        changed
            .values()
            .chain(current.values())
            .find(|n| n.objective == objective && n.status.is_active())
            .map(|n| n.id)
    };
    for (objective, verdict) in verdicts {
        let Some(id) = active(objective, &changed) else {
            continue;
        };
        let mut nc = changed
            .get(&id)
            .or_else(|| current.get(&id))
            .cloned()
            .expect("found above");
        let input = Input::Evaluated {
            outcome: outcome(verdict),
        };
        let before = nc.verification;
        match nc.apply(&input, now_ms, policy) {
            Ok(Some(step)) => {
                tracing::info!(
                    nonconformity = id,
                    objective,
                    from = step.from.as_str(),
                    to = step.to.as_str(),
                    "nonconformity verification"
                );
                out.entries.push(entry(&nc, &step, input));
                changed.insert(id, nc);
            }
            // A pass counted (or a run broken): stored, but no step of the timeline.
            Ok(None) if nc.verification != before => {
                changed.insert(id, nc);
            }
            _ => {}
        }
    }
    for objective in firing {
        let Some(o) = objectives.objectives.iter().find(|o| &o.id == objective) else {
            continue;
        };
        let nc = match active(objective, &changed) {
            Some(id) => {
                let mut nc = changed
                    .get(&id)
                    .or_else(|| current.get(&id))
                    .cloned()
                    .expect("found above");
                match nc.apply(&Input::Fired, now_ms, policy) {
                    Ok(Some(step)) => out.entries.push(entry(&nc, &step, Input::Fired)),
                    _ => continue,
                }
                nc
            }
            None => {
                let version = app
                    .status
                    .read()
                    .get(objective)
                    .map(|s| s.version.clone())
                    .unwrap_or_default();
                let nc =
                    Nonconformity::open(next_id, objective, &version, o.severity.as_str(), now_ms);
                next_id += 1;
                tracing::warn!(nonconformity = nc.id, objective, "nonconformity opened");
                let step = nc.timeline[0].clone();
                out.entries.push(entry(&nc, &step, Input::Fired));
                nc
            }
        };
        changed.insert(nc.id, nc);
    }
    out.changed = changed.into_values().collect();
    out
}

/// Stores the changed nonconformities (their evidence is already written, fenced on `term`)
/// and publishes them. The rows are fenced on the same term: a leader that was paused and
/// replaced between the two writes stores nothing (its evidence was refused too, unless the
/// term changed in between; then the new leader's restart of state from the log wins).
pub async fn commit(
    app: &App,
    changed: Vec<Nonconformity>,
    term: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    if !changed.is_empty() {
        app.store
            .put_nonconformities(&changed, term, now_ms)
            .await?;
    }
    {
        let mut all = app.nonconformities.write();
        for nc in changed {
            all.insert(nc.id, nc);
        }
    }
    publish(app, now_ms);
    Ok(())
}

/// A person's input on nonconformity `id`: applied, written as evidence, stored, published.
/// A refusal stores nothing.
pub async fn act(app: &App, id: u64, input: Input) -> Result<Nonconformity, ActError> {
    let _serial = app.corrective_lock.lock().await;
    let now_ms = app.now_ms();
    // One term for both writes: the step's evidence and its row are fenced alike.
    let term = app.evidence.term();
    let mut nc = app
        .nonconformities
        .read()
        .get(&id)
        .cloned()
        .ok_or(ActError::NotFound(id))?;
    let Some(step) = nc.apply(&input, now_ms, policy(app))? else {
        return Ok(nc);
    };
    tracing::info!(nonconformity = id, input = input.name(), actor = ?step.actor, to = step.to.as_str(), "nonconformity step");
    app.evidence
        .append_in_term(vec![entry(&nc, &step, input)], &[], now_ms, term)
        .await?;
    commit(app, vec![nc.clone()], term, now_ms).await?;
    Ok(nc)
}

/// Sets the Clause 10.2 gauges from the current nonconformities.
pub fn publish(app: &App, now_ms: i64) {
    let all = app.nonconformities.read();
    let m = &app.metrics.corrective;
    for s in Status::ALL {
        let n = all.values().filter(|n| n.status == s).count();
        m.nonconformities
            .with_label_values(&[s.as_str()])
            .set(n as i64);
    }
    m.actions_overdue.set(
        all.values()
            .map(|n| n.overdue(now_ms).count())
            .sum::<usize>() as i64,
    );
    let mean = |xs: Vec<i64>| {
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<i64>() as f64 / xs.len() as f64 / 1000.0
        }
    };
    m.mean_time_to_acknowledge.set(mean(
        all.values()
            .filter_map(|n| n.acknowledged.as_ref().map(|a| a.0 - n.opened_ms))
            .collect(),
    ));
    m.mean_time_to_effective.set(mean(
        all.values()
            .filter_map(|n| n.effective_ms.map(|e| e - n.opened_ms))
            .collect(),
    ));
}
