//! The Clause 9 performance-evaluation report.
//!
//! [`build`] reads the evidence log (and, for the fairness, drift and data-quality analysis, the
//! stored summaries of the period) into one [`Report`] value. That value is the single source:
//! the JSON output is its serialisation, and the HTML and Markdown renderers only format it, so
//! the three formats can never disagree. Every figure is derived from recorded evidence, never
//! from the live state, so a report of a past period reads the same tomorrow.

pub mod analysis;
pub mod corrective;
pub mod html;
pub mod markdown;
pub mod model;
mod period;
pub mod scan;
pub mod snapshot;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};

use aims_core::time::{self, Bound};
use serde::Deserialize;

use crate::store::Store;
use analysis::{analyse, method_notes, selector_text, summarise};
pub use model::*;
use period::Scanned;
use scan::finish_intervals;
pub use scan::period_records;
pub use text::{num, rfc3339};

/// An output format; all three render the same [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One self-contained HTML file.
    Html,
    /// Markdown.
    Md,
    /// JSON, for other tools.
    Json,
}

impl Format {
    /// Renders `report` in this format.
    pub fn render(self, report: &Report) -> String {
        match self {
            Format::Html => html::render(report),
            Format::Md => markdown::render(report),
            Format::Json => {
                serde_json::to_string_pretty(report).expect("plain data serialises") + "\n"
            }
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Md => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// Parses a period bound by the one rule of [`aims_core::time::parse_time`]: milliseconds,
/// RFC 3339, or a bare date (`YYYY-MM-DD`, UTC), which as the end of a period means the end of
/// that day, as a reader expects.
pub fn parse_time(field: &'static str, text: &str, end: bool) -> Result<i64, ReportError> {
    let bound = if end { Bound::End } else { Bound::Start };
    time::parse_time(text, bound).map_err(|_| ReportError::Time {
        field,
        text: text.trim().to_owned(),
    })
}

/// Builds the report for `req` from the store.
pub async fn build(store: &Store, req: &Request) -> Result<Report, ReportError> {
    if req.from_ms >= req.to_ms {
        return Err(ReportError::Period);
    }
    let in_scope = |model: &str| req.model.as_deref().is_none_or(|m| m == model);
    let Scanned {
        tracks,
        policy,
        versions_seen,
        mut gaps,
        version_changes,
        chain_start,
        chain_end,
        records,
        nonconformity_steps,
        snapshot,
    } = period::scan(store, req, &in_scope).await?;

    let cadence = req.interval.as_secs_f64();
    let period_end = req.to_ms.min(req.now_ms);
    let mut sections = Vec::new();
    let mut plan = Vec::new();
    let mut completeness = Completeness::default();
    let mut controls: BTreeMap<String, ControlLine> = BTreeMap::new();
    for (id, mut t) in tracks {
        let Some(o) = t.definition.clone() else {
            continue;
        };
        let live_from = t.first_in_force_ms.unwrap_or(req.from_ms).max(req.from_ms);
        let live_to = t.removed_ms.unwrap_or(period_end).min(period_end);
        if !in_scope(&o.model) || live_to < req.from_ms || t.first_in_force_ms.is_none() {
            continue;
        }
        // A breach or alert still open is measured to the period's end or to now, whichever
        // comes first: never into the future.
        finish_intervals(&mut t.breaches, req.from_ms, period_end);
        finish_intervals(&mut t.alerts, req.from_ms, period_end);
        let times: Vec<i64> = t.series.iter().map(|p| p.at_ms).collect();
        let (scheduled, completed) = slots(&times, live_from, live_to, req.interval);
        completeness.scheduled += scheduled;
        completeness.completed += completed;
        completeness.insufficient_data += t.counts.insufficient_data;
        completeness.no_data += t.counts.no_data;
        let fired = !t.alerts.is_empty();
        let judged = t.counts.met + t.counts.at_risk + t.counts.breached;
        let judgement = if fired {
            "not_met"
        } else if judged == 0 {
            "not_measurable"
        } else if t.counts.breached + t.counts.at_risk > 0 {
            "at_risk"
        } else {
            "met"
        };
        plan.push(PlanLine {
            objective: id.clone(),
            metric: o.metric.clone(),
            method: format!(
                "{}{} over a {} window merged from agent summaries; at least {} samples; breach must last {} to fire",
                o.metric,
                match selector_text(&o) {
                    s if s.is_empty() => String::new(),
                    s => format!(" ({s})"),
                },
                humantime::format_duration(o.window),
                o.min_samples,
                humantime::format_duration(o.for_),
            ),
            window_seconds: o.window.as_secs(),
            cadence_seconds: cadence,
            owner: o.owner.clone(),
        });
        for c in &o.controls {
            let line = controls.entry(c.clone()).or_insert_with(|| ControlLine {
                control: c.clone(),
                objectives: Vec::new(),
                evaluations: 0,
                records: Vec::new(),
            });
            line.objectives.push(id.clone());
            line.evaluations += t.counts.total;
            if let Some((a, b)) = t.records {
                line.records
                    .push(format!("{id}: evaluation records {a}..{b}"));
            }
        }
        sections.push(ObjectiveSection {
            title: o.title.clone(),
            model: o.model.clone(),
            metric: o.metric.clone(),
            selector: selector_text(&o),
            target: o.target.to_string(),
            warning: o.warning.map(|w| w.to_string()),
            target_threshold: o.target.threshold,
            severity: o.severity.as_str().to_owned(),
            owner: o.owner.clone(),
            rationale: o.rationale.clone(),
            plan: o.plan.clone(),
            controls: o.controls.clone(),
            versions: t.versions,
            compliance_share: t.counts.compliance_share(),
            evaluations: t.counts,
            values: Stats::of(&t.values),
            state_at_end: if t.state.is_empty() {
                "unknown".to_owned()
            } else {
                t.state
            },
            judgement: judgement.to_owned(),
            breaches: t.breaches,
            alerts: t.alerts,
            series: t.series,
            records: t.records,
            last_interval: t.last_interval,
            last_samples: t.last_samples,
            id,
        });
    }
    for g in gaps.iter_mut() {
        let end = g.end_ms.unwrap_or(period_end).min(req.to_ms);
        g.duration_seconds = (end - g.start_ms.max(req.from_ms)).max(0) as f64 / 1000.0;
    }
    gaps.retain(|g| g.start_ms <= req.to_ms && g.end_ms.is_none_or(|e| e >= req.from_ms));

    let mut summary = summarise(&sections);
    let scope_ids: Vec<String> = sections.iter().map(|s| s.id.clone()).collect();
    let nonconformities =
        corrective::section(&nonconformity_steps, req.from_ms, period_end, &scope_ids);
    summary.nonconformities = corrective::by_status(&nonconformities);
    let (agents, analysis) = analyse(store, req, &sections).await?;
    let scope_models: BTreeSet<String> = sections.iter().map(|s| s.model.clone()).collect();
    let config_arg = req
        .config_path
        .as_ref()
        .map(|p| format!(" --config {p}"))
        .unwrap_or_default();
    let mut report = Report {
        document: DocumentControl {
            title: "AI management system performance evaluation (ISO/IEC 42001 Clause 9.1)"
                .to_owned(),
            period_from: rfc3339(req.from_ms),
            period_to: rfc3339(req.to_ms),
            from_ms: req.from_ms,
            to_ms: req.to_ms,
            scope_models: scope_models.into_iter().collect(),
            scope_objectives: sections.iter().map(|s| s.id.clone()).collect(),
            policy,
            generated_at: rfc3339(req.now_ms),
            generator: format!("aims-collector {}", env!("CARGO_PKG_VERSION")),
            chain_start,
            chain_end,
            records,
            checkpoint: None,
            snapshot,
            content_hash: String::new(),
        },
        summary,
        coverage: Coverage {
            models: versions_seen
                .into_iter()
                .map(|(m, v)| (m, v.into_iter().collect()))
                .collect(),
            agents,
            gaps,
        },
        plan,
        version_changes,
        objectives: sections,
        completeness,
        analysis,
        method_notes: method_notes(),
        controls: controls.into_values().collect(),
        nonconformities,
        verification: Verification {
            database: format!("aims-collector evidence verify{config_arg}"),
            pack: format!(
                "aims-collector evidence export --from {} --to {}{config_arg} -o pack.tar && aims-collector evidence verify --pack pack.tar",
                rfc3339(req.from_ms),
                rfc3339(req.to_ms)
            ),
            explanation: "Each evidence record stores its canonical JSON and SHA-256(prev_hash || canonical JSON). \
                The commands recompute every hash, check the chain from the start checkpoint to the end checkpoint \
                above, and (for a pack) that this report's content hash matches its content."
                .to_owned(),
        },
    };
    report.document.content_hash = report.compute_hash();
    Ok(report)
}

/// Evaluation slots of one objective: the period it was in force, `[from_ms, to_ms)`, cut into
/// slots of one `interval` each (the last may be partial), and how many of them hold at least one
/// evaluation. Counting slots, not evaluations, keeps `completed <= scheduled` whatever
/// restarts, reloads or a changed cadence add.
pub fn slots(times: &[i64], from_ms: i64, to_ms: i64, interval: std::time::Duration) -> (u64, u64) {
    let step = interval.as_millis().min(i64::MAX as u128) as i64;
    if step <= 0 || to_ms <= from_ms {
        return (0, 0);
    }
    let scheduled = to_ms.saturating_sub(from_ms).saturating_add(step - 1) / step;
    let hit: BTreeSet<i64> = times
        .iter()
        .filter(|t| (from_ms..to_ms).contains(t))
        .map(|t| (t - from_ms) / step)
        .collect();
    (scheduled as u64, hit.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::scan::breach_intervals;
    use super::*;
    use crate::config::Synchronous;
    use crate::evidence::{Entry, EvidenceLog};
    use aims_core::evidence::payload::{
        Evaluation, GapEdge, IngestionGap, ObjectiveVersion, Payload, Transition, Window,
    };
    use aims_core::lifecycle::State;
    use aims_core::metrics::Measured;
    use aims_core::objective::Objective;
    use serde_json::json;
    use std::time::Duration;

    fn definition(target: &str) -> Objective {
        serde_json::from_value(json!({"id": "parity", "title": "Parity", "model": "m", "metric": "demographic_parity_ratio",
               "attribute": "gender", "target": {"op": ">=", "threshold": target.parse::<f64>().unwrap()},
               "window": 60, "min_samples": 10, "for": 0, "severity": "critical", "owner": "owner@example.com",
               "rationale": "", "plan": {"actions": "a", "resources": "r", "due": "2027", "evaluation": "e"},
               "controls": ["A.6.2.6"], "notify": []}))
        .unwrap()
    }

    fn evaluation(verdict: &str, value: f64, target: &str, version: &str) -> Entry {
        Entry::objective(
            "parity",
            Payload::Evaluation(Evaluation {
                objective: "parity".into(),
                version: version.into(),
                model: "m".into(),
                metric: "demographic_parity_ratio".into(),
                selector: Default::default(),
                value: Some(Measured::Value(value)),
                target: format!(">= {target}"),
                warning: None,
                verdict: verdict.into(),
                samples: Some(100),
                min_samples: 10,
                window: Window {
                    from_ms: 0,
                    to_ms: 0,
                },
                model_versions: Some(vec!["1".into()]),
                profile_hash: None,
                state: State::Ok,
                interval: None,
                reading: None,
                too_small: Default::default(),
                why: None,
            }),
        )
    }

    fn version_entry(v: &str, prev: Option<&str>, target: &str) -> Entry {
        Entry::objective(
            "parity",
            Payload::ObjectiveVersion(ObjectiveVersion {
                objective: "parity".into(),
                version: v.into(),
                previous_version: prev.map(str::to_owned),
                file_version: "f".into(),
                policy: "P".into(),
                definition: definition(target),
            }),
        )
    }

    fn transition_entry(from: State, to: State, at: i64) -> Entry {
        Entry::objective(
            "parity",
            Payload::Transition(Transition {
                objective: "parity".into(),
                version: "v1".into(),
                from,
                to,
                at_ms: at,
                value: None,
                target: ">= 0.8".into(),
                severity: "critical".into(),
            }),
        )
    }

    fn gap_entry(gap: GapEdge) -> Entry {
        Entry::global(Payload::IngestionGap(IngestionGap {
            model: "m".into(),
            gap,
            last_summary_ms: None,
            stale_after_seconds: 1,
        }))
    }

    /// A log with a version, evaluations met / breached / met, a firing alert that resolves,
    /// a gap and a changed version; the report over the part after the first record.
    #[tokio::test]
    async fn the_report_model_follows_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
        let log = EvidenceLog::open(store.clone(), crate::metrics::Metrics::new())
            .await
            .unwrap();
        let (version, transition, gap) = (version_entry, transition_entry, gap_entry);
        let steps: Vec<(i64, Vec<Entry>)> = vec![
            (1_000, vec![version("v1", None, "0.8")]),
            (2_000, vec![evaluation("met", 0.9, "0.8", "v1")]),
            (
                3_000,
                vec![
                    evaluation("breached", 0.5, "0.8", "v1"),
                    transition(State::Ok, State::Firing, 3_000),
                ],
            ),
            (
                4_000,
                vec![
                    evaluation("breached", 0.4, "0.8", "v1"),
                    gap(GapEdge::Started),
                ],
            ),
            (
                5_000,
                vec![
                    evaluation("met", 0.85, "0.8", "v1"),
                    transition(State::Firing, State::Resolved, 5_000),
                ],
            ),
            (
                6_000,
                vec![gap(GapEdge::Ended), version("v2", Some("v1"), "0.7")],
            ),
            (
                7_000,
                vec![evaluation("insufficient_data", 0.75, "0.7", "v2")],
            ),
            (9_000, vec![evaluation("met", 0.95, "0.7", "v2")]),
        ];
        for (at, entries) in steps {
            log.append(entries, &[], at).await.unwrap();
        }
        let req = Request {
            from_ms: 1_500,
            to_ms: 8_000,
            model: None,
            now_ms: 10_000,
            interval: Duration::from_secs(1),
            config_path: None,
        };
        let r = build(&store, &req).await.unwrap();
        assert_eq!(
            r.document.chain_start.seq, 1,
            "the version record anchors the period"
        );
        assert_eq!(
            r.document.chain_end.seq, 11,
            "the record at 9 s is after the period"
        );
        assert_eq!(r.document.records, 10);
        let o = &r.objectives[0];
        assert_eq!(
            (
                o.evaluations.total,
                o.evaluations.met,
                o.evaluations.breached,
                o.evaluations.insufficient_data
            ),
            (5, 2, 2, 1)
        );
        assert_eq!(o.compliance_share, Some(0.5));
        assert_eq!(
            (o.values.min, o.values.max, o.values.last),
            (Some(0.4), Some(0.9), Some(0.75))
        );
        assert_eq!(o.breaches.len(), 1);
        assert_eq!(
            (o.breaches[0].start_ms, o.breaches[0].end_ms),
            (3_000, Some(5_000))
        );
        assert_eq!(o.breaches[0].duration_seconds, 2.0);
        assert_eq!(
            (o.alerts[0].start_ms, o.alerts[0].end_ms),
            (3_000, Some(5_000))
        );
        assert_eq!(o.judgement, "not_met");
        assert_eq!(o.target, ">= 0.7", "the version in force at the end");
        assert_eq!(o.versions, ["v1", "v2"]);
        assert_eq!(
            o.series.iter().map(|p| p.target).collect::<Vec<_>>()[3..],
            [Some(0.8), Some(0.7)]
        );
        assert_eq!(r.version_changes.len(), 1);
        assert_eq!(r.version_changes[0].previous_version.as_deref(), Some("v1"));
        assert_eq!(r.coverage.gaps.len(), 1);
        assert_eq!(r.coverage.gaps[0].duration_seconds, 2.0);
        assert_eq!(r.completeness.completed, 5);
        assert_eq!(
            r.completeness.scheduled, 7,
            "1.5 s to 8 s at one per second: seven slots, the last one half"
        );
        assert_eq!(r.summary.not_met, 1);
        assert_eq!(r.controls[0].evaluations, 5);
        // The content hash survives a round trip through the JSON an auditor receives.
        let back: Report = serde_json::from_str(&Format::Json.render(&r)).unwrap();
        assert_eq!(back.compute_hash(), r.document.content_hash);
        let mut edited = back.clone();
        edited.objectives[0].evaluations.breached = 0;
        assert_ne!(edited.compute_hash(), r.document.content_hash);
        assert!(html::render(&r).contains(&r.document.content_hash));
        assert!(markdown::render(&r).contains(&r.document.content_hash));
        // Text from the evidence is escaped by the template, not by each call site.
        let mut hostile = r.clone();
        hostile.document.policy = "<script>alert(1)</script>".into();
        hostile.objectives[0].title = "a \"quoted\" <b>title</b> & more".into();
        let page = html::render(&hostile);
        assert!(!page.contains("<script>") && !page.contains("<b>title</b>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("a &quot;quoted&quot; &lt;b&gt;title&lt;/b&gt; &amp; more"));
        // Realised beside estimated performance, and the multivariate drift, in both formats
        // from the one model, with the method and its no-concept-drift assumption stated.
        let mut with_cbpe = r.clone();
        with_cbpe.analysis.push(model::Analysis {
            model: "m".into(),
            profile_hash: "p".repeat(64),
            summaries: 3,
            events: 900,
            labelled: 0,
            groups: vec![],
            parity: vec![],
            drift: vec![],
            drifted_share: None,
            quality: vec![],
            rejected_rate: None,
            performance: vec![model::PerformanceLine {
                metric: "accuracy".into(),
                realised: None,
                estimated: Some(0.8125),
                lower: Some(0.78),
                upper: Some(0.845),
            }],
            estimation_method: Some(aims_core::metrics::CBPE_METHOD.to_owned()),
            reconstruction: Some(model::ReconstructionLine {
                value: Some(1.42),
                lower_threshold: 0.9,
                upper_threshold: 1.1,
                alert: true,
            }),
            reconstruction_method: Some(aims_core::metrics::RECONSTRUCTION_METHOD.to_owned()),
        });
        let md = markdown::render(&with_cbpe);
        assert!(
            md.contains("| accuracy | – | 0.8125 | [0.78, 0.845] |"),
            "{md}"
        );
        assert!(md.contains(
            "PCA reconstruction error): 1.42 against thresholds [0.9, 1.1]: outside, drift"
        ));
        let page = html::render(&with_cbpe);
        assert!(
            page.contains("<td>accuracy</td><td>–</td><td>0.8125</td><td>[0.78, 0.845]</td>"),
            "{page}"
        );
        for text in [&md, &page] {
            assert!(
                text.contains("Estimated (CBPE, unlabelled)")
                    && text.contains("assumes no concept")
            );
        }
    }

    /// A period that includes now: a breach and an alert still open end at now, not at the
    /// period's end (issue 22: `open | 18h 22m` for a breach that began minutes earlier).
    #[tokio::test]
    async fn open_breaches_end_at_now_when_the_period_includes_now() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
        let log = EvidenceLog::open(store.clone(), crate::metrics::Metrics::new())
            .await
            .unwrap();
        let version = Entry::objective(
            "parity",
            Payload::ObjectiveVersion(ObjectiveVersion {
                objective: "parity".into(),
                version: "v1".into(),
                previous_version: None,
                file_version: "f".into(),
                policy: "P".into(),
                definition: definition("0.8"),
            }),
        );
        let firing = Entry::objective(
            "parity",
            Payload::Transition(Transition {
                objective: "parity".into(),
                version: "v1".into(),
                from: State::Ok,
                to: State::Firing,
                at_ms: 3_000,
                value: None,
                target: ">= 0.8".into(),
                severity: "critical".into(),
            }),
        );
        log.append(vec![version], &[], 1_000).await.unwrap();
        log.append(
            vec![evaluation("breached", 0.5, "0.8", "v1"), firing],
            &[],
            3_000,
        )
        .await
        .unwrap();
        let req = Request {
            from_ms: 0,
            to_ms: 86_400_000,
            model: None,
            now_ms: 10_000,
            interval: Duration::from_secs(1),
            config_path: None,
        };
        let r = build(&store, &req).await.unwrap();
        let o = &r.objectives[0];
        assert_eq!(
            (o.breaches[0].start_ms, o.breaches[0].end_ms),
            (3_000, None)
        );
        assert_eq!(
            o.breaches[0].duration_seconds, 7.0,
            "open breach measured to now, not to the period end"
        );
        assert_eq!(o.alerts[0].duration_seconds, 7.0);
        // The intervals' evidence column says what its numbers are, the verification commands
        // wrap instead of overflowing the page, and durations are whole seconds.
        let page = html::render(&r);
        assert!(page.contains("<th>Evidence records</th>"), "{page}");
        assert!(page.contains("#2 (start)") && !page.contains("<td>2</td>"));
        assert!(page.contains("pre{white-space:pre-wrap"));
        assert!(page.contains("<td>7s</td>"), "{page}");
        let md = markdown::render(&r);
        assert!(md.contains("| Evidence records |") && md.contains("#2 (start)"));
    }

    /// The defining identity of section 6: completed slots never exceed scheduled ones, even
    /// when restarts and reloads record more evaluations than the cadence (issue 22: `Scheduled
    /// 730 | Completed 735`).
    #[test]
    fn completed_slots_never_exceed_scheduled_ones() {
        let second = Duration::from_secs(1);
        // Two collectors' worth of evaluations (a restart doubling the cadence) in 10 s.
        let times: Vec<i64> = (0..20).map(|i| i * 500).collect();
        assert_eq!(slots(&times, 0, 10_000, second), (10, 10));
        // Evaluations outside the period are not counted; a gap leaves slots empty.
        let times = [-500, 0, 1_000, 5_000, 10_000];
        assert_eq!(slots(&times, 0, 10_000, second), (10, 3));
        assert_eq!(slots(&[], 0, 0, second), (0, 0));
        for n in 0..50_i64 {
            let times: Vec<i64> = (0..n * 3).map(|i| (i * 7_919) % 30_000).collect();
            let (scheduled, completed) = slots(&times, 0, 1_000 * n, second);
            assert!(completed <= scheduled, "{completed} > {scheduled}");
        }
    }

    #[test]
    fn compliance_share_counts_only_judged_evaluations() {
        let mut c = Counts::default();
        for v in [
            "met",
            "met",
            "at_risk",
            "breached",
            "no_data",
            "insufficient_data",
        ] {
            c.add(v);
        }
        assert_eq!(c.total, 6);
        assert_eq!(c.compliance_share(), Some(0.75));
        assert_eq!(Counts::default().compliance_share(), None);
    }

    #[test]
    fn breach_intervals_run_from_first_breach_to_next_other_verdict() {
        let evals = [
            (1_000, 1, "met"),
            (2_000, 2, "breached"),
            (3_000, 3, "breached"),
            (4_000, 4, "met"),
            (5_000, 5, "breached"),
        ];
        let mut b = breach_intervals(&evals);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].start_ms, b[0].end_ms), (2_000, Some(4_000)));
        assert_eq!((b[0].start_seq, b[0].end_seq), (2, Some(4)));
        assert_eq!(b[1].end_ms, None);
        finish_intervals(&mut b, 0, 6_000);
        assert_eq!(b[0].duration_seconds, 2.0);
        assert_eq!(
            b[1].duration_seconds, 1.0,
            "an open breach runs to the period's end"
        );
        let mut clipped = breach_intervals(&evals);
        finish_intervals(&mut clipped, 3_000, 4_500);
        assert_eq!(clipped.len(), 1, "breaches outside the period are dropped");
        assert_eq!(clipped[0].duration_seconds, 1.0, "clipped to the period");
    }

    #[test]
    fn stats_and_times() {
        let s = Stats::of(&[2.0, 1.0, 3.0]);
        assert_eq!(
            (s.last, s.min, s.mean, s.max),
            (Some(3.0), Some(1.0), Some(2.0), Some(3.0))
        );
        assert_eq!(
            parse_time("to", "2026-11-29", true).unwrap() % 86_400_000,
            86_399_999
        );
        assert_eq!(parse_time("from", "1000", false).unwrap(), 1000);
        assert!(parse_time("from", "yesterday", false).is_err());
    }

    /// Reports that scale (issue 19): with snapshots of the state at the period's start kept
    /// every few records, a report reads only the records since the nearest snapshot and its
    /// period's, and says exactly what the scan from record 1 says, for periods early, late,
    /// across a version change and with a gap still open.
    #[tokio::test]
    async fn a_report_from_a_snapshot_equals_the_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
        let log = EvidenceLog::open(store.clone(), crate::metrics::Metrics::new())
            .await
            .unwrap();
        let (version, transition, gap) = (version_entry, transition_entry, gap_entry);
        log.append(vec![version("v1", None, "0.8")], &[], 500)
            .await
            .unwrap();
        for i in 1..=40i64 {
            let at = i * 1_000;
            let (v, target) = if i < 20 { ("v1", "0.8") } else { ("v2", "0.7") };
            let breached = (5..9).contains(&i) || (23..27).contains(&i);
            let mut entries = vec![if breached {
                evaluation("breached", 0.5, target, v)
            } else {
                evaluation("met", 0.9, target, v)
            }];
            match i {
                5 | 23 => entries.push(transition(State::Ok, State::Firing, at)),
                9 | 27 => entries.push(transition(State::Firing, State::Resolved, at)),
                12 | 30 => entries.push(gap(GapEdge::Started)),
                15 => entries.push(gap(GapEdge::Ended)),
                20 => entries.push(version("v2", Some("v1"), "0.7")),
                _ => {}
            }
            log.append(entries, &[], at).await.unwrap();
        }
        let periods = [
            (3_500, 8_000),
            (20_500, 30_000),
            (25_500, 39_000),
            (35_000, 45_000),
        ];
        let reports = || async {
            let mut out = Vec::new();
            for (from_ms, to_ms) in periods {
                let req = Request {
                    from_ms,
                    to_ms,
                    model: None,
                    now_ms: 50_000,
                    interval: Duration::from_secs(1),
                    config_path: None,
                };
                out.push(serde_json::to_value(build(&store, &req).await.unwrap()).unwrap());
            }
            out
        };
        let full = reports().await;
        assert!(
            full[2]["objectives"][0]["alerts"].as_array().unwrap().len() == 1,
            "the alert opened at 23 s is in the third period: {}",
            full[2]["objectives"][0]["alerts"]
        );
        let (head, _) = store.evidence_head().await.unwrap().unwrap();
        for upto in (4..=head).step_by(4) {
            // Each snapshot's hash is recorded after every period (at 60 s).
            snapshot::refresh_every(&log, &store, upto, 4, 60_000)
                .await
                .unwrap();
        }
        // The latest snapshot keeps no interval that closed before its records (the two
        // breaches and alerts, the closed gap): no period starting from it could show them,
        // so snapshots do not grow with the log's history (the reports below still equal
        // the full scan's).
        let latest = store
            .report_snapshot_at_or_below(head)
            .await
            .unwrap()
            .unwrap();
        let latest: snapshot::Start = serde_json::from_str(&latest.state).unwrap();
        let track = latest.tracks.values().next().unwrap();
        assert!(latest.horizon_ms >= 35_000, "{}", latest.horizon_ms);
        assert!(
            track.breaches.is_empty() && track.alerts.is_empty(),
            "{track:?}"
        );
        assert!(latest.gaps.iter().all(|g| g.end_ms.is_none()));
        // The fold reads each record's payload straight from its canonical JSON: the same
        // time and payload as through the record's JSON value, for every kind in this log.
        let rows = store.evidence_page(0, 1_000, None).await.unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for row in &rows {
            let record = row.sealed.record().unwrap();
            let read = scan::parse(row).unwrap();
            assert_eq!(read.at_ms, record.at_ms);
            assert_eq!(
                read.payload,
                Some(Payload::of(&record).unwrap()),
                "{}",
                row.sealed.seq
            );
            kinds.insert(row.kind.clone());
        }
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        // A period's start state now folds at most 3 records after the nearest snapshot.
        let (anchor, _) = period_records(&store, 25_500, 39_000).await.unwrap();
        assert!(
            anchor.seq > 20,
            "the period starts well into the log: {anchor:?}"
        );
        let start = snapshot::state_at(&store, anchor.seq).await.unwrap();
        assert_eq!(start.seq, anchor.seq);
        assert!(start.folded < 4, "folded {} records", start.folded);
        let used = start.snapshot.clone().expect("read from a snapshot");
        // The same reports, except that each names the snapshot it started from (and so has
        // another content hash).
        let mut from_snapshots = reports().await;
        for (r, f) in from_snapshots.iter_mut().zip(&full) {
            let doc = r["document"].as_object_mut().unwrap();
            let named = doc.remove("snapshot");
            doc.insert("content_hash".into(), f["document"]["content_hash"].clone());
            if f["document"]["chain_start"]["seq"].as_u64().unwrap() >= 4 {
                assert!(named.is_some(), "{:?}", f["document"]["chain_start"]);
            }
        }
        assert_eq!(from_snapshots, full);

        // The snapshot's hash is an evidence record, in the chain (and so in the signed tree).
        let record = store.evidence_record(used.record).await.unwrap().unwrap();
        assert_eq!(record.kind, "report_snapshot");
        assert!(record.sealed.canonical.contains(&used.sha256));
        assert_eq!(snapshot::verify_all(&store).await.unwrap(), head / 4);
        crate::evidence::verify(&store).await.unwrap();

        // Tamper: the snapshot is edited in the database (its JSON still reads, so folding
        // from it would give a wrong report). The report fails, naming the snapshot, and so
        // does `evidence verify`'s check of the snapshots.
        let kept = store
            .report_snapshot_at_or_below(anchor.seq)
            .await
            .unwrap()
            .unwrap();
        let edited = kept
            .state
            .replace("\"firing\"", "\"ok\"")
            .replace("v2", "v3");
        assert_ne!(edited, kept.state, "the edit changes the snapshot");
        store
            .set_report_snapshot_state(kept.seq, &edited)
            .await
            .unwrap();
        let req = Request {
            from_ms: 25_500,
            to_ms: 39_000,
            model: None,
            now_ms: 50_000,
            interval: Duration::from_secs(1),
            config_path: None,
        };
        let err = build(&store, &req).await.unwrap_err();
        assert!(
            matches!(&err, ReportError::Snapshot { seq, .. } if *seq == kept.seq),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("report snapshot at record {}:", kept.seq))
                && text.contains("edited"),
            "{text}"
        );
        let err = snapshot::verify_all(&store).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!("record {}", kept.seq)),
            "{err}"
        );
        // The chain itself is intact: it is the snapshot that was edited.
        crate::evidence::verify(&store).await.unwrap();
    }
}
