//! `GET /v1/reports?from=&to=&format=&model=`: the Clause 9 report over HTTP, behind the read
//! token; the same report `aims-collector report` writes.

use std::sync::Arc;

use axum::extract::State;

use super::query::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Reader;
use super::error::ApiError;
use crate::services::checkpoint;
use crate::services::report::{self, Format, ReportError, Request};
use crate::state::App;

/// The query parameters.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    model: Option<String>,
}

/// `GET /v1/reports`.
pub async fn get(
    State(app): State<Arc<App>>,
    Query(q): Query<ReportQuery>,
    _: Reader,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref().unwrap_or("html") {
        "html" => Format::Html,
        "md" | "markdown" => Format::Md,
        "json" => Format::Json,
        _ => return Err(ApiError::bad_request("format", "expected html, md or json")),
    };
    let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
        return Err(ApiError::bad_request(
            if q.from.is_none() { "from" } else { "to" },
            "both from and to are required",
        ));
    };
    let times = report::parse_time("from", from, false)
        .and_then(|f| Ok((f, report::parse_time("to", to, true)?)));
    let (from_ms, to_ms) = match times {
        Ok(t) => t,
        Err(e @ ReportError::Time { field, .. }) => {
            return Err(ApiError::bad_request(field, &e.to_string()))
        }
        Err(e) => return Err(ApiError::bad_request("", &e.to_string())),
    };
    let request = Request {
        from_ms,
        to_ms,
        model: q.model,
        now_ms: app.now_ms(),
        interval: app.config.evaluation.interval,
        config_path: None,
    };
    match report::build(&app.store, &request).await {
        Ok(report) => {
            // A checkpoint covering the period goes into the report (and is kept and published).
            let report = match checkpoint::issue(&app).await {
                Some(c) if c.head.size >= report.document.chain_end.seq => {
                    report.with_checkpoint(c.note)
                }
                _ => report,
            };
            Ok((
                [(header::CONTENT_TYPE, format.content_type())],
                format.render(&report),
            )
                .into_response())
        }
        Err(ReportError::Period) => Err(ApiError::bad_request(
            "to",
            &ReportError::Period.to_string(),
        )),
        Err(e) => Err(ApiError::unavailable(&e.to_string())),
    }
}
