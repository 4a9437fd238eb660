// SPDX-License-Identifier: GPL-2.0

//! Blanket drivers for KVM clouds (dissertation §4.2.2): the Blanket Dom0's drivers for the provider's virtio
//! devices. This module carries the drivers' negotiation and request-layout logic (blanket/core, shared with the
//! host tests) and its KUnit suite; the virtio-net and virtio-blk drivers themselves are not written yet (issue 6),
//! so loading it binds no device.

use kernel::prelude::*;

// The Blanket drivers' pure logic, compiled from blanket/core (one implementation with the host tests).
// They sit at the crate root because their files refer to each other as `super::<file>`.
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/blkreq.rs"]
mod blkreq;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/features.rs"]
mod features;
mod core_logic {
    #[allow(unused_imports)]
    pub(crate) use super::{blkreq, features};
}

module! {
    type: Blanket,
    name: "blanket",
    authors: ["Overcast developers"],
    description: "Overcast Blanket drivers for the provider's virtio devices (logic and tests; no driver yet)",
    license: "GPL",
}

struct Blanket;

impl kernel::Module for Blanket {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("loaded; no virtio device is bound by this version (the C virtio drivers stay in charge)\n");
        Ok(Blanket)
    }
}

#[kunit_tests(overcast_blanket)]
mod tests {
    use super::core_logic::blkreq::{plan, DevCaps, Op, ReqError};
    use super::core_logic::features::{bit, negotiate, supported, DeviceKind, Features, NegotiationError};

    #[test]
    fn legacy_device_is_refused() {
        assert_eq!(negotiate(DeviceKind::Net, Features::of(&[bit::NET_MAC])), Err(NegotiationError::Legacy));
    }

    #[test]
    fn only_supported_bits_are_accepted() {
        for kind in [DeviceKind::Net, DeviceKind::Blk] {
            let acc = negotiate(kind, Features(u64::MAX)).map(|f| f.0 & !supported(kind).0);
            assert_eq!(acc, Ok(0));
        }
    }

    #[test]
    fn access_platform_is_kept() {
        let off = Features::of(&[bit::VERSION_1, bit::ACCESS_PLATFORM]);
        assert_eq!(negotiate(DeviceKind::Blk, off).map(|f| f.has(bit::ACCESS_PLATFORM)), Ok(true));
    }

    #[test]
    fn blk_request_chains() {
        let caps = DevCaps { flush: true, discard: false, read_only: false, max_descs: 8 };
        assert_eq!(plan(&caps, Op::Read, 0, 3, 3 * 4096).map(|p| p.descs()), Ok(5));
        assert_eq!(plan(&caps, Op::Read, 0, 7, 7 * 512).map(|p| p.descs()), Err(ReqError::TooManySegments));
        assert_eq!(plan(&caps, Op::Discard, 0, 1, 512).map(|p| p.descs()), Err(ReqError::Unsupported));
    }
}
