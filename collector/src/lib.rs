//! aims-collector: receives window summaries from agents, evaluates AI objectives
//! (ISO/IEC 42001 Clause 6.2) and keeps a hash-chained evidence log (Clauses 7.5, 9.1).
//!
//! The collector is this library; the `aims-collector` binary only parses its command line and
//! calls [`server::run`] or one of the [`commands`]. Tests start a collector in process on a
//! listener bound to port 0, the same way.
//!
//! # Layout
//!
//! Modules are layers; each imports only from the layers below it, never back up.
//!
//! - [`server`] and [`commands`]: the entry points. `server::run(config, listener, shutdown)`
//!   restores the state, starts the tasks and serves HTTP; the commands (`check`, `report`,
//!   `evidence verify`/`export`) work offline on the store; the `nonconformity` commands
//!   ([`corrective_commands`]) are clients of the running collector's API.
//! - [`http`]: the router, authentication as extractors ([`http::auth`]), one error type
//!   ([`http::ApiError`]) and one file per resource: summaries, references, objectives, alerts,
//!   evidence, reports, the status page, operations and the OpenAPI document.
//! - [`services`]: what the collector does. The ingest writer, the evaluator, the notifier,
//!   objectives reload, report building (model, evidence scan, analysis, rendering) and the
//!   evidence pack, the status page's rendering and maintenance. A service may use another
//!   service (the evaluator hands its results to the notifier), never the HTTP layer; a refusal
//!   is a typed value (e.g. `services::ingest::Rejection`) that `http` maps to a status code.
//! - [`state`]: [`state::App`], what the tasks share, behind locks that cannot be poisoned.
//! - [`store`] (SQLite or PostgreSQL), [`leader`] (which replica evaluates: an advisory lock
//!   and a fenced term in PostgreSQL), [`evidence`] (the hash-chained log, written only through the typed
//!   payloads of `aims_core::evidence::payload`), [`aggregate`] (rolling in-memory aggregates)
//!   and [`metrics`] (the Prometheus registry).
//! - [`config`]: the configuration file and its environment overrides.
//! - Leaves used by any layer: [`clock`] (the one, injectable, source of now), [`html`]
//!   (escaping) and [`tls`] (serving over rustls).
//!
//! Beside it: `aims-core` for everything pure (statistics, lifecycles, evidence hashing and
//! payloads, `aims_core::time`), `aims-runtime` for what the agent and the collector must do
//! alike (logging, shutdown, configuration loading, gzip, retry, metric registration).
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod clock;
pub mod commands;
pub mod config;
pub mod corrective_commands;
pub mod evidence;
pub mod html;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod services;
pub mod state;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod tree;
pub mod tree_commands;

pub use clock::Clock;
pub use config::Config;
