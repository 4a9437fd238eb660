// SPDX-License-Identifier: GPL-2.0

//! Cooperative swap (dissertation §6.1.2, §6.2.4): the block device `/dev/coopswap<N>` that keeps swap pages in
//! remote page repositories with a local write-through copy.
//!
//! * `config.rs`: the configfs interface (/sys/kernel/config/coopswap/<N>/);
//! * `device.rs`: the blk-mq device, its worker and the write-through page map;
//! * `repo.rs`: a repository connection (the protocol of coopswap/proto/src/wire.rs over a kernel TCP socket);
//! * coopswap/proto (shared with the repository server and the host tests): protocol, page map, placement, map
//!   export. Documentation/coopswap.md is the admin guide.

use kernel::prelude::*;

#[allow(dead_code, unreachable_pub)]
#[path = "../rust/overcast/mod.rs"]
mod overcast;

mod config;
mod device;
mod localcopy;
mod repo;

/// The protocol and page-map logic, compiled from coopswap/proto (one implementation with the host tests).
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src"]
mod core_logic {
    #[path = "crc32c.rs"]
    pub mod crc32c;
    #[path = "mapfile.rs"]
    pub mod mapfile;
    #[path = "pagemap.rs"]
    pub mod pagemap;
    #[path = "placement.rs"]
    pub mod placement;
    #[path = "selftest.rs"]
    pub mod selftest;
    #[path = "slots.rs"]
    pub mod slots;
    #[path = "window.rs"]
    pub mod window;
    #[path = "wire.rs"]
    pub mod wire;
    #[path = "writebehind.rs"]
    pub mod writebehind;
}

module! {
    type: CoopSwap,
    name: "coopswap",
    authors: ["Overcast developers"],
    description: "Overcast cooperative swap: block devices backed by page repositories with a local write-through copy",
    license: "GPL",
}

#[pin_data]
struct CoopSwap {
    #[pin]
    configfs: kernel::configfs::Subsystem<config::Config>,
}

impl kernel::InPlaceModule for CoopSwap {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("loaded; create devices under /sys/kernel/config/coopswap/\n");
        try_pin_init!(Self {
            configfs <- config::subsystem(),
        })
    }
}

#[kunit_tests(overcast_coopswap_proto)]
mod tests {
    use super::core_logic::{crc32c, wire};

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    /// The protocol crate's own self-test (codec, page map, placement, export/import), run inside the kernel with
    /// its scratch space on the heap.
    #[test]
    fn proto_selftest() -> Result<(), kernel::error::Error> {
        let mut scratch = kernel::alloc::KVec::with_capacity(super::core_logic::selftest::SCRATCH_LEN, kernel::alloc::flags::GFP_KERNEL)?;
        scratch.resize(super::core_logic::selftest::SCRATCH_LEN, 0u8, kernel::alloc::flags::GFP_KERNEL)?;
        assert_eq!(super::core_logic::selftest::run(&mut scratch), Ok(()));
        Ok(())
    }

    #[test]
    fn garbage_and_truncated_requests_are_errors() {
        let garbage = [0xA5u8; 64];
        assert!(wire::decode_request(&garbage).is_err());
        assert!(wire::decode_request(&[]).is_err());
        assert!(wire::decode_reply(&garbage[..3]).is_err());
    }
}

/// The device's own parsing of configfs input (repository address and token).
#[kunit_tests(overcast_coopswap_dev)]
mod dev_tests {
    use super::device::{parse_addr, parse_token};

    #[test]
    fn repository_addresses() {
        let a = parse_addr("127.0.0.1:7400").ok().map(|a| (a.family, a.ip, a.port));
        assert_eq!(a, Some((4, [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 7400)));
        let b = parse_addr("[::1]:9400").ok().map(|a| (a.family, a.ip, a.port));
        assert_eq!(b, Some((6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 9400)));
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "1.2.3:80", "1.2.3.4.5:80", "256.0.0.1:80",
            "a.b.c.d:80", ":80", "", "::1:80", "[::1]", "[fe80::1%2]:80"] {
            assert!(parse_addr(bad).is_err());
        }
    }

    #[test]
    fn capability_tokens() {
        let t = parse_token("00112233445566778899aabbccddeeff").map(|c| c.0).ok();
        assert_eq!(t, Some([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        assert!(parse_token("00112233445566778899AABBCCDDEEFF").is_ok());
        for bad in ["", "0011", "00112233445566778899aabbccddeeff00", "00112233445566778899aabbccddeefg", "00000000000000000000000000000000"] {
            assert!(parse_token(bad).is_err());
        }
    }

    #[test]
    fn repository_ids_are_stable_and_distinct() {
        let id = |s: &str| parse_addr(s).map(|a| a.id()).unwrap_or(0);
        assert_eq!(id("10.0.0.1:7400"), id("10.0.0.1:7400"));
        assert_ne!(id("10.0.0.1:7400"), id("10.0.0.2:7400"));
        assert_ne!(id("10.0.0.1:7400"), id("10.0.0.1:7401"));
        assert_ne!(id("[fd00::1]:7400"), id("[fd00::2]:7400"));
    }
}
