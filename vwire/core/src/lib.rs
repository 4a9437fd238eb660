//! VirtualWire pure logic, shared by the host tools and the `vwire.ko` kernel module.
//!
//! Every file here is `no_std`, allocation-free and panic-free on reachable paths so that the kernel module can
//! compile it in with `#[path = "..."] mod x;`.  Cross-file references go through `super::`, so the kernel module
//! must declare all of these files as siblings under one parent module (see Documentation/vwire-design.md).
//!
//! * [`errno`]   - errno values the kernel returns for each typed error.
//! * [`id`]      - connector ids (`<N>`): range, decimal syntax, VXLAN VNI mapping.
//! * [`addr`]    - endpoint address syntax (`a.b.c.d[:port]`, `[v6[%scope]][:port]`) and validation.
//! * [`cmd`]     - the /proc/vw command parser (create, relay, repoint, destroy).
//! * [`header`]  - the 8-byte wire header (Fig. 5.3) codec.
//! * [`index`]   - O(1) receive-path lookup (id, local address) -> slot over caller buckets.
//! * [`mtu`]     - per-frame overhead and endpoint MTU arithmetic (§5.1.2).
//! * [`counters`]- per-endpoint and manager-wide counters, drop reasons.
//! * [`table`]   - the endpoint/relay table and the co-located collapse decision (§5.2.3).
//! * [`datapath`]- per-frame receive/transmit decisions (deliver, relay, encapsulate, hand off, drop).
//! * [`selftest`]- a core-only self-test of all of the above, runnable as one KUnit case.
//! * [`status`]  - `cat /proc/vw/<N>` and listing renderers into caller buffers.
#![no_std]
#![forbid(unsafe_code)]

pub mod addr;
pub mod cmd;
pub mod counters;
pub mod datapath;
pub mod errno;
pub mod header;
pub mod id;
pub mod index;
pub mod mtu;
pub mod selftest;
pub mod status;
pub mod table;
