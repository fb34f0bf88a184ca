//! Alert delivery: Alertmanager (API v2) and webhooks (Alertmanager's webhook payload).
//!
//! The evaluator calls [`Notifier::observe`] after each committed cycle. It decides what is due,
//! following Prometheus's notifier: a firing alert is (re-)sent every `resend_interval` with
//! `startsAt` = when it began firing and `endsAt` = a lease of four times the longer of the
//! resend and evaluation intervals, so Alertmanager resolves it by itself if the collector
//! dies; a resolved alert is sent with `endsAt` = the resolve time and re-sent every
//! `resend_interval` for `resolved_hold`, so a receiver that was down still learns of it.
//!
//! `observe` only enqueues, never waits: each receiver URL has its own bounded queue and task,
//! so a slow or dead receiver delays nobody but itself. Attempts retry with capped exponential
//! backoff and full jitter (`aims_runtime::retry`, as the agent retries); every attempt's
//! outcome is counted in `aims_notifications_total`, logged, and recorded as evidence.
//!
//! Corrective actions past their due date (Clause 10.2) are alerts of their own,
//! `AIMSCorrectiveActionOverdue`, one per action, sent by [`Notifier::observe_overdue`] to the
//! receivers of the objective whose nonconformity the action belongs to, with the same lease,
//! re-send and resolution rules: `startsAt` is the due date, so every re-send (and a restart)
//! is the same alert to Alertmanager, and it resolves once the action is done or its
//! nonconformity closes.

pub mod payload;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aims_core::evidence::payload::{Notification, Payload};
use aims_core::lifecycle::State;
use aims_core::nonconformity::{Nonconformity, Status as NcStatus};
use aims_core::objective::{ObjectiveError, ObjectivesFile};
use aims_runtime::retry::Backoff;
use parking_lot::Mutex;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::config::notify::{Notify, Receiver, ReceiverKind};
use crate::evidence::Entry;
use crate::metrics::Metrics;
use crate::services::reload::ReloadError;
use crate::state::{App, ObjectiveStatus};
use payload::Alert;

/// A receiver that cannot be set up.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// Its token file cannot be read.
    #[error("notify.receivers {receiver:?}: token_file {path}: {source}")]
    TokenFile {
        /// The receiver.
        receiver: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client cannot be built.
    #[error("notify: HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Every outcome an attempt (or a full queue) can have: the `outcome` label's values.
pub const OUTCOMES: [&str; 5] = ["delivered", "failed", "abandoned", "rejected", "dropped"];

/// One POST to one receiver URL.
#[derive(Debug, Clone)]
pub struct Job {
    /// The JSON body.
    body: Value,
    /// Objectives whose alerts it carries, whether each is firing or resolved, and the
    /// alert's name when it is not the breach alert.
    alerts: Vec<(String, &'static str, Option<String>)>,
}

/// One receiver URL and its queue's consuming end (no `Debug`: it holds the token).
pub struct Target {
    receiver: String,
    kind: ReceiverKind,
    url: String,
    token: Option<String>,
    queue: mpsc::Receiver<Job>,
}

/// What is remembered of an alert between cycles: the notifier's delivery state. It is kept in
/// the store too ([`Notifier::snapshot`], [`Notifier::restore`]), so a replica taking over, or
/// a collector restarting, still sends a resolution that happens around the change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Tracked {
    alert: Alert,
    receivers: Vec<String>,
    resolved_at_ms: Option<i64>,
    last_sent_ms: i64,
}

/// Decides which alerts are due and enqueues them; shared with the evaluator.
#[derive(Debug)]
pub struct Notifier {
    external_url: String,
    lease_ms: i64,
    resend_ms: i64,
    hold_ms: i64,
    queues: HashMap<String, (ReceiverKind, Vec<mpsc::Sender<Job>>)>,
    tracked: Mutex<HashMap<String, Tracked>>,
    /// Overdue-action alerts, by (nonconformity, action).
    overdue: Mutex<HashMap<(u64, u32), Tracked>>,
    /// The delivery state as last stored, so an unchanged state is not written again.
    saved: Mutex<Option<Vec<(String, String)>>>,
    metrics: Metrics,
}

impl Notifier {
    /// Builds the notifier and the targets its delivery tasks consume; see [`spawn`].
    pub fn new(
        config: &crate::config::Config,
        metrics: Metrics,
    ) -> Result<(Self, Vec<Target>), NotifyError> {
        let settings = &config.notify;
        let mut queues = HashMap::new();
        let mut targets = Vec::new();
        for r in &settings.receivers {
            let token = token(r)?;
            let mut senders = Vec::new();
            for url in r.endpoints() {
                let (tx, rx) = mpsc::channel(settings.queue);
                senders.push(tx);
                targets.push(Target {
                    receiver: r.name.clone(),
                    kind: r.kind,
                    url,
                    token: token.clone(),
                    queue: rx,
                });
            }
            queues.insert(r.name.clone(), (r.kind, senders));
            // Every series exists from the start, so rates and absence alerts work at once.
            for outcome in OUTCOMES {
                metrics
                    .notifications
                    .with_label_values(&[r.name.as_str(), outcome])
                    .inc_by(0);
            }
        }
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let lease = settings.resend_interval.max(config.evaluation.interval) * 4;
        Ok((
            Self {
                external_url: settings.external_url(&config.server),
                lease_ms: ms(lease),
                resend_ms: ms(settings.resend_interval),
                hold_ms: ms(config.evaluation.resolved_hold),
                queues,
                tracked: Mutex::new(HashMap::new()),
                overdue: Mutex::new(HashMap::new()),
                saved: Mutex::new(None),
                metrics,
            },
            targets,
        ))
    }

    /// Looks at the statuses committed by an evaluation cycle at `now_ms` and enqueues the
    /// alerts that are due. Never blocks: a full queue drops the notification and counts it.
    pub fn observe(
        &self,
        objectives: &ObjectivesFile,
        status: &HashMap<String, ObjectiveStatus>,
        now_ms: i64,
    ) {
        let mut due: Vec<(Vec<String>, Alert)> = Vec::new();
        {
            let mut tracked = self.tracked.lock();
            for o in objectives
                .objectives
                .iter()
                .filter(|o| !o.notify.is_empty())
            {
                let Some(s) = status.get(&o.id) else { continue };
                let firing = s.lifecycle.state == State::Firing;
                if firing {
                    let alert = Alert {
                        labels: payload::labels(o),
                        annotations: payload::annotations(o, s.last_value.as_ref()),
                        starts_at_ms: s.lifecycle.since_ms,
                        ends_at_ms: now_ms.saturating_add(self.lease_ms),
                        generator_url: payload::generator_url(&self.external_url, &o.id),
                        resolved: false,
                    };
                    match tracked.get_mut(&o.id) {
                        Some(t)
                            if t.resolved_at_ms.is_none()
                                && t.alert.starts_at_ms == alert.starts_at_ms =>
                        {
                            t.alert = alert;
                            t.receivers = o.notify.clone();
                        }
                        _ => {
                            tracked.insert(
                                o.id.clone(),
                                Tracked {
                                    alert,
                                    receivers: o.notify.clone(),
                                    resolved_at_ms: None,
                                    last_sent_ms: i64::MIN,
                                },
                            );
                        }
                    }
                } else if let Some(t) = tracked.get_mut(&o.id) {
                    if t.resolved_at_ms.is_none() {
                        t.refresh(o, s, &self.external_url);
                        let at = if s.lifecycle.state == State::Resolved {
                            s.lifecycle.since_ms
                        } else {
                            now_ms
                        };
                        t.resolve(at);
                    }
                }
            }
            // An objective removed by a reload, or no longer naming receivers, resolves its
            // alert at the receivers that had it, rather than leaving it to fire on.
            for (id, t) in tracked.iter_mut() {
                let still = objectives
                    .objectives
                    .iter()
                    .any(|o| &o.id == id && !o.notify.is_empty() && status.contains_key(id));
                if t.resolved_at_ms.is_none() && !still {
                    t.resolve(now_ms);
                }
            }
            self.take_due(&mut tracked, now_ms, &mut due);
        }
        self.enqueue(due);
    }

    /// Drops resolutions older than `resolved_hold` and takes the alerts due for (re-)sending.
    fn take_due<K>(
        &self,
        tracked: &mut HashMap<K, Tracked>,
        now_ms: i64,
        due: &mut Vec<(Vec<String>, Alert)>,
    ) {
        let hold = self.hold_ms;
        tracked.retain(|_, t| t.resolved_at_ms.is_none_or(|r| now_ms - r <= hold));
        for t in tracked.values_mut() {
            if now_ms.saturating_sub(t.last_sent_ms) >= self.resend_ms {
                t.last_sent_ms = now_ms;
                due.push((t.receivers.clone(), t.alert.clone()));
            }
        }
    }

    /// Looks at the nonconformities at `now_ms` and enqueues the `AIMSCorrectiveActionOverdue`
    /// alerts that are due: one per action past its due date and not done, while its
    /// nonconformity is not closed, to the receivers its objective names. It resolves when the
    /// action is done (at the time it was marked done), when the nonconformity closes, or when
    /// the objective is removed or names no receivers any more.
    pub fn observe_overdue(
        &self,
        objectives: &ObjectivesFile,
        nonconformities: &BTreeMap<u64, Nonconformity>,
        now_ms: i64,
    ) {
        let mut due = Vec::new();
        {
            let mut tracked = self.overdue.lock();
            let mut seen = BTreeSet::new();
            for nc in nonconformities.values() {
                let objective = objectives
                    .objectives
                    .iter()
                    .find(|o| o.id == nc.objective && !o.notify.is_empty());
                for a in &nc.actions {
                    let key = (nc.id, a.id);
                    let overdue = nc.status != NcStatus::Closed && a.is_overdue(now_ms);
                    match objective {
                        Some(o) if overdue => {
                            seen.insert(key);
                            let alert = Alert {
                                labels: payload::overdue_labels(o, nc.id, a.id),
                                annotations: payload::overdue_annotations(o, a),
                                starts_at_ms: a.due_ms,
                                ends_at_ms: now_ms.saturating_add(self.lease_ms),
                                generator_url: payload::nonconformity_url(
                                    &self.external_url,
                                    nc.id,
                                ),
                                resolved: false,
                            };
                            match tracked.get_mut(&key) {
                                Some(t) if t.resolved_at_ms.is_none() => {
                                    t.alert = alert;
                                    t.receivers = o.notify.clone();
                                }
                                Some(_) => {}
                                None => {
                                    tracing::warn!(
                                        nonconformity = nc.id,
                                        action = a.id,
                                        owner = %a.owner,
                                        "corrective action overdue"
                                    );
                                    tracked.insert(
                                        key,
                                        Tracked {
                                            alert,
                                            receivers: o.notify.clone(),
                                            resolved_at_ms: None,
                                            last_sent_ms: i64::MIN,
                                        },
                                    );
                                }
                            }
                        }
                        _ => {
                            if let Some(t) = tracked.get_mut(&key) {
                                if t.resolved_at_ms.is_none() {
                                    let at = a.done.as_ref().map_or(now_ms, |(at, _)| *at);
                                    t.resolve(at.min(now_ms));
                                }
                            }
                        }
                    }
                }
            }
            // A nonconformity or action no longer known resolves its alert too.
            for (key, t) in tracked.iter_mut() {
                if t.resolved_at_ms.is_none() && !seen.contains(key) {
                    t.resolve(now_ms);
                }
            }
            self.take_due(&mut tracked, now_ms, &mut due);
        }
        self.enqueue(due);
    }

    /// The delivery state as (objective, JSON) rows, sorted by objective, if it changed since
    /// the last call to [`Notifier::saved`] (`None`: nothing to store).
    pub fn snapshot(&self) -> Option<Vec<(String, String)>> {
        let mut rows: Vec<(String, String)> = self
            .tracked
            .lock()
            .iter()
            .filter_map(|(id, t)| Some((id.clone(), serde_json::to_string(t).ok()?)))
            .collect();
        rows.sort();
        (self.saved.lock().as_ref() != Some(&rows)).then_some(rows)
    }

    /// Marks `rows` (from [`Notifier::snapshot`]) as stored.
    pub fn saved(&self, rows: Vec<(String, String)>) {
        *self.saved.lock() = Some(rows);
    }

    /// Replaces the delivery state with what the store holds (at takeover and at start): the
    /// alerts another replica, or this one before a restart, had sent. A row that does not
    /// read is logged and skipped; its alert is then sent afresh.
    pub fn restore(&self, rows: Vec<(String, String)>) {
        let mut tracked = HashMap::new();
        for (id, body) in &rows {
            match serde_json::from_str::<Tracked>(body) {
                Ok(t) => {
                    tracked.insert(id.clone(), t);
                }
                Err(e) => {
                    tracing::warn!(objective = id, error = %e, "stored alert state unreadable; skipped")
                }
            }
        }
        *self.tracked.lock() = tracked;
        *self.saved.lock() = Some(rows);
    }

    fn enqueue(&self, due: Vec<(Vec<String>, Alert)>) {
        let mut by_receiver: HashMap<&str, Vec<Alert>> = HashMap::new();
        for (receivers, alert) in &due {
            for r in receivers {
                by_receiver.entry(r).or_default().push(alert.clone());
            }
        }
        for (name, alerts) in by_receiver {
            let Some((kind, senders)) = self.queues.get(name) else {
                tracing::warn!(receiver = name, objectives = ?alerts.iter().map(Alert::objective).collect::<Vec<_>>(),
                    "an objective names a receiver that is not configured in [[notify.receivers]]");
                continue;
            };
            let jobs: Vec<Job> = match kind {
                ReceiverKind::Alertmanager => vec![Job {
                    body: payload::alertmanager(&alerts),
                    alerts: alerts.iter().map(job_alert).collect(),
                }],
                ReceiverKind::Webhook => alerts
                    .iter()
                    .map(|a| Job {
                        body: payload::webhook(name, &self.external_url, std::slice::from_ref(a)),
                        alerts: vec![job_alert(a)],
                    })
                    .collect(),
            };
            for tx in senders {
                for job in &jobs {
                    if tx.try_send(job.clone()).is_err() {
                        self.metrics
                            .notifications
                            .with_label_values(&[name, "dropped"])
                            .inc();
                        tracing::warn!(
                            receiver = name,
                            "notification queue full; notification dropped"
                        );
                    }
                }
            }
        }
    }

    /// Objectives' `notify:` entries naming no configured receiver, as (objective index,
    /// objective id, receiver).
    pub fn unknown_receivers(
        file: &ObjectivesFile,
        notify: &Notify,
    ) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        for (i, o) in file.objectives.iter().enumerate() {
            let named: BTreeSet<&String> = o.notify.iter().collect();
            for r in named {
                if notify.receiver(r).is_none() {
                    out.push((i, o.id.clone(), r.clone()));
                }
            }
        }
        out
    }
}

/// `aims-collector check --config`: every receiver an objective names must be configured.
/// The errors read `file:line: objectives[i] (id).notify: message`, as other check errors do.
pub fn check_receivers(
    path: &Path,
    file: &ObjectivesFile,
    notify: &Notify,
) -> Result<(), ReloadError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let errors: Vec<ObjectiveError> = Notifier::unknown_receivers(file, notify)
        .into_iter()
        .map(|(i, id, receiver)| ObjectiveError {
            line: notify_line(&text, &id),
            location: format!("objectives[{i}] ({id}).notify"),
            message: format!(
                "receiver {receiver:?} is not configured in [[notify.receivers]] ({})",
                if notify.receivers.is_empty() {
                    "none is".to_owned()
                } else {
                    format!(
                        "configured: {}",
                        notify
                            .receivers
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ReloadError::Invalid {
            path: path.display().to_string(),
            errors,
        })
    }
}

/// The 1-based line of the `notify:` key of objective `id` (its `id:` line when not found).
fn notify_line(text: &str, id: &str) -> usize {
    let key = |line: &str| line.trim_start().trim_start_matches("- ").to_owned();
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| {
        key(l)
            .strip_prefix("id:")
            .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
    }) else {
        return 0;
    };
    lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .take_while(|(_, l)| {
            !(l.trim_start().starts_with("- ") && l.len() - l.trim_start().len() <= 2)
        })
        .find(|(_, l)| key(l).starts_with("notify:"))
        .map_or(start + 1, |(i, _)| i + 1)
}

impl Tracked {
    /// Takes the objective's current labels, annotations and receivers (a reload may have
    /// changed them), so the resolution carries the full, current set.
    fn refresh(
        &mut self,
        o: &aims_core::objective::Objective,
        s: &ObjectiveStatus,
        external_url: &str,
    ) {
        self.alert.labels = payload::labels(o);
        self.alert.annotations = payload::annotations(o, s.last_value.as_ref());
        self.alert.generator_url = payload::generator_url(external_url, &o.id);
        self.receivers = o.notify.clone();
    }

    /// Marks the alert resolved at `at_ms` and due at once.
    fn resolve(&mut self, at_ms: i64) {
        self.resolved_at_ms = Some(at_ms);
        self.alert.resolved = true;
        self.alert.ends_at_ms = at_ms;
        self.last_sent_ms = i64::MIN;
    }
}

/// What a job records of one alert it carries.
fn job_alert(a: &Alert) -> (String, &'static str, Option<String>) {
    let name = a
        .labels
        .get("alertname")
        .filter(|n| *n != payload::ALERTNAME);
    (a.objective().to_owned(), a.status(), name.cloned())
}

fn token(r: &Receiver) -> Result<Option<String>, NotifyError> {
    match &r.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|source| NotifyError::TokenFile {
                receiver: r.name.clone(),
                path: path.display().to_string(),
                source,
            }),
        None => Ok(r.token.clone()),
    }
}

/// Starts one delivery task per receiver URL.
pub fn spawn(
    app: Arc<App>,
    targets: Vec<Target>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NotifyError> {
    let client = reqwest::Client::builder()
        .timeout(app.config.notify.timeout)
        .user_agent(concat!("aims-collector/", env!("CARGO_PKG_VERSION")))
        .build()?;
    for t in targets {
        tokio::spawn(deliver(app.clone(), client.clone(), t, shutdown.clone()));
    }
    Ok(())
}

/// How one attempt ended.
enum Attempt {
    Delivered(u16),
    /// Worth retrying: connection error, timeout, 5xx, 429.
    Failed(Option<u16>, String),
    /// Not worth retrying: the receiver rejected the body.
    Rejected(u16, String),
}

async fn attempt(client: &reqwest::Client, t: &Target, body: &Value) -> Attempt {
    let mut req = client.post(&t.url).json(body);
    if let Some(token) = &t.token {
        req = req.bearer_auth(token);
    }
    match req.send().await {
        Err(e) => Attempt::Failed(None, e.to_string()),
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                Attempt::Delivered(status.as_u16())
            } else {
                let text: String = resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                    Attempt::Failed(Some(status.as_u16()), text)
                } else {
                    Attempt::Rejected(status.as_u16(), text)
                }
            }
        }
    }
}

async fn deliver(
    app: Arc<App>,
    client: reqwest::Client,
    mut t: Target,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = &app.config.notify;
    loop {
        let job = tokio::select! {
            job = t.queue.recv() => match job { Some(j) => j, None => return },
            _ = shutdown.changed() => return,
        };
        let mut backoff = Backoff::new(settings.backoff_initial, settings.backoff_max);
        for n in 1..=settings.max_attempts {
            let result = attempt(&client, &t, &job.body).await;
            let (outcome, http_status, error) = match &result {
                Attempt::Delivered(s) => ("delivered", Some(*s), None),
                Attempt::Failed(s, e) if n < settings.max_attempts => {
                    ("failed", *s, Some(e.clone()))
                }
                Attempt::Failed(s, e) => ("abandoned", *s, Some(e.clone())),
                Attempt::Rejected(s, e) => ("rejected", Some(*s), Some(e.clone())),
            };
            record(&app, &t, &job, n, outcome, http_status, error.as_deref()).await;
            if !matches!(result, Attempt::Failed(..)) || n == settings.max_attempts {
                break;
            }
            let wait = backoff.next_delay(&mut rand::thread_rng());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn record(
    app: &App,
    t: &Target,
    job: &Job,
    attempt: u32,
    outcome: &str,
    http_status: Option<u16>,
    error: Option<&str>,
) {
    app.metrics
        .notifications
        .with_label_values(&[&t.receiver, outcome])
        .inc();
    let objectives: Vec<&str> = job.alerts.iter().map(|(o, _, _)| o.as_str()).collect();
    if outcome == "delivered" {
        tracing::info!(receiver = %t.receiver, url = %t.url, attempt, ?objectives, "notification delivered");
    } else {
        tracing::warn!(receiver = %t.receiver, url = %t.url, attempt, outcome, ?http_status, error, ?objectives, "notification not delivered");
    }
    let entries = job
        .alerts
        .iter()
        .map(|(objective, status, alertname)| {
            Entry::objective(
                objective,
                Payload::Notification(Notification {
                    objective: objective.clone(),
                    receiver: t.receiver.clone(),
                    kind: t.kind.as_str().to_owned(),
                    url: t.url.clone(),
                    alert_status: status.to_string(),
                    attempt,
                    outcome: outcome.to_owned(),
                    http_status,
                    error: error.map(str::to_owned),
                    alertname: alertname.clone(),
                }),
            )
        })
        .collect();
    if let Err(e) = app.evidence.append(entries, &[], app.now_ms()).await {
        tracing::error!(error = %e, receiver = %t.receiver, "notification evidence not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use aims_core::lifecycle::Lifecycle;

    const OBJECTIVES: &str = "policy: P\nobjectives:\n  - id: parity\n    title: T\n    model: m\n    metric: accuracy\n    target: \">= 0.8\"\n    owner: o\n    notify: [am, hook, nowhere]\n  - id: quiet\n    title: T\n    model: m\n    metric: accuracy\n    target: \">= 0.8\"\n    owner: o\n";

    fn notifier() -> (Notifier, Vec<Target>, ObjectivesFile) {
        let mut config = crate::config::Config::default();
        config.evaluation.interval = Duration::from_secs(30);
        config.evaluation.resolved_hold = Duration::from_secs(300);
        config.notify.resend_interval = Duration::from_secs(60);
        config.notify.queue = 4;
        config.notify.receivers = vec![
            Receiver {
                name: "am".into(),
                kind: ReceiverKind::Alertmanager,
                urls: vec!["http://a:9093".into(), "http://b:9093/".into()],
                url: None,
                token: None,
                token_file: None,
            },
            Receiver {
                name: "hook".into(),
                kind: ReceiverKind::Webhook,
                urls: vec![],
                url: Some("http://h/x".into()),
                token: Some("t".into()),
                token_file: None,
            },
        ];
        config.notify.check().unwrap();
        let (n, targets) = Notifier::new(&config, Metrics::new()).unwrap();
        let file = aims_core::objective::parse(OBJECTIVES, &[]).unwrap();
        (n, targets, file)
    }

    fn status(state: State, since_ms: i64) -> HashMap<String, ObjectiveStatus> {
        let s = ObjectiveStatus {
            version: "v".into(),
            lifecycle: Lifecycle {
                state,
                since_ms,
                active_since_ms: None,
            },
            last_value: Some(aims_core::Measured::Value(0.5)),
            last_verdict: None,
            samples: None,
            evaluated_ms: None,
        };
        ["parity", "quiet"]
            .map(|id| (id.to_owned(), s.clone()))
            .into()
    }

    fn drain(targets: &mut [Target]) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for t in targets.iter_mut() {
            while let Ok(job) = t.queue.try_recv() {
                out.push((t.url.clone(), job.body));
            }
        }
        out
    }

    /// A replica taking over (or a restarted collector) restores the delivery state: it does
    /// not resend a firing alert before it is due, and it sends the resolution that happens
    /// after the change, which a notifier starting empty would never send.
    #[test]
    fn a_successor_restored_from_the_stored_state_sends_the_resolution() {
        let (first, mut first_targets, file) = notifier();
        let t0 = 1_000_000_000;
        first.observe(&file, &status(State::Firing, t0), t0);
        assert_eq!(drain(&mut first_targets).len(), 3);
        let stored = first.snapshot().expect("a changed state to store");
        first.saved(stored.clone());
        assert_eq!(first.snapshot(), None, "unchanged: nothing to store");

        let (empty, mut empty_targets, _) = notifier();
        empty.observe(&file, &status(State::Resolved, t0 + 20_000), t0 + 20_000);
        assert!(
            drain(&mut empty_targets).is_empty(),
            "without the state, the resolution is lost"
        );

        let (next, mut targets, _) = notifier();
        next.restore(stored);
        next.observe(&file, &status(State::Firing, t0), t0 + 10_000);
        assert!(drain(&mut targets).is_empty(), "not due again yet");
        next.observe(&file, &status(State::Resolved, t0 + 20_000), t0 + 20_000);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(sent[2].1["status"], "resolved");
        assert_eq!(
            sent[0].1[0]["startsAt"],
            payload::rfc3339(t0),
            "the same alert"
        );
    }

    #[test]
    fn firing_is_resent_with_a_lease_and_resolution_is_held() {
        let (n, mut targets, file) = notifier();
        assert_eq!(
            targets.iter().map(|t| t.url.as_str()).collect::<Vec<_>>(),
            [
                "http://a:9093/api/v2/alerts",
                "http://b:9093/api/v2/alerts",
                "http://h/x"
            ]
        );
        let t0 = 1_000_000_000;
        n.observe(&file, &status(State::Pending, t0 - 5_000), t0 - 5_000);
        assert!(drain(&mut targets).is_empty(), "pending is not an alert");

        n.observe(&file, &status(State::Firing, t0), t0);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3, "each Alertmanager and the webhook: {sent:?}");
        let am = &sent[0].1[0];
        assert_eq!(am["startsAt"], payload::rfc3339(t0));
        assert_eq!(
            am["endsAt"],
            payload::rfc3339(t0 + 240_000),
            "4 x max(1m, 30s)"
        );
        assert_eq!(sent[2].1["status"], "firing");

        n.observe(&file, &status(State::Firing, t0), t0 + 30_000);
        assert!(
            drain(&mut targets).is_empty(),
            "not due before resend_interval"
        );
        n.observe(&file, &status(State::Firing, t0), t0 + 60_000);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3);
        assert_eq!(
            sent[0].1[0]["startsAt"],
            payload::rfc3339(t0),
            "startsAt stays"
        );
        assert_eq!(sent[0].1[0]["endsAt"], payload::rfc3339(t0 + 300_000));

        let t1 = t0 + 90_000;
        n.observe(&file, &status(State::Resolved, t1), t1);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3, "resolution is sent at once");
        assert_eq!(sent[0].1[0]["endsAt"], payload::rfc3339(t1));
        assert_eq!(sent[2].1["status"], "resolved");
        n.observe(&file, &status(State::Resolved, t1), t1 + 30_000);
        assert!(drain(&mut targets).is_empty());
        n.observe(&file, &status(State::Resolved, t1), t1 + 60_000);
        assert_eq!(drain(&mut targets).len(), 3, "resolution is re-sent");
        n.observe(&file, &status(State::Ok, t1 + 301_000), t1 + 301_000);
        assert!(drain(&mut targets).is_empty(), "not after resolved_hold");

        n.observe(&file, &status(State::Firing, t1 + 400_000), t1 + 400_000);
        let sent = drain(&mut targets);
        assert_eq!(
            sent[0].1[0]["startsAt"],
            payload::rfc3339(t1 + 400_000),
            "a new alert"
        );
    }

    #[test]
    fn an_overdue_action_alerts_once_until_done_or_closed() {
        use aims_core::nonconformity::{Input, Policy};
        let (n, mut targets, file) = notifier();
        let t0 = 1_000_000_000;
        let mut nc = Nonconformity::open(7, "parity", "v", "critical", t0);
        let policy = Policy::default();
        for input in [
            Input::Acknowledge {
                actor: "ana".into(),
                note: String::new(),
            },
            Input::Cause {
                actor: "ana".into(),
                text: "c".into(),
                category: "data".into(),
            },
            Input::PlanAction {
                actor: "ana".into(),
                description: "fix it".into(),
                owner: "bo@example.com".into(),
                due_ms: t0 + 10_000,
                control: "A.6.2.6".into(),
            },
        ] {
            nc.apply(&input, t0, policy).unwrap();
        }
        let all = |nc: &Nonconformity| BTreeMap::from([(nc.id, nc.clone())]);
        n.observe_overdue(&file, &all(&nc), t0 + 10_000);
        assert!(drain(&mut targets).is_empty(), "due, not yet overdue");

        n.observe_overdue(&file, &all(&nc), t0 + 10_001);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3, "each Alertmanager and the webhook: {sent:?}");
        let am = &sent[0].1[0];
        assert_eq!(am["labels"]["alertname"], payload::OVERDUE_ALERTNAME);
        assert_eq!(am["labels"]["nonconformity"], "7");
        assert_eq!(am["labels"]["action"], "1");
        assert_eq!(am["labels"]["objective"], "parity");
        assert_eq!(am["annotations"]["owner"], "bo@example.com");
        assert_eq!(
            am["startsAt"],
            payload::rfc3339(t0 + 10_000),
            "since it was due"
        );
        assert!(am["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with("/v1/nonconformities/7"));
        assert_eq!(sent[2].1["status"], "firing");
        // Breach alerts of the same objective are tracked apart: no objective status here
        // resolves nothing of the overdue alert.
        n.observe(&file, &HashMap::new(), t0 + 20_000);
        n.observe_overdue(&file, &all(&nc), t0 + 20_000);
        assert!(
            drain(&mut targets).is_empty(),
            "once: not again before resend_interval"
        );
        n.observe_overdue(&file, &all(&nc), t0 + 70_001);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3, "re-sent as the same alert");
        assert_eq!(sent[0].1[0]["startsAt"], payload::rfc3339(t0 + 10_000));

        // Marked done: resolved at once, at the time it was done.
        nc.apply(
            &Input::CompleteAction {
                actor: "bo".into(),
                action: 1,
            },
            t0 + 80_000,
            policy,
        )
        .unwrap();
        n.observe_overdue(&file, &all(&nc), t0 + 80_050);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].1[0]["endsAt"], payload::rfc3339(t0 + 80_000));
        assert_eq!(sent[2].1["status"], "resolved");
        n.observe_overdue(&file, &all(&nc), t0 + 500_000);
        n.observe_overdue(&file, &all(&nc), t0 + 700_000);
        assert!(
            drain(&mut targets).is_empty(),
            "past resolved_hold, a done action stays quiet"
        );

        // Closed with the action still open: resolved too.
        let mut other = nc.clone();
        other.id = 9;
        other.actions[0].done = None;
        n.observe_overdue(&file, &all(&other), t0 + 710_000);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].1["status"], "firing");
        other.status = NcStatus::Closed;
        n.observe_overdue(&file, &all(&other), t0 + 720_000);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].1["status"], "resolved");
        assert_eq!(sent[0].1[0]["endsAt"], payload::rfc3339(t0 + 720_000));

        // An objective without receivers raises nothing.
        let mut quiet = nc.clone();
        quiet.objective = "quiet".into();
        quiet.id = 8;
        quiet.actions[0].done = None;
        n.observe_overdue(&file, &all(&quiet), t0 + 800_000);
        let sent = drain(&mut targets);
        assert!(
            sent.iter()
                .all(|(_, b)| b[0]["labels"]["nonconformity"] == "9"
                    || b["alerts"][0]["labels"]["nonconformity"] == "9"),
            "only the held resolution of 9 is re-sent: {sent:?}"
        );
    }

    #[test]
    fn an_objective_removed_by_a_reload_resolves_its_alert() {
        let (n, mut targets, file) = notifier();
        let t0 = 1_000_000_000;
        n.observe(&file, &status(State::Firing, t0), t0);
        assert_eq!(drain(&mut targets).len(), 3);
        let mut reloaded = file.clone();
        reloaded.objectives.retain(|o| o.id != "parity");
        n.observe(&reloaded, &status(State::Firing, t0), t0 + 1_000);
        let sent = drain(&mut targets);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].1["status"], "resolved");
        assert_eq!(sent[0].1[0]["endsAt"], payload::rfc3339(t0 + 1_000));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (n, mut targets, file) = notifier();
        let t0 = 1_000_000_000;
        for i in 0..10 {
            n.observe(&file, &status(State::Firing, t0), t0 + i * 60_000);
        }
        assert_eq!(drain(&mut targets).len(), 3 * 4, "queues hold 4 each");
        let dropped = n
            .metrics
            .notifications
            .with_label_values(&["am", "dropped"])
            .get();
        assert_eq!(dropped, 2 * 6);
        let page = String::from_utf8(n.metrics.render().1).unwrap();
        for outcome in OUTCOMES {
            let series =
                format!("aims_notifications_total{{outcome=\"{outcome}\",receiver=\"hook\"}}");
            assert!(page.contains(&series), "{series} exported from the start");
        }
    }

    #[test]
    fn unknown_receivers_are_named() {
        let (_, _, file) = notifier();
        let unknown = Notifier::unknown_receivers(&file, &crate::config::Config::default().notify);
        assert_eq!(unknown.len(), 3);
        let mut notify = crate::config::Config::default().notify;
        notify.receivers = notifier_receivers();
        assert_eq!(
            Notifier::unknown_receivers(&file, &notify),
            [(0, "parity".to_owned(), "nowhere".to_owned())]
        );
    }

    fn notifier_receivers() -> Vec<Receiver> {
        ["am", "hook"]
            .map(|name| Receiver {
                name: name.into(),
                kind: ReceiverKind::Webhook,
                urls: vec![],
                url: Some("http://h".into()),
                token: None,
                token_file: None,
            })
            .into()
    }

    #[test]
    fn receivers_are_checked() {
        let mut notify = crate::config::Config::default().notify;
        notify.receivers = notifier_receivers();
        assert!(notify.check().is_ok());
        notify.receivers[1].name = "am".into();
        assert!(notify.check().unwrap_err().1.contains("duplicate"));
        notify.receivers = notifier_receivers();
        notify.receivers[0].kind = ReceiverKind::Alertmanager;
        assert!(notify.check().unwrap_err().1.contains("urls"));
        notify.receivers = notifier_receivers();
        notify.receivers[0].url = Some("ftp://x".into());
        assert!(notify.check().unwrap_err().1.contains("http"));
    }

    #[test]
    fn the_example_config_documents_the_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/collector.toml");
        let c = crate::config::Config::load(Some(&path)).unwrap();
        let d = Notify::default();
        assert_eq!(c.notify.resend_interval, d.resend_interval);
        assert_eq!(c.notify.queue, d.queue);
        assert_eq!(c.notify.max_attempts, d.max_attempts);
        assert_eq!(c.notify.backoff_initial, d.backoff_initial);
        assert_eq!(c.notify.backoff_max, d.backoff_max);
        assert_eq!(c.notify.timeout, d.timeout);
        assert!(c.notify.receivers.is_empty());
    }

    #[test]
    fn notify_line_finds_the_objectives_notify_key() {
        let text = "policy: p\nobjectives:\n  - id: a\n    notify: [x]\n  - id: b\n    title: t\n    notify:\n      - y\n  - id: c\n";
        assert_eq!(notify_line(text, "a"), 4);
        assert_eq!(notify_line(text, "b"), 7);
        assert_eq!(notify_line(text, "c"), 9);
        assert_eq!(notify_line(text, "zz"), 0);
    }
}
