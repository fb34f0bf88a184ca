//! The `[notify]` section: where alerts go and how hard delivery tries.
//!
//! Receivers are named, and objectives route to them by name through their `notify:` list, so
//! the objectives file (owned by governance) never holds URLs or tokens (owned by the platform).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Alert delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    /// Base URL under which people reach this collector; alerts link to their objective under it.
    /// Defaults to `http(s)://<server.listen>`, which only works when that address is reachable.
    pub external_url: Option<String>,
    /// A firing alert is sent again this often (Prometheus's `--rules.alert.resend-delay` is 1m).
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Notifications waiting per receiver URL; when full, new ones are dropped and counted.
    pub queue: usize,
    /// Attempts per notification before it is abandoned.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled per retry up to `backoff_max`, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Timeout of one HTTP attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The receivers objectives may name.
    pub receivers: Vec<Receiver>,
}

impl Default for Notify {
    fn default() -> Self {
        Self {
            external_url: None,
            resend_interval: Duration::from_secs(60),
            queue: 256,
            max_attempts: 5,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            receivers: Vec::new(),
        }
    }
}

/// One named destination.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// The name objectives use in `notify:`.
    pub name: String,
    /// What it speaks.
    pub kind: ReceiverKind,
    /// Alertmanager base URLs; every alert goes to each (Alertmanagers de-duplicate among
    /// themselves, so never put them behind one load balancer).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Webhook URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Bearer token sent as `Authorization: Bearer ...`.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the bearer token, so the configuration file holds no secret.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Shows everything but the token, so a logged configuration leaks no secret.
impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("urls", &self.urls)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// The protocol of a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// Alertmanager API v2: `POST <url>/api/v2/alerts`.
    Alertmanager,
    /// `POST <url>` with Alertmanager's webhook payload (version 4).
    Webhook,
}

impl ReceiverKind {
    /// The name in configuration and evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Alertmanager => "alertmanager",
            ReceiverKind::Webhook => "webhook",
        }
    }
}

impl Receiver {
    /// The URLs notifications are posted to.
    pub fn endpoints(&self) -> Vec<String> {
        match self.kind {
            ReceiverKind::Alertmanager => self
                .urls
                .iter()
                .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
                .collect(),
            ReceiverKind::Webhook => self.url.iter().cloned().collect(),
        }
    }
}

impl Notify {
    /// Checks the values; the error names the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.resend_interval.is_zero() {
            return Err(("notify.resend_interval", "must be longer than zero".into()));
        }
        if self.queue == 0 || self.max_attempts == 0 {
            return Err((
                "notify.queue",
                "queue and max_attempts must be positive".into(),
            ));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err((
                "notify.backoff_initial",
                "must be positive and at most backoff_max".into(),
            ));
        }
        if let Some(u) = &self.external_url {
            http_url(u).map_err(|m| ("notify.external_url", m))?;
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            let fail = |m: String| Err(("notify.receivers", format!("{:?}: {m}", r.name)));
            if r.name.trim().is_empty() {
                return fail("name must not be empty".into());
            }
            if !names.insert(r.name.as_str()) {
                return fail("duplicate receiver name".into());
            }
            match r.kind {
                ReceiverKind::Alertmanager if r.urls.is_empty() || r.url.is_some() => {
                    return fail("an alertmanager receiver lists `urls` (not `url`)".into())
                }
                ReceiverKind::Webhook if r.url.is_none() || !r.urls.is_empty() => {
                    return fail("a webhook receiver has one `url` (not `urls`)".into())
                }
                _ => {}
            }
            for u in r.urls.iter().chain(&r.url) {
                if let Err(m) = http_url(u) {
                    return fail(m);
                }
            }
            if r.token.is_some() && r.token_file.is_some() {
                return fail("token and token_file exclude each other".into());
            }
        }
        Ok(())
    }

    /// The base URL alerts link to.
    pub fn external_url(&self, server: &super::Server) -> String {
        match &self.external_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if server.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", server.listen)
            }
        }
    }

    /// The receiver called `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

fn http_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(format!("{u:?} is not an http(s) URL")),
        Err(e) => Err(format!("{u:?} is not a URL: {e}")),
    }
}
