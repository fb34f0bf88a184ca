//! The collector's test harness and builders, from aims-testkit, and the binary under test.
#![allow(dead_code, unused_imports)]

pub use aims_testkit::collector::*;
pub use aims_testkit::fixtures::*;
pub use aims_testkit::prom::sample;
pub use aims_testkit::wait_until;

pub const BIN: &str = env!("CARGO_BIN_EXE_aims-collector");
