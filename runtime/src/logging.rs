//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON
//! lines.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, JSON lines when `json`; later calls are no-ops (tests may
/// start several servers in one process).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and log shippers get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
