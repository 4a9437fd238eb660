//! Overdriver agent library: the decision logic of the agent (dissertation ch. 6), kept free of I/O where possible
//! so that it can be driven by a fake clock in tests. The `overdriver` binary wires it to real counters, commands,
//! metrics and a configuration file.

pub mod actions;
pub mod agent;
pub mod bench;
pub mod clock;
pub mod config;
pub mod detector;
pub mod metrics;
pub mod plan;
pub mod profiler;
pub mod rate;
pub mod sim;
pub mod source;
pub mod util;
