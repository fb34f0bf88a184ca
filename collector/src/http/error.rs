//! The one error type of the HTTP layer: a JSON body `{"error": ..., "field": ...}` naming
//! what to fix.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::services::ingest::{Reason, Rejection};

/// A request the API refuses, naming the field at fault; rendered as a JSON body.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {field}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The field, header or parameter at fault (empty when none).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// A body other than `{"error", "field"}`, for errors that list several problems.
    pub body: Option<Value>,
    /// Seconds to send as `Retry-After`.
    pub retry_after: Option<&'static str>,
}

impl ApiError {
    /// An error with `status` about `field`.
    pub fn new(status: StatusCode, field: &str, message: &str) -> Self {
        Self {
            status,
            field: field.to_owned(),
            message: message.to_owned(),
            body: None,
            retry_after: None,
        }
    }

    /// 400 about `field`.
    pub fn bad_request(field: &str, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, field, message)
    }

    /// 503: the store failed or the collector is stopping.
    pub fn unavailable(message: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "", message)
    }

    /// 401 about the `Authorization` header.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Authorization", message)
    }

    /// An error with this exact JSON body.
    pub fn with_body(status: StatusCode, message: &str, body: Value) -> Self {
        Self {
            body: Some(body),
            ..Self::new(status, "", message)
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = match r.reason {
            Reason::Invalid | Reason::Impossible | Reason::Overflow => StatusCode::BAD_REQUEST,
            Reason::Forbidden => StatusCode::FORBIDDEN,
            Reason::UnknownProfile => StatusCode::UNPROCESSABLE_ENTITY,
            Reason::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Reason::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut e = Self::new(status, &r.field, &r.message);
        if r.reason == Reason::Overloaded {
            e.retry_after = Some("1");
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.body {
            Some(b) => b,
            None if self.field.is_empty() => json!({"error": self.message}),
            None => json!({"error": self.message, "field": self.field}),
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        r
    }
}
