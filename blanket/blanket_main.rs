// SPDX-License-Identifier: GPL-2.0

//! Blanket drivers for KVM clouds (dissertation §4.2.2): the Blanket Dom0's drivers for the provider's virtio
//! devices. Loading the module registers the virtio drivers `blanket_blk` (blk.rs, virtio-blk -> /dev/bvd<N>) and
//! `blanket_net` (net.rs, virtio-net -> interface bnet<N>), which bind a device only when the operator hands it
//! over (the C virtio_blk / virtio_net drivers keep the devices they have; see Documentation/blanket.md). The
//! drivers' negotiation, request-layout and packet-header logic is blanket/core, shared with the host tests and
//! exercised by the KUnit suite below.

use kernel::prelude::*;

// The shared kernel layer (virtio group, selected in Kbuild).
#[allow(dead_code, unreachable_pub)]
#[path = "../rust/overcast/mod.rs"]
mod overcast;

mod blk;
mod net;

// The Blanket drivers' pure logic, compiled from blanket/core (one implementation with the host tests).
// They sit at the crate root because their files refer to each other as `super::<file>`.
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/blkreq.rs"]
mod blkreq;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/ctrl.rs"]
mod ctrl;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/features.rs"]
mod features;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/nethdr.rs"]
mod nethdr;
mod core_logic {
    #[allow(unused_imports)]
    pub(crate) use super::{blkreq, ctrl, features, nethdr};
}

module! {
    type: Blanket,
    name: "blanket",
    authors: ["Overcast developers"],
    description: "Overcast Blanket drivers for the provider's virtio devices (blanket_blk: virtio-blk -> /dev/bvdN, blanket_net: virtio-net -> bnetN)",
    license: "GPL",
}

struct Blanket {
    // Dropped in field order: blanket_net's devices are unbound first, then blanket_blk's.
    _net: overcast::virtio::Registration<net::NetDriver>,
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
        let (table, n) = net::feature_table();
        let table = table.get(..n).unwrap_or(&[]);
        let drv = KBox::new(net::NetDriver, GFP_KERNEL)?;
        let net = overcast::virtio::Registration::new(c"blanket_net", net::DEVICE_ID, table, drv).inspect_err(|e| {
            pr_err!("cannot register virtio driver blanket_net ({:?}); is another copy loaded?\n", e)
        })?;
        pr_info!(
            "blanket_net registered; it binds a virtio-net device only when handed one (interface bnet<N>, see Documentation/blanket.md)\n"
        );
        Ok(Blanket { _net: net, _blk: reg })
    }
}

impl Drop for Blanket {
    fn drop(&mut self) {
        pr_info!("unloading: blanket_net and blanket_blk devices are unbound (their interfaces and disks removed)\n");
    }
}

#[kunit_tests(overcast_blanket)]
mod tests {
    use super::core_logic::blkreq::{
        check_status, discard_granularity, plan, plan_ranges, queue_limits, range_limits, ConfigError, DevCaps, Op,
        Range, RangeOp, ReqError, MAX_PAYLOAD,
    };
    use super::core_logic::ctrl::{ack, rx_filter, CtrlError, RxFilter, TABLE_BYTES_MAX, TABLE_ENTRIES_MAX};
    use super::core_logic::features::{bit, negotiate, supported, DeviceKind, Features, NegotiationError};
    use super::core_logic::nethdr::{
        queue_pairs, rx_header, rx_packet, tx_descs_needed, tx_header, NetCaps, Offloads, RxCsum, RxError, RxGso, RxInfo, TxError, TxGso, TxMeta, HDR_LEN,
    };

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
        let want = [
            bit::BLK_SIZE_MAX,
            bit::BLK_SEG_MAX,
            bit::BLK_RO,
            bit::BLK_BLK_SIZE,
            bit::BLK_FLUSH,
            bit::BLK_MQ,
            bit::BLK_DISCARD,
            bit::BLK_WRITE_ZEROES,
        ];
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
        let caps = DevCaps { flush: true, discard: None, write_zeroes: None, read_only: false, max_descs: 8 };
        assert_eq!(plan(&caps, Op::Read, 0, 3, 3 * 4096).map(|p| p.descs()), Ok(5));
        assert_eq!(plan(&caps, Op::Read, 0, 7, 7 * 512).map(|p| p.descs()), Err(ReqError::TooManySegments));
        let mut buf = [0u8; MAX_PAYLOAD];
        let r = [Range { sector: 2048, sectors: 2048 }];
        assert_eq!(plan_ranges(&caps, RangeOp::Discard, &r, &mut buf).map(|p| p.1), Err(ReqError::Unsupported));
    }

    #[test]
    fn blk_discard_and_write_zeroes_payloads() {
        // One range per request, as QEMU's virtio-blk offers.
        let lim = range_limits(0x3f_ffff, 1);
        let caps =
            DevCaps { flush: true, discard: Some(lim), write_zeroes: Some(lim), read_only: false, max_descs: 8 };
        let mut buf = [0u8; MAX_PAYLOAD];
        let r = [Range { sector: 2048, sectors: 2048 }];
        let got = plan_ranges(&caps, RangeOp::Discard, &r, &mut buf)
            .map(|(p, n)| (p.header.type_, p.descs(), p.data_device_writes, n));
        assert_eq!(got, Ok((11, 3, false, 16)));
        assert_eq!(buf[..16], [0, 8, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0]);
        let got = plan_ranges(&caps, RangeOp::WriteZeroes { unmap: true }, &r, &mut buf).map(|(p, _)| p.header.type_);
        assert_eq!((got, buf[12]), (Ok(13), 1));
        let two = [r[0], r[0]];
        assert_eq!(plan_ranges(&caps, RangeOp::Discard, &two, &mut buf).map(|p| p.1), Err(ReqError::TooManySegments));
        assert_eq!(discard_granularity(8, 512), 4096);
    }

    #[test]
    fn rx_filter_tables_and_fallbacks() {
        let mut out = [0u8; TABLE_BYTES_MAX];
        let addrs = [0x52u8, 0x54, 0, 0x99, 0, 1, 1, 0, 0x5e, 0, 0, 1];
        let f = rx_filter(false, true, &addrs, 1, 1, &mut out);
        assert_eq!(f, Ok(RxFilter { promisc: false, allmulti: true, table_len: 20 }));
        assert_eq!((out[0], out[4], out[10], out[14]), (1, 0x52, 1, 1));
        let many = [1u8; (TABLE_ENTRIES_MAX + 1) * 6];
        let f = rx_filter(false, false, &many, TABLE_ENTRIES_MAX + 1, 0, &mut out);
        assert_eq!(f.map(|f| (f.promisc, f.table_len)), Ok((true, 8)));
        assert_eq!(rx_filter(false, false, &many[..5], 1, 0, &mut out), Err(CtrlError::BadList));
        assert_eq!((ack(0), ack(1)), (Ok(()), Err(CtrlError::Refused(1))));
    }

    #[test]
    fn net_negotiation_keeps_only_implemented_bits() {
        let off = Features::of(&[
            bit::VERSION_1,
            bit::NET_MQ,
            bit::NET_CTRL_VQ,
            bit::NET_CTRL_RX,
            bit::NET_MRG_RXBUF,
            bit::NET_GUEST_ECN,
            bit::NET_MAC,
            bit::NET_STATUS,
        ]);
        let want = Features::of(&[
            bit::VERSION_1,
            bit::NET_MAC,
            bit::NET_STATUS,
            bit::NET_CTRL_VQ,
            bit::NET_CTRL_RX,
            bit::NET_MQ,
            bit::NET_MRG_RXBUF,
        ]);
        assert_eq!(negotiate(DeviceKind::Net, off), Ok(want));
        let tso_only = Features::of(&[bit::VERSION_1, bit::NET_HOST_TSO4]);
        assert_eq!(negotiate(DeviceKind::Net, tso_only).map(|f| f.has(bit::NET_HOST_TSO4)), Ok(false));
        let (t, n) = super::net::feature_table();
        assert_eq!(t.get(..n).map(|t| t.contains(&bit::NET_GUEST_ECN)), Some(false));
        let tso = Features::of(&[bit::VERSION_1, bit::NET_GUEST_CSUM, bit::NET_MRG_RXBUF, bit::NET_GUEST_TSO6]);
        assert_eq!(negotiate(DeviceKind::Net, tso), Ok(tso));
        let no_mrg = Features::of(&[bit::VERSION_1, bit::NET_GUEST_CSUM, bit::NET_GUEST_TSO6]);
        assert_eq!(negotiate(DeviceKind::Net, no_mrg).map(|f| f.has(bit::NET_GUEST_TSO6)), Ok(false));
        assert_eq!(queue_pairs(Some(4), 2), 2);
        assert_eq!(queue_pairs(None, 2), 1);
    }

    #[test]
    fn net_tx_headers() {
        let caps = NetCaps { tx_csum: true, tso4: true, rx_csum: true, ..NetCaps::default() };
        let plain = TxMeta { csum: None, gso: TxGso::None, len: 60 };
        assert_eq!(tx_header(&caps, &plain), Ok([0u8; HDR_LEN]));
        let tso = TxMeta { csum: Some((34, 16)), gso: TxGso::Tcp4 { size: 1448, hdr_len: 66, ecn: false }, len: 9000 };
        assert_eq!(tx_header(&caps, &tso), Ok([1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0, 0, 0]));
        let v6 = TxMeta { gso: TxGso::Tcp6 { size: 1428, hdr_len: 86, ecn: false }, ..tso };
        assert_eq!(tx_header(&caps, &v6), Err(TxError::GsoNotOffered));
        assert_eq!(tx_header(&NetCaps::default(), &tso), Err(TxError::CsumNotOffered));
        assert_eq!(Offloads::of(&caps).tso4, true);
        assert_eq!(super::net::offload_bits(&Offloads::default()), 0);
    }

    #[test]
    fn net_rx_headers_and_ring() {
        let caps = NetCaps { rx_csum: true, ..NetCaps::default() };
        let mut h = [0u8; HDR_LEN];
        h[0] = 2;
        assert_eq!(rx_header(&caps, &h, 72), Ok(RxCsum::Valid));
        assert_eq!(rx_header(&NetCaps::default(), &h, 72), Err(RxError::UnexpectedCsum));
        h[1] = 1;
        assert_eq!(rx_header(&caps, &h, 72), Err(RxError::UnexpectedGso));
        assert_eq!(rx_header(&caps, &h, 20), Err(RxError::Short));
        // Garbage in num_buffers (devices without MRG_RXBUF need not write it) does not drop the frame.
        let mut nb = [0u8; HDR_LEN];
        nb[10] = 0xff;
        assert_eq!(rx_header(&caps, &nb, 72), Ok(RxCsum::None));
        // Room for a whole frame even with indirect descriptors (their table allocation may fail).
        assert_eq!(tx_descs_needed(17), 19);
    }

    #[test]
    fn net_rx_mergeable_and_gso() {
        let caps = NetCaps { rx_csum: true, mergeable: true, rx_tso4: true, ..NetCaps::default() };
        let mut g = [0u8; HDR_LEN];
        g[0] = 1; // NEEDS_CSUM
        g[1] = 1; // TCPV4
        g[4] = 0xa8; // gso_size 1448
        g[5] = 5;
        g[6] = 34;
        g[8] = 16;
        g[10] = 17; // num_buffers
        let want = RxInfo { csum: RxCsum::Partial(34, 16), gso: RxGso::Tcp4(1448), buffers: 17 };
        assert_eq!(rx_packet(&caps, &g, 4096), Ok(want));
        g[1] = 4; // TCPV6, not negotiated here
        assert_eq!(rx_packet(&caps, &g, 4096), Err(RxError::UnexpectedGso));
        g[1] = 1;
        g[10] = 0;
        assert_eq!(rx_packet(&caps, &g, 4096), Err(RxError::BadBufferCount));
        g[10] = 1;
        g[0] = 0; // GSO without a partial checksum
        assert_eq!(rx_packet(&caps, &g, 4096), Err(RxError::BadGso));
    }
}
