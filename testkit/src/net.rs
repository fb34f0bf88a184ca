//! Loopback listeners bound to port 0, so no port is picked, released and raced for.
//!
//! Our binaries take `listen = "127.0.0.1:0"` and say in their log where they listen. Outside
//! programs that can neither take a listener nor report the port they bound (Prometheus,
//! Alertmanager, the quickstart script's fixed ports) get [`free_port`] instead: the one place a
//! port is picked and released.

use std::net::{SocketAddr, TcpListener};

/// A listener on 127.0.0.1 with a port the kernel chose.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0")
}

/// A port free on 127.0.0.1 right now, for an outside program that must be told its port.
pub fn free_port() -> u16 {
    listener()
        .local_addr()
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The address in the last "listening" line of a child's log, text (`address=...`) or JSON
/// (`"address":"..."`): how a binary started with `listen = "127.0.0.1:0"` says where it is.
pub fn listening_address(log: &str) -> Option<SocketAddr> {
    log.lines()
        .rev()
        .filter(|l| l.contains("listening"))
        .find_map(|l| {
            let rest = l
                .split_once("address=")
                .map(|(_, r)| r)
                .or_else(|| l.split_once("\"address\":\"").map(|(_, r)| r))
                .or_else(|| l.split_once("listening on http://").map(|(_, r)| r))
                .or_else(|| l.split_once("listening on https://").map(|(_, r)| r))?;
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
}

/// How many "listening" lines the log holds: a restart adds one.
pub fn listening_count(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("listening"))
        .filter(|l| l.contains("address") || l.contains("listening on http"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_listening_address_is_read_from_text_and_json_logs() {
        let text = "2026-01-01T00:00:00Z  INFO aims_collector::server: listening address=127.0.0.1:4000 tls=false\n\
                    2026-01-01T00:00:01Z  INFO aims_collector::server: listening address=127.0.0.1:4001 tls=false\n";
        assert_eq!(
            listening_address(text),
            Some("127.0.0.1:4001".parse().unwrap())
        );
        assert_eq!(listening_count(text), 2);
        let json = r#"{"level":"INFO","fields":{"message":"listening","address":"127.0.0.1:4002","tls":false}}"#;
        assert_eq!(
            listening_address(json),
            Some("127.0.0.1:4002".parse().unwrap())
        );
        assert_eq!(listening_address("nothing"), None);
        let agent = "2026-01-01T00:00:00Z  INFO aims_agent::server: aims-agent listening on http://127.0.0.1:4003";
        assert_eq!(
            listening_address(agent),
            Some("127.0.0.1:4003".parse().unwrap())
        );
        assert_eq!(listening_count(agent), 1);
    }

    #[test]
    fn a_port_zero_listener_has_a_real_port() {
        let l = listener();
        let addr = l.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
    }
}
