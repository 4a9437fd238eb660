//! Cooperative swap shared logic (dissertation §6.1.2, §6.2.4).
//!
//! Everything here is `core`-only and allocation-free: the kernel module `coopswap.ko` compiles these files in with
//! `#[path = "..."] mod x;` (all of them as sibling modules of one parent, because they refer to each other with
//! `super::`), and the userspace repository server `coopswap-repod` uses the same code as a normal crate.
//!
//! * [`crc32c`]   — CRC-32C (Castagnoli) used for page payloads and the map export stream.
//! * [`wire`]     — the repository wire protocol: framing, encoder, streaming decoder.
//! * [`pagemap`]  — per-page record of the §6.2.4 page map and its state transitions (write-through).
//! * [`placement`]— rendezvous placement of pages over repositories, skipping dead/full/draining ones.
//! * [`mapfile`]  — versioned, checksummed export/import stream of a device's page map (VM migration).
//! * [`writebehind`] — the buffers of the local copies written behind the network store (§6.2.4, asynchronous).
//! * [`slots`]    — which local-store slot each local copy goes to (log-structured: next free slot).
//! * [`window`]   — the block requests a device has in service, each completed when its own replies are in.
//! * [`selftest`] — a core-only self-test of all of the above, runnable as one KUnit case.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::arithmetic_side_effects
    )
)]

pub mod crc32c;
pub mod mapfile;
pub mod pagemap;
pub mod placement;
pub mod selftest;
pub mod slots;
pub mod window;
pub mod wire;
pub mod writebehind;
