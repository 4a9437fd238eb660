//! overcast-lab: builds the lab's root filesystem and runs scenarios in QEMU (vm), QEMU -> Xen -> Dom0
//! (nested), or two hosts on one link (pair); judges the console (markers, checks, KUnit KTAP).
pub mod console;
pub mod cpio;
pub mod ktap;
pub mod lab;
pub mod qemu;
pub mod rootfs;
pub mod runner;
pub mod tapnet;
