//! The report's "Nonconformities and corrective actions (Clause 10.2)" section and the counts
//! by status among the management-review inputs (Clause 9.3).
//!
//! Built from the `nonconformity` evidence records alone, as every figure of the report is:
//! each accepted step of a nonconformity is one record, so folding the records up to the
//! period's end gives each one's timeline, cause, actions and verdict, and names the records
//! behind every line. The live state is never read, so a past period reads the same later.

use std::collections::BTreeMap;

use aims_core::evidence::payload::NonconformityStep;
use aims_core::nonconformity::{Input, Status};
use serde::{Deserialize, Serialize};

use super::text::rfc3339;

/// One step of a nonconformity's timeline, with the evidence record that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLine {
    /// When (RFC 3339).
    pub at: String,
    /// What was accepted (`fired`, `acknowledge`, `cause`, `plan_action`, `complete_action`,
    /// `evaluated`, `close`).
    pub input: String,
    /// Who, for steps people took.
    pub actor: Option<String>,
    /// Status left.
    pub from: String,
    /// Status entered.
    pub to: String,
    /// Its evidence record's sequence number.
    pub record: u64,
    /// The note or text given with it, if any.
    pub detail: String,
}

/// One corrective action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionLine {
    /// Its id within the nonconformity, from 1.
    pub id: u32,
    /// What will be done.
    pub description: String,
    /// Who does it.
    pub owner: String,
    /// When it is due (RFC 3339).
    pub due: String,
    /// The Annex A control it addresses.
    pub control: String,
    /// Who planned it.
    pub planned_by: String,
    /// When it was marked done, and by whom.
    pub done: Option<(String, String)>,
    /// Whether it was past due and not done at the period's end.
    pub overdue_at_end: bool,
}

/// One nonconformity as of the period's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonconformityLine {
    /// Its id.
    pub id: u64,
    /// The objective that breached.
    pub objective: String,
    /// The objective's version when it opened.
    pub version: String,
    /// Severity.
    pub severity: String,
    /// When it opened (RFC 3339).
    pub opened: String,
    /// Its status at the period's end.
    pub status_at_end: String,
    /// Root cause: text and category.
    pub cause: Option<(String, String)>,
    /// Corrective actions.
    pub actions: Vec<ActionLine>,
    /// The effectiveness verdict: `effective`, `ineffective (reopened)`, `verifying` or
    /// `not verified yet`.
    pub verdict: String,
    /// How many verifications ended ineffective.
    pub ineffective_verifications: u32,
    /// Every step up to the period's end.
    pub timeline: Vec<StepLine>,
}

/// The section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorrectiveSection {
    /// Nonconformities with a step in the period, or still not closed at its start.
    pub nonconformities: Vec<NonconformityLine>,
    /// How the verdict is reached.
    pub rule: String,
}

/// The rule the verdict follows, printed with the section.
pub const RULE: &str = "A nonconformity opens when an objective's breach fires. Once every corrective action is done it is verified by measurement: effective after the configured number of consecutive evaluations meeting the target (or an uninterrupted period), ineffective and reopened if the objective breaches first. Only an effective nonconformity can be closed. Every step below is the evidence record named beside it.";

/// Folds the nonconformity records (`(sequence, step)`, in log order, up to the period's end)
/// into the section for `[from_ms, to_ms]`; `objectives` are those in the report's scope.
/// `to_ms` is the period's end or now, whichever is earlier: actions are judged overdue
/// against it, never against a future.
pub fn section(
    steps: &[(u64, NonconformityStep)],
    from_ms: i64,
    to_ms: i64,
    objectives: &[String],
) -> CorrectiveSection {
    let mut by_id: BTreeMap<u64, NonconformityLine> = BTreeMap::new();
    let mut touched: BTreeMap<u64, bool> = BTreeMap::new();
    for (seq, s) in steps {
        if s.at_ms > to_ms || !objectives.contains(&s.objective) {
            continue;
        }
        let nc = by_id
            .entry(s.nonconformity)
            .or_insert_with(|| NonconformityLine {
                id: s.nonconformity,
                objective: s.objective.clone(),
                version: s.version.clone(),
                severity: s.severity.clone(),
                opened: rfc3339(s.at_ms),
                status_at_end: s.to.as_str().to_owned(),
                cause: None,
                actions: Vec::new(),
                verdict: String::new(),
                ineffective_verifications: 0,
                timeline: Vec::new(),
            });
        *touched.entry(s.nonconformity).or_default() |= s.at_ms >= from_ms;
        let mut detail = String::new();
        match &s.input {
            Input::Acknowledge { note, .. } | Input::Close { note, .. } => detail = note.clone(),
            Input::Cause { text, category, .. } => {
                nc.cause = Some((text.clone(), category.clone()));
                detail = format!("{text} ({category})");
            }
            Input::PlanAction {
                description,
                owner,
                due_ms,
                control,
                actor,
            } => {
                let id = nc.actions.len() as u32 + 1;
                nc.actions.push(ActionLine {
                    id,
                    description: description.clone(),
                    owner: owner.clone(),
                    due: rfc3339(*due_ms),
                    control: control.clone(),
                    planned_by: actor.clone(),
                    done: None,
                    // Cleared when a later record marks it done.
                    overdue_at_end: *due_ms < to_ms,
                });
                detail = format!("action {id}: {description}");
            }
            Input::CompleteAction { action, actor } => {
                if let Some(a) = nc.actions.iter_mut().find(|a| a.id == *action) {
                    a.done = Some((rfc3339(s.at_ms), actor.clone()));
                    a.overdue_at_end = false;
                }
                detail = format!("action {action} done");
            }
            Input::Fired | Input::Evaluated { .. } => {}
        }
        if s.from == Status::Verifying && s.to == Status::Reopened {
            nc.ineffective_verifications += 1;
        }
        nc.status_at_end = s.to.as_str().to_owned();
        nc.timeline.push(StepLine {
            at: rfc3339(s.at_ms),
            input: s.input.name().to_owned(),
            actor: s.actor.clone(),
            from: s.from.as_str().to_owned(),
            to: s.to.as_str().to_owned(),
            record: *seq,
            detail,
        });
    }
    let nonconformities = by_id
        .into_values()
        .filter(|n| touched.get(&n.id).copied().unwrap_or(false) || n.status_at_end != "closed")
        .map(|mut n| {
            if n.status_at_end == "closed" {
                for a in &mut n.actions {
                    a.overdue_at_end = false;
                }
            }
            n.verdict = match n.status_at_end.as_str() {
                "effective" | "closed" => "effective",
                "reopened" => "ineffective (reopened)",
                "verifying" => "verifying",
                _ if n.ineffective_verifications > 0 => "ineffective (reopened)",
                _ => "not verified yet",
            }
            .to_owned();
            n
        })
        .collect();
    CorrectiveSection {
        nonconformities,
        rule: RULE.to_owned(),
    }
}

/// The management-review counts (Clause 9.3): nonconformities of the section by their status
/// at the period's end, every status listed.
pub fn by_status(section: &CorrectiveSection) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for n in &section.nonconformities {
        *out.entry(n.status_at_end.clone()).or_default() += 1;
    }
    out
}

/// The HTML of the management-review counts (for the summary).
pub fn html_counts(counts: &BTreeMap<String, u64>) -> maud::Markup {
    maud::html! {
        h3 id="nonconformity-counts" { "Management review inputs (Clause 9.3): nonconformities by status" }
        table class="nc-counts" {
            tr { @for k in counts.keys() { th { (k) } } }
            tr { @for v in counts.values() { td { (v) } } }
        }
    }
}

fn actor(a: &Option<String>) -> &str {
    a.as_deref().unwrap_or("collector")
}

/// The HTML of the section.
pub fn html(section: &CorrectiveSection) -> maud::Markup {
    maud::html! {
        h2 id="nonconformities" { "10. Nonconformities and corrective actions (Clause 10.2)" }
        p { small { (section.rule) } }
        @if section.nonconformities.is_empty() {
            p { "No nonconformity in the period." }
        }
        @for n in &section.nonconformities {
            section class="nonconformity" id=(format!("nc-{}", n.id)) {
                h3 { "Nonconformity " (n.id) " — " (n.objective) " (" (n.severity) ")" }
                table {
                    tr { th { "Opened" } td { (n.opened) " (objective version " span class="hash" { (n.version) } ")" } }
                    tr { th { "Status at period end" } td { (n.status_at_end) } }
                    tr { th { "Effectiveness" } td class="verdict" { (n.verdict)
                        @if n.ineffective_verifications > 0 { " · " (n.ineffective_verifications) " ineffective verification(s)" } } }
                    tr { th { "Cause" } td { @match &n.cause {
                        Some((text, category)) => { (text) " (" (category) ")" },
                        None => { "not recorded" },
                    } } }
                    tr { th { "Evidence records" } td { (n.timeline.iter().map(|t| format!("#{}", t.record)).collect::<Vec<_>>().join(", ")) } }
                }
                @if !n.actions.is_empty() {
                    table class="actions" {
                        tr { th { "Action" } th { "Description" } th { "Owner" } th { "Due" } th { "Control" } th { "Planned by" } th { "Done" } }
                        @for a in &n.actions {
                            tr {
                                td { (a.id) } td { (a.description) } td { (a.owner) } td { (a.due) @if a.overdue_at_end { " (overdue)" } }
                                td { (a.control) } td { (a.planned_by) }
                                td { @match &a.done { Some((at, by)) => { (at) " by " (by) }, None => { "not done" } } }
                            }
                        }
                    }
                }
                table class="timeline" {
                    tr { th { "When" } th { "Step" } th { "Who" } th { "Status" } th { "Detail" } th { "Record" } }
                    @for t in &n.timeline {
                        tr {
                            td { (t.at) } td { (t.input) } td { (actor(&t.actor)) }
                            td { (t.from) " → " (t.to) } td { (t.detail) } td { "#" (t.record) }
                        }
                    }
                }
            }
        }
    }
}

/// The Markdown of the management-review counts.
pub fn markdown_counts(m: &mut String, counts: &BTreeMap<String, u64>) {
    use std::fmt::Write;
    m.push_str("\nManagement review inputs (Clause 9.3), nonconformities by status:\n\n");
    let _ = writeln!(
        m,
        "| {} |\n|{}\n| {} |",
        counts.keys().cloned().collect::<Vec<_>>().join(" | "),
        "---|".repeat(counts.len()),
        counts
            .values()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

/// The Markdown of the section.
pub fn markdown(m: &mut String, section: &CorrectiveSection) {
    use std::fmt::Write;
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    let _ = writeln!(
        m,
        "\n## 10. Nonconformities and corrective actions (Clause 10.2)\n\n_{}_",
        section.rule
    );
    if section.nonconformities.is_empty() {
        m.push_str("\nNo nonconformity in the period.\n");
    }
    for n in &section.nonconformities {
        let _ = writeln!(
            m,
            "\n### Nonconformity {} — {} ({})\n\n| | |\n|---|---|\n| Opened | {} (objective version `{}`) |\n| Status at period end | {} |\n| Effectiveness | {} |\n| Cause | {} |\n| Evidence records | {} |",
            n.id,
            cell(&n.objective),
            cell(&n.severity),
            n.opened,
            n.version,
            n.status_at_end,
            n.verdict,
            n.cause
                .as_ref()
                .map_or("not recorded".to_owned(), |(t, c)| cell(&format!("{t} ({c})"))),
            n.timeline
                .iter()
                .map(|t| format!("#{}", t.record))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !n.actions.is_empty() {
            m.push_str("\n| Action | Description | Owner | Due | Control | Planned by | Done |\n|---|---|---|---|---|---|---|\n");
            for a in &n.actions {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {}{} | {} | {} | {} |",
                    a.id,
                    cell(&a.description),
                    cell(&a.owner),
                    a.due,
                    if a.overdue_at_end { " (overdue)" } else { "" },
                    cell(&a.control),
                    cell(&a.planned_by),
                    a.done
                        .as_ref()
                        .map_or("not done".to_owned(), |(at, by)| format!(
                            "{at} by {}",
                            cell(by)
                        ))
                );
            }
        }
        m.push_str(
            "\n| When | Step | Who | Status | Detail | Record |\n|---|---|---|---|---|---|\n",
        );
        for t in &n.timeline {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} → {} | {} | #{} |",
                t.at,
                t.input,
                cell(actor(&t.actor)),
                t.from,
                t.to,
                cell(&t.detail),
                t.record
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aims_core::nonconformity::Outcome;

    fn step(id: u64, at_ms: i64, from: Status, to: Status, input: Input) -> NonconformityStep {
        NonconformityStep {
            nonconformity: id,
            objective: "parity".into(),
            version: "v1".into(),
            severity: "critical".into(),
            from,
            to,
            at_ms,
            actor: input.is_human().then(|| "ana".to_owned()),
            input,
        }
    }

    #[test]
    fn the_section_follows_the_records() {
        use Status::*;
        let plan = |due_ms| Input::PlanAction {
            actor: "ana".into(),
            description: "fix".into(),
            owner: "bo".into(),
            due_ms,
            control: "A.6.2.6".into(),
        };
        let steps = vec![
            // 1: opened before the period, effective and closed in it.
            (10, step(1, 100, Open, Open, Input::Fired)),
            (
                11,
                step(
                    1,
                    200,
                    Open,
                    Acknowledged,
                    Input::Acknowledge {
                        actor: "ana".into(),
                        note: "on it".into(),
                    },
                ),
            ),
            (
                12,
                step(
                    1,
                    300,
                    Acknowledged,
                    CauseFound,
                    Input::Cause {
                        actor: "ana".into(),
                        text: "unit change".into(),
                        category: "data".into(),
                    },
                ),
            ),
            (13, step(1, 400, CauseFound, ActionPlanned, plan(5_000))),
            (
                20,
                step(
                    1,
                    1_100,
                    ActionPlanned,
                    Verifying,
                    Input::CompleteAction {
                        actor: "bo".into(),
                        action: 1,
                    },
                ),
            ),
            (
                21,
                step(
                    1,
                    1_200,
                    Verifying,
                    Effective,
                    Input::Evaluated {
                        outcome: Outcome::Met,
                    },
                ),
            ),
            // 2: opened in the period, its action overdue, verified ineffective once.
            (22, step(2, 1_300, Open, Open, Input::Fired)),
            (
                23,
                step(
                    2,
                    1_400,
                    Open,
                    Acknowledged,
                    Input::Acknowledge {
                        actor: "ana".into(),
                        note: String::new(),
                    },
                ),
            ),
            (
                24,
                step(
                    2,
                    1_500,
                    Acknowledged,
                    CauseFound,
                    Input::Cause {
                        actor: "ana".into(),
                        text: "t".into(),
                        category: "model".into(),
                    },
                ),
            ),
            (25, step(2, 1_600, CauseFound, ActionPlanned, plan(1_700))),
            // 3: closed before the period: left out. 4: another objective: left out.
            (
                5,
                step(
                    3,
                    50,
                    Effective,
                    Closed,
                    Input::Close {
                        actor: "ana".into(),
                        note: String::new(),
                    },
                ),
            ),
            (
                26,
                NonconformityStep {
                    objective: "other".into(),
                    ..step(4, 1_300, Open, Open, Input::Fired)
                },
            ),
            // After the period: not seen.
            (
                30,
                step(
                    2,
                    9_000,
                    ActionPlanned,
                    Verifying,
                    Input::CompleteAction {
                        actor: "bo".into(),
                        action: 1,
                    },
                ),
            ),
        ];
        let s = section(&steps, 1_000, 2_000, &["parity".to_owned()]);
        let ids: Vec<u64> = s.nonconformities.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2]);
        let one = &s.nonconformities[0];
        assert_eq!(one.status_at_end, "effective");
        assert_eq!(one.verdict, "effective");
        assert_eq!(one.cause, Some(("unit change".into(), "data".into())));
        assert_eq!(
            one.timeline.len(),
            6,
            "the whole history, from before the period"
        );
        assert_eq!(
            one.timeline.iter().map(|t| t.record).collect::<Vec<_>>(),
            [10, 11, 12, 13, 20, 21]
        );
        assert_eq!(one.actions[0].done.as_ref().unwrap().1, "bo");
        assert!(!one.actions[0].overdue_at_end);
        let two = &s.nonconformities[1];
        assert_eq!(two.status_at_end, "action_planned");
        assert_eq!(two.verdict, "not verified yet");
        assert!(two.actions[0].overdue_at_end, "due 1700, not done by 2000");
        let counts = by_status(&s);
        assert_eq!(counts["effective"], 1);
        assert_eq!(counts["action_planned"], 1);
        assert_eq!(counts["closed"], 0);
        assert_eq!(counts.len(), Status::ALL.len());
    }
}
