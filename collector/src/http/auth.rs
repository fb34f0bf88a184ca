//! Authentication as extractors: a handler states what it needs in its signature ([`Agent`]
//! or [`Reader`]) instead of calling a check at its top.
//!
//! Agent tokens and read tokens are separate: an agent's token cannot read the evidence, and a
//! dashboard's token cannot send summaries. Tokens are compared by their SHA-256, as configured.

use std::sync::Arc;

use aims_core::hash::sha256_hex;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use crate::state::{App, Caller};

/// The SHA-256 of the bearer token in `Authorization`, if any.
pub fn bearer_hash(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| sha256_hex(token.trim().as_bytes()))
}

/// An authenticated sender of summaries and profiles: 401 without or with an unknown token,
/// when agent tokens are configured; [`Caller::Open`] when none are.
#[derive(Debug)]
pub struct Agent(pub Caller);

impl FromRequestParts<Arc<App>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let agents = &app.config.auth.agents;
        if agents.is_empty() {
            return Ok(Agent(Caller::Open));
        }
        let hash = bearer_hash(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        agents
            .iter()
            .find(|a| a.token_sha256 == hash)
            .map(|a| Agent(Caller::Agent(a.clone())))
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
    }
}

/// An authorised reader: 401 without or with an unknown read token, when read tokens are
/// configured.
#[derive(Debug)]
pub struct Reader;

impl FromRequestParts<Arc<App>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let tokens = &app.config.auth.read_token_sha256;
        if tokens.is_empty() {
            return Ok(Reader);
        }
        let hash = bearer_hash(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("a read token is required"))?;
        if tokens.contains(&hash) {
            Ok(Reader)
        } else {
            Err(ApiError::unauthorized("unknown read token"))
        }
    }
}

/// An authorised scraper of `/metrics`: 401 without or with an unknown metrics token, when
/// metrics tokens are configured (`auth.metrics_token_sha256`); open otherwise.
#[derive(Debug)]
pub struct Scraper;

impl FromRequestParts<Arc<App>> for Scraper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let tokens = &app.config.auth.metrics_token_sha256;
        if tokens.is_empty() {
            return Ok(Scraper);
        }
        let hash = bearer_hash(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("a bearer token is required (auth.metrics_token_sha256)")
        })?;
        if tokens.contains(&hash) {
            Ok(Scraper)
        } else {
            Err(ApiError::unauthorized("unknown metrics token"))
        }
    }
}

/// An authorised corrector of nonconformities (acknowledge, cause, actions, close): 401
/// without a bearer token, 403 with a token that is not a corrective-action token. With no
/// such tokens configured nobody may act, since every action writes evidence.
#[derive(Debug)]
pub struct Corrector;

impl FromRequestParts<Arc<App>> for Corrector {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let hash = bearer_hash(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("a corrective-action token is required"))?;
        if app.config.auth.corrective_token_sha256.contains(&hash) {
            Ok(Corrector)
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Authorization",
                "this token may not act on nonconformities",
            ))
        }
    }
}
