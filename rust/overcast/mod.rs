// SPDX-License-Identifier: GPL-2.0

//! Overcast's kernel-side Rust layer: safe abstractions over kernel APIs that the kernel's own `kernel` crate does
//! not cover yet. Every `unsafe` block of the suite lives under `rust/`; module logic uses only the safe types here.
//!
//! A module includes this tree with `#[path = "../rust/overcast/mod.rs"] mod overcast;` and compiles the C helper
//! groups it uses (rust/helpers/*.c) into itself; see Documentation/build.md.

pub mod bindings;
pub mod procfs;
