//! Pure logic of the Blanket drivers for KVM clouds (dissertation §4.2.2), shared by host tests and `blanket.ko`.
//!
//! The kernel module compiles these files in with `#[path]`; cross-file references use `super::`.
#![no_std]
#![forbid(unsafe_code)]

pub mod blkreq;
pub mod ctrl;
pub mod features;
pub mod nethdr;
