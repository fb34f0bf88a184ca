//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG`, as text or JSON lines (the
//! shared [`aims_runtime::logging`]).

/// Installs the global subscriber; later calls are no-ops.
pub fn init(json: bool) {
    aims_runtime::logging::init(json);
}
