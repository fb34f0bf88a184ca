//! aims-agent: the part of AIMS Monitor that runs beside each deployed model.
//!
//! - [`config`]: the agent's configuration file and its environment overrides;
//! - [`dataset`]: reading CSV and NDJSON datasets into validated events;
//! - [`assess`]: the pre-deployment check of a current dataset against a reference.
//! - [`logging`]: tracing setup shared by every subcommand.
#![forbid(unsafe_code)]

pub mod assess;
pub mod config;
pub mod dataset;
pub mod logging;
