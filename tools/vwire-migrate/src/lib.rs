//! `vwire-migrate`: moves one VirtualWire endpoint from one host to another (dissertation §5.2.4). The pure parts
//! — listing and status parsing, the checks before anything changes, the steps with their undo actions and the
//! executor that rolls back, and the gap computation of the probe flow — live here and are unit-tested on the host;
//! `main.rs` adds the transports (local, a remote command such as ssh, or `vwire-migrate serve`), the probe and the
//! echo. See Documentation/vwire.md, "Wire two hosts' guests together, then migrate one".
#![forbid(unsafe_code)]

pub mod gap;
pub mod plan;
pub mod wire;
