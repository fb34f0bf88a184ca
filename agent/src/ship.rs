//! Delivering spooled summaries to the collector, and exchanging the reference profile with it.
//!
//! Delivery is at-least-once: a summary leaves the spool only after a 2xx. Connect errors,
//! timeouts, 408, 429 and 5xx are retried with capped exponential backoff and full jitter (AWS's
//! "full jitter": a uniform delay between zero and the capped exponential), or after the
//! collector's `Retry-After` (delta-seconds) when it sends one. Any other 4xx will not get better
//! by retrying: the summary moves to the dead-letter folder with the reason. Summary ids are
//! deterministic, so a summary re-sent after a lost acknowledgement is stored once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aims_core::profile::ReferenceProfile;
/// Capped exponential backoff with full jitter (shared with the collector's notifier).
pub use aims_runtime::retry::Backoff;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;

use crate::config::ShipConfig;
use crate::metrics::AgentMetrics;
use crate::spool::Spool;

/// While the collector is unreachable, how often it is probed with `GET /readyz`, so delivery
/// resumes within about this long of its return instead of at the next backoff tick.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Longest `Retry-After` honoured; a larger one is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Something that stops the shipper or the reference exchange.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// `collector_url` is not a URL.
    #[error("ship.collector_url {0:?} is not a valid URL")]
    BadUrl(String),
    /// The CA file cannot be read or parsed.
    #[error("ship.ca_cert {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// A request failed.
    #[error("{0}")]
    Request(String),
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledged.
    Delivered,
    /// Try again, after at least this long when the server said so.
    Retry(Option<Duration>, String),
    /// No answer at all (connection refused, timeout): try again after the backoff, or as soon
    /// as a cheap probe (`GET /readyz`) finds the collector back.
    Unreachable(String),
    /// Never going to work.
    Refused(String),
    /// The collector does not know the summary's reference profile (422 naming the field
    /// `summary.profile_hash`, e.g. after its store was reset): upload it again, then retry.
    UnknownProfile(String),
}

/// `Retry-After` as delta-seconds (HTTP-dates fall back to the backoff).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Classifies a response status.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Verdict {
    let why = || {
        let snippet: String = body.chars().take(300).collect();
        format!("HTTP {status}: {snippet}")
    };
    if status.is_success() {
        Verdict::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Verdict::Retry(retry_after(headers), why())
    } else if status == StatusCode::UNPROCESSABLE_ENTITY && body.contains("summary.profile_hash") {
        Verdict::UnknownProfile(why())
    } else {
        Verdict::Refused(why())
    }
}

/// Builds the HTTP client: rustls, request timeout, optional extra CA.
pub fn client(cfg: &ShipConfig) -> Result<reqwest::Client, ShipError> {
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent(concat!("aims-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &cfg.ca_cert {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|e| ShipError::Ca {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ShipError::Ca {
            path: shown,
            message: e.to_string(),
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(ShipError::Client)
}

/// `{collector_url}/{segments...}`, each segment escaped.
pub fn endpoint(base: &str, segments: &[&str]) -> Result<Url, ShipError> {
    let mut url = Url::parse(base).map_err(|_| ShipError::BadUrl(base.to_owned()))?;
    url.path_segments_mut()
        .map_err(|()| ShipError::BadUrl(base.to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    aims_runtime::gzip::encode(body)
}

fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
        None => req,
    }
}

async fn send(req: reqwest::RequestBuilder) -> Verdict {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.text().await.unwrap_or_default();
            classify(status, &headers, &body)
        }
        Err(e) => Verdict::Unreachable(format!("request failed: {e}")),
    }
}

/// Fetches the model's reference profile from the collector.
pub async fn fetch_reference(
    client: &reqwest::Client,
    cfg: &ShipConfig,
    model: &str,
) -> Result<ReferenceProfile, ShipError> {
    let url = endpoint(&cfg.collector_url, &["v1", "models", model, "reference"])?;
    let resp = with_token(client.get(url), cfg.token.as_deref())
        .send()
        .await
        .map_err(|e| ShipError::Request(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ShipError::Request(format!("GET reference: HTTP {status}")));
    }
    resp.json()
        .await
        .map_err(|e| ShipError::Request(format!("reference profile does not parse: {e}")))
}

/// How the shipper is told to stop: `None` while running, then the deadline by which it gives
/// up draining the spool.
pub type StopSignal = watch::Receiver<Option<Instant>>;

/// Ships the spool to the collector until stopped.
pub struct Shipper {
    /// HTTP client.
    pub client: reqwest::Client,
    /// Shipping settings.
    pub cfg: ShipConfig,
    /// Model name, for the reference URL.
    pub model: String,
    /// A profile to PUT before shipping (when the agent loaded it from a file).
    pub reference: Option<Arc<ReferenceProfile>>,
    /// Where summaries wait.
    pub spool: Arc<Spool>,
    /// Counters.
    pub metrics: AgentMetrics,
}

/// Sleeps `d`, or less when told to stop; returns whether to carry on.
async fn pause(d: Duration, stop: &mut StopSignal) -> bool {
    let wake = tokio::time::Instant::now() + d;
    loop {
        let stopping = *stop.borrow();
        if let Some(deadline) = stopping {
            let deadline = tokio::time::Instant::from_std(deadline);
            tokio::time::sleep_until(wake.min(deadline)).await;
            return tokio::time::Instant::now() < deadline;
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake) => return true,
            changed = stop.changed() => if changed.is_err() { return false },
        }
    }
}

impl Shipper {
    /// Uploads the reference (if any), then ships summaries oldest first; returns when stopped
    /// and either the spool is empty or the stop deadline passed.
    pub async fn run(self, mut stop: StopSignal) {
        let mut backoff = Backoff::new(self.cfg.initial_backoff, self.cfg.max_backoff);
        if let Some(profile) = &self.reference {
            if !self.put_reference(profile, &mut backoff, &mut stop).await {
                return;
            }
        }
        backoff.reset();
        loop {
            let Some(name) = self.spool.oldest() else {
                let stopping = stop.borrow().is_some();
                if stopping {
                    return;
                }
                tokio::select! {
                    () = self.spool.added.notified() => {},
                    changed = stop.changed() => if changed.is_err() { return },
                }
                continue;
            };
            let Some(body) = self.spool.read(&name) else {
                self.spool.remove(&name);
                continue;
            };
            let started = Instant::now();
            let verdict = match endpoint(&self.cfg.collector_url, &["v1", "summaries"]) {
                Ok(url) => {
                    let req = self
                        .client
                        .post(url)
                        .header(CONTENT_TYPE, "application/json")
                        .header(CONTENT_ENCODING, "gzip")
                        .body(gzip(&body));
                    send(with_token(req, self.cfg.token.as_deref())).await
                }
                Err(e) => Verdict::Refused(e.to_string()),
            };
            match verdict {
                Verdict::Delivered => {
                    self.metrics
                        .ship_duration
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.summaries_shipped.inc();
                    self.spool.remove(&name);
                    tracing::debug!(file = %name, "summary delivered");
                    backoff.reset();
                }
                Verdict::Retry(after, why) => {
                    self.metrics.summaries_retried.inc();
                    let delay =
                        after.unwrap_or_else(|| backoff.next_delay(&mut rand::thread_rng()));
                    tracing::warn!(file = %name, reason = %why, retry_in = ?delay, "summary delivery failed; will retry");
                    if !pause(delay, &mut stop).await {
                        return;
                    }
                }
                Verdict::Unreachable(why) => {
                    self.metrics.summaries_retried.inc();
                    let delay = backoff.next_delay(&mut rand::thread_rng());
                    tracing::warn!(file = %name, reason = %why, retry_in = ?delay, "collector unreachable; will retry, or sooner once it answers a probe");
                    if !self.pause_or_probe(delay, &mut stop).await {
                        return;
                    }
                }
                Verdict::UnknownProfile(why) => match &self.reference {
                    Some(profile) => {
                        self.metrics.summaries_retried.inc();
                        tracing::warn!(file = %name, reason = %why, "collector lacks the reference profile; uploading it again");
                        if !self.put_reference(profile, &mut backoff, &mut stop).await {
                            return;
                        }
                    }
                    None => self.spool.dead_letter(&name, &why),
                },
                Verdict::Refused(why) => self.spool.dead_letter(&name, &why),
            }
        }
    }

    /// Whether the collector answers `GET /readyz` with a success, within a second.
    async fn probe(&self) -> bool {
        let Ok(url) = endpoint(&self.cfg.collector_url, &["readyz"]) else {
            return false;
        };
        let req = self
            .client
            .get(url)
            .timeout(PROBE_INTERVAL.min(self.cfg.timeout));
        matches!(req.send().await, Ok(r) if r.status().is_success())
    }

    /// Sleeps `d` like [`pause`], but wakes early (returning true) as soon as a probe finds the
    /// collector answering again. The probe only ends a wait caused by no answer at all; a
    /// collector answering errors is governed by the backoff alone.
    async fn pause_or_probe(&self, d: Duration, stop: &mut StopSignal) -> bool {
        let probing = async {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                if self.probe().await {
                    tracing::info!("collector answers again; resuming delivery");
                    return;
                }
            }
        };
        tokio::select! {
            carry_on = pause(d, stop) => carry_on,
            () = probing => true,
        }
    }

    /// PUTs the profile until the collector accepts it; false when stopped first.
    async fn put_reference(
        &self,
        profile: &ReferenceProfile,
        backoff: &mut Backoff,
        stop: &mut StopSignal,
    ) -> bool {
        let url = match endpoint(
            &self.cfg.collector_url,
            &["v1", "models", &self.model, "reference"],
        ) {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "cannot upload the reference profile");
                return false;
            }
        };
        let body = match serde_json::to_vec(profile) {
            Ok(b) => gzip(&b),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise the reference profile");
                return false;
            }
        };
        loop {
            let req = self
                .client
                .put(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_ENCODING, "gzip")
                .body(body.clone());
            let (after, why) = match send(with_token(req, self.cfg.token.as_deref())).await {
                Verdict::Delivered => {
                    tracing::info!(hash = %profile.hash, "reference profile uploaded");
                    return true;
                }
                Verdict::Retry(after, why) => (after, why),
                Verdict::Unreachable(why) => {
                    let delay = backoff.next_delay(&mut rand::thread_rng());
                    tracing::warn!(reason = %why, retry_in = ?delay, "reference upload failed: collector unreachable; retrying once it answers a probe");
                    let stopping = stop.borrow().is_some();
                    if stopping || !self.pause_or_probe(delay, stop).await {
                        return false;
                    }
                    continue;
                }
                Verdict::Refused(why) | Verdict::UnknownProfile(why) => (None, why),
            };
            let delay = after.unwrap_or_else(|| backoff.next_delay(&mut rand::thread_rng()));
            tracing::warn!(reason = %why, retry_in = ?delay, "reference upload failed; summaries wait until it succeeds");
            let stopping = stop.borrow().is_some();
            if stopping || !pause(delay, stop).await {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_are_classified() {
        let none = HeaderMap::new();
        let mut after = HeaderMap::new();
        after.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify(StatusCode::ACCEPTED, &none, ""),
            Verdict::Delivered
        );
        assert!(
            matches!(classify(StatusCode::TOO_MANY_REQUESTS, &after, ""), Verdict::Retry(Some(d), _) if d == Duration::from_secs(7))
        );
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &none, ""),
            Verdict::Retry(None, _)
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT, &none, ""),
            Verdict::Retry(None, _)
        ));
        assert!(
            matches!(classify(StatusCode::BAD_REQUEST, &none, "bad"), Verdict::Refused(m) if m.contains("bad"))
        );
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &none, ""),
            Verdict::Refused(_)
        ));
        let unknown = r#"{"error": "unknown reference profile", "field": "summary.profile_hash"}"#;
        assert!(matches!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, &none, unknown),
            Verdict::UnknownProfile(_)
        ));
        assert!(matches!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, &none, "{}"),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn endpoints_escape_segments() {
        let u = endpoint(
            "http://127.0.0.1:1/base/",
            &["v1", "models", "a b/c", "reference"],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:1/base/v1/models/a%20b%2Fc/reference"
        );
        assert!(endpoint("not a url", &["v1"]).is_err());
    }
}
