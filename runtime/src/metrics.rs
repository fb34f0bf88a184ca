//! Metric registration: create a Prometheus metric and register it in one step.
//!
//! Definitions are static (names and labels are literals in the code), so an invalid
//! definition or a duplicate name is a programming error found by the first test that builds
//! the registry, and panics there rather than returning an error nobody could handle.

use prometheus::core::Collector;
use prometheus::Encoder;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Registers `metric` in `registry` and returns it.
pub fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

/// A registered counter.
pub fn int_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        r,
        IntCounter::new(name, help).expect("valid metric definition"),
    )
}

/// A registered gauge.
pub fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::new(name, help).expect("valid metric definition"),
    )
}

/// A registered floating-point gauge.
pub fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    register(r, Gauge::new(name, help).expect("valid metric definition"))
}

/// A registered counter with `labels`.
pub fn int_counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

/// A registered gauge with `labels`.
pub fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

/// A registered floating-point gauge with `labels`.
pub fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

/// A registered histogram with `buckets`.
pub fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid metric definition"),
    )
}

/// The registry in the Prometheus text exposition format, with its Content-Type.
pub fn encode(registry: &Registry) -> (String, Vec<u8>) {
    let encoder = TextEncoder::new();
    let mut out = Vec::new();
    // Encoding registered, well-formed metrics into memory cannot fail.
    let _ = encoder.encode(&registry.gather(), &mut out);
    (encoder.format_type().to_owned(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_exported() {
        let r = Registry::new();
        let c = int_counter_vec(&r, "aims_test_total", "help", &["reason"]);
        c.with_label_values(&["x"]).inc_by(2);
        int_gauge(&r, "aims_test_gauge", "help").set(3);
        let (content_type, out) = encode(&r);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("aims_test_total{reason=\"x\"} 2"), "{text}");
        assert!(text.contains("aims_test_gauge 3"), "{text}");
    }

    #[test]
    #[should_panic(expected = "unique metric name")]
    fn a_duplicate_name_is_caught() {
        let r = Registry::new();
        int_gauge(&r, "aims_twice", "help");
        int_gauge(&r, "aims_twice", "help");
    }
}
