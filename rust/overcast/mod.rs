// SPDX-License-Identifier: GPL-2.0

//! Overcast's kernel-side Rust layer: safe abstractions over kernel APIs that the kernel's own `kernel` crate does
//! not cover yet. Every `unsafe` block of the suite lives under `rust/`; module logic uses only the safe types here.
//!
//! A module includes this tree with `#[path = "../rust/overcast/mod.rs"] mod overcast;`, selects the groups it uses
//! with `--cfg ovc_<group>` in its Kbuild (`rustflags-y += --cfg ovc_procfs`), and compiles the same groups' C helpers
//! (rust/helpers/<group>.c) into itself; see Documentation/build.md. A group a module does not select is not compiled
//! into it, so it needs none of that group's C helpers.

pub mod bindings;
pub mod fmt;
#[cfg(ovc_blk)]
pub mod blk;
#[cfg(ovc_net)]
pub mod net;
#[cfg(ovc_procfs)]
pub mod procfs;
#[cfg(ovc_sock)]
pub mod sock;
#[cfg(ovc_udp)]
pub mod udp;
#[cfg(ovc_virtio)]
pub mod virtio;
