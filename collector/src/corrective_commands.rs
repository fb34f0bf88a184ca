//! `aims-collector nonconformity ...`: the command-line twins of the corrective-action API
//! (Clause 10.2) for people without HTTP tooling: `acknowledge`, `cause`, `action`, `done`,
//! `close`, and `list` to find the ids.
//!
//! They call the running collector's API; they do not act on the store offline. The running
//! collector is the one writer of the evidence chain and keeps the nonconformities in memory,
//! changed under one lock with the evaluator's appends: a second process writing the store
//! would race those appends (breaking or forking the chain) and be overwritten by the
//! collector's own copy at its next change. Going through the API, a CLI action gets exactly
//! what a request gets (the role-token check, the lifecycle's refusals, one evidence record
//! naming its actor, the overdue alert's resolution) and is seen at once by the status page,
//! `/metrics` and the notifier. A nonconformity only exists while a collector evaluates, so
//! an operator acting on one has a collector to talk to.
//!
//! The role token is read from `--token-file`, else from `AIMS_CORRECTIVE_TOKEN` (not from a
//! flag: a flag's value is visible to every user in the process list). The collector's address
//! comes from `--url`, else `AIMS_COLLECTOR_URL`, else the default listener. The outcome is
//! printed as the API's JSON on standard output; a refusal prints the collector's reason
//! (status and message) and exits with status 1, having stored nothing.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::http::nonconformities::{Acknowledge, Actor, Cause, Plan};

/// The environment variable holding the role token when `--token-file` is not given.
pub const TOKEN_ENV: &str = "AIMS_CORRECTIVE_TOKEN";
/// The environment variable holding the collector's base URL when `--url` is not given.
pub const URL_ENV: &str = "AIMS_COLLECTOR_URL";
/// The base URL of a collector on the default listener.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9470";

/// One action on nonconformity `id`, with the body the API takes.
#[derive(Debug)]
pub enum Act {
    /// `POST /v1/nonconformities/{id}/acknowledge`.
    Acknowledge(u64, Acknowledge),
    /// `POST /v1/nonconformities/{id}/cause`.
    Cause(u64, Cause),
    /// `POST /v1/nonconformities/{id}/actions`.
    Action(u64, Plan),
    /// `POST /v1/nonconformities/{id}/actions/{action}/done`.
    Done(u64, u32, Actor),
    /// `POST /v1/nonconformities/{id}/close`.
    Close(u64, Actor),
}

impl Act {
    /// The path under the collector's base URL.
    pub fn path(&self) -> String {
        match self {
            Act::Acknowledge(id, _) => format!("/v1/nonconformities/{id}/acknowledge"),
            Act::Cause(id, _) => format!("/v1/nonconformities/{id}/cause"),
            Act::Action(id, _) => format!("/v1/nonconformities/{id}/actions"),
            Act::Done(id, action, _) => format!("/v1/nonconformities/{id}/actions/{action}/done"),
            Act::Close(id, _) => format!("/v1/nonconformities/{id}/close"),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let v = match self {
            Act::Acknowledge(_, b) => serde_json::to_value(b),
            Act::Cause(_, b) => serde_json::to_value(b),
            Act::Action(_, b) => serde_json::to_value(b),
            Act::Done(_, _, b) | Act::Close(_, b) => serde_json::to_value(b),
        };
        v.unwrap_or(Value::Null)
    }
}

/// The collector's base URL: `--url`, else `AIMS_COLLECTOR_URL`, else [`DEFAULT_URL`].
pub fn base_url(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var(URL_ENV).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The bearer token: the contents of `file`, else `AIMS_CORRECTIVE_TOKEN`; an error naming
/// both when neither gives one.
pub fn token(file: Option<&Path>, env_name: &str) -> anyhow::Result<Option<String>> {
    let t = match file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("--token-file {}", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(env_name).ok().map(|t| t.trim().to_owned()),
    };
    Ok(t.filter(|t| !t.is_empty()))
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("aims-collector-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// Prints a successful answer's JSON, or the collector's refusal; the exit status says which.
async fn answer(what: &str, resp: reqwest::Response) -> anyhow::Result<ExitCode> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        let pretty = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(text);
        println!("{pretty}");
        return Ok(ExitCode::SUCCESS);
    }
    let reason = serde_json::from_str::<Value>(&text)
        .ok()
        .map(|v| {
            let field = v["field"].as_str().unwrap_or_default();
            let message = v["error"].as_str().unwrap_or_default().to_owned();
            if field.is_empty() {
                message
            } else {
                format!("{field}: {message}")
            }
        })
        .unwrap_or(text);
    eprintln!("error: {what}: the collector answered {status}: {reason}; nothing was recorded");
    Ok(ExitCode::FAILURE)
}

/// Sends `act` to the collector at `url` with the role `token`.
pub async fn act(url: &str, token: Option<String>, act: Act) -> anyhow::Result<ExitCode> {
    let token = token.with_context(|| {
        format!("no corrective-action token: pass --token-file FILE or set {TOKEN_ENV}")
    })?;
    let target = format!("{url}{}", act.path());
    let resp = client()?
        .post(&target)
        .bearer_auth(token)
        .json(&act.body())
        .send()
        .await
        .with_context(|| format!("POST {target}: is the collector running at {url}?"))?;
    answer(&format!("POST {}", act.path()), resp).await
}

/// `nonconformity list`: `GET /v1/nonconformities` with its filters, with a read token
/// (`--token-file`, else `AIMS_READ_TOKEN`) when the collector requires one.
pub async fn list(
    url: &str,
    token: Option<String>,
    query: &[(&str, String)],
) -> anyhow::Result<ExitCode> {
    let target = format!("{url}/v1/nonconformities");
    let mut req = client()?.get(&target).query(query);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("GET {target}: is the collector running at {url}?"))?;
    answer("GET /v1/nonconformities", resp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_act_names_its_path_and_sends_the_apis_body() {
        let done = Act::Done(
            3,
            2,
            Actor {
                actor: "bo".into(),
                note: String::new(),
            },
        );
        assert_eq!(done.path(), "/v1/nonconformities/3/actions/2/done");
        assert_eq!(done.body(), serde_json::json!({"actor": "bo", "note": ""}));
        let plan = Act::Action(
            1,
            Plan {
                actor: "ana".into(),
                description: "d".into(),
                owner: "o".into(),
                due: "2027-03-31".into(),
                control: "A.6.2.6".into(),
            },
        );
        assert_eq!(plan.path(), "/v1/nonconformities/1/actions");
        assert_eq!(plan.body()["due"], "2027-03-31");
        assert_eq!(base_url(Some("http://h:1/".into())), "http://h:1");
    }
}
