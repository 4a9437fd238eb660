// SPDX-License-Identifier: GPL-2.0

//! Cooperative swap (dissertation §6.1.2, §6.2.4): the block device that keeps swap pages in remote page
//! repositories with a local write-through copy.
//!
//! This version carries the repository protocol, the page map, placement and the map export format (coopswap/proto,
//! shared with the repository server and the host tests) and their KUnit suite; the block device itself is not
//! written yet (issue 4), so loading the module creates no device.

use kernel::prelude::*;

// The protocol and page-map logic, compiled from coopswap/proto (one implementation with the host tests).
// They sit at the crate root because their files refer to each other as `super::<file>`.
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src/crc32c.rs"]
mod crc32c;
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src/mapfile.rs"]
mod mapfile;
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src/pagemap.rs"]
mod pagemap;
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src/placement.rs"]
mod placement;
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src/selftest.rs"]
mod selftest;
#[allow(dead_code, unreachable_pub)]
#[path = "proto/src/wire.rs"]
mod wire;
mod core_logic {
    #[allow(unused_imports)]
    pub(crate) use super::{crc32c, mapfile, pagemap, placement, selftest, wire};
}

module! {
    type: CoopSwap,
    name: "coopswap",
    authors: ["Overcast developers"],
    description: "Overcast cooperative swap (protocol and page-map logic with tests; no block device yet)",
    license: "GPL",
}

struct CoopSwap;

impl kernel::Module for CoopSwap {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("coopswap: loaded; this version creates no device yet\n");
        Ok(CoopSwap)
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
