// SPDX-License-Identifier: GPL-2.0

//! Blanket drivers for KVM clouds (dissertation §4.2.2): the Blanket Dom0's drivers for the provider's virtio
//! devices. Loading the module registers the virtio driver `blanket_blk` (blk.rs), which binds a virtio-blk device
//! only when the operator hands it over (the C virtio_blk driver keeps the devices it has; see
//! Documentation/blanket.md). The drivers' negotiation and request-layout logic is blanket/core, shared with the
//! host tests and exercised by the KUnit suite below. virtio-net is not written yet.

use kernel::prelude::*;

// The shared kernel layer (virtio group, selected in Kbuild).
#[allow(dead_code, unreachable_pub)]
#[path = "../rust/overcast/mod.rs"]
mod overcast;

mod blk;

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
    description: "Overcast Blanket drivers for the provider's virtio devices (blanket_blk: virtio-blk -> /dev/bvdN)",
    license: "GPL",
}

struct Blanket {
    _blk: overcast::virtio::Registration<blk::BlkDriver>,
}

impl kernel::Module for Blanket {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (table, n) = blk::feature_table();
        let drv = KBox::new(blk::BlkDriver::new(), GFP_KERNEL)?;
        let table = table.get(..n).unwrap_or(&[]);
        let reg = overcast::virtio::Registration::new(c"blanket_blk", blk::DEVICE_ID, table, drv).inspect_err(|e| {
            pr_err!("cannot register virtio driver blanket_blk ({:?}); is another copy loaded?\n", e)
        })?;
        pr_info!(
            "blanket_blk registered; it binds a virtio-blk device only when handed one (see Documentation/blanket.md)\n"
        );
        Ok(Blanket { _blk: reg })
    }
}

impl Drop for Blanket {
    fn drop(&mut self) {
        pr_info!("unloading: blanket_blk devices are unbound (their disks removed)\n");
    }
}

#[kunit_tests(overcast_blanket)]
mod tests {
    use super::core_logic::blkreq::{check_status, plan, queue_limits, ConfigError, DevCaps, Op, ReqError};
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
    fn blk_feature_table_is_device_bits() {
        let (t, n) = super::blk::feature_table();
        let want = [bit::BLK_SIZE_MAX, bit::BLK_SEG_MAX, bit::BLK_RO, bit::BLK_BLK_SIZE, bit::BLK_FLUSH];
        assert_eq!(t.get(..n), Some(&want[..]));
    }

    #[test]
    fn blk_status_and_limits() {
        assert_eq!(check_status(0), Ok(()));
        assert_eq!(check_status(1).map_err(|e| e.errno()), Err(5));
        assert_eq!(check_status(2).map_err(|e| e.errno()), Err(95));
        assert_eq!(check_status(0xff).map_err(|e| e.errno()), Err(5));
        assert_eq!(queue_limits(254, 0, 0, 256, true).map(|l| (l.max_segments, l.depth)), Ok((254, 128)));
        assert_eq!(queue_limits(254, 0, 0, 64, false).map(|l| l.max_segments), Ok(62));
        assert_eq!(queue_limits(1, 0, 1000, 64, true), Err(ConfigError::BadBlockSize(1000)));
    }

    #[test]
    fn blk_request_chains() {
        let caps = DevCaps { flush: true, discard: false, read_only: false, max_descs: 8 };
        assert_eq!(plan(&caps, Op::Read, 0, 3, 3 * 4096).map(|p| p.descs()), Ok(5));
        assert_eq!(plan(&caps, Op::Read, 0, 7, 7 * 512).map(|p| p.descs()), Err(ReqError::TooManySegments));
        assert_eq!(plan(&caps, Op::Discard, 0, 1, 512).map(|p| p.descs()), Err(ReqError::Unsupported));
    }
}
