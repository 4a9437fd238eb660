//! Cooperative swap page repository (dissertation §6.2.4): stores 4 KiB swap pages for authenticated clients in
//! pinned memory and serves them back, speaking the protocol of `coopswap-proto`.

pub mod client;
pub mod config;
pub mod mapmove;
pub mod metrics;
pub mod server;
pub mod store;
