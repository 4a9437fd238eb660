// SPDX-License-Identifier: GPL-2.0

//! `blanket_net`: the Blanket virtio-net driver (dissertation §4.2.2). It binds the provider's virtio-net device
//! (only when the operator binds it: the C virtio_net driver keeps every device it already has) and gives Dom0 an
//! Ethernet interface `bnet<N>`. Feature negotiation, the per-packet virtio-net headers and the transmit ring
//! accounting are blanket/core's (`features`, `nethdr`); the rings, NAPI and DMA mechanics are the kernel's virtio
//! core's and the C helpers', through rust/overcast/virtio.rs.

use crate::core_logic::ctrl;
use crate::core_logic::features::{self, DeviceKind, Features};
use crate::core_logic::nethdr::{self, NetCaps, Offloads, RxCsum, RxGso, TxGso, TxMeta};
use crate::overcast::virtio::{
    self, net_gso, net_off, Device, Driver, NetHeaders, NetParams, NetRxCsum, NetRxFilter, NetRxGso, NetRxInfo,
    NetTxMeta, VirtioNet, NET_HDR_LEN,
};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

/// virtio device id the driver binds.
pub(crate) const DEVICE_ID: u32 = virtio::ID_NET;

/// The device's requested feature table (device-specific bits of blanket/core's supported set).
pub(crate) fn feature_table() -> ([u32; 24], usize) {
    features::device_table(DeviceKind::Net)
}

/// The registered driver.
pub(crate) struct NetDriver;

/// Per-packet header decisions for one device (what it negotiated).
pub(crate) struct Headers {
    caps: NetCaps,
}

fn to_u16(v: u32) -> Result<u16> {
    u16::try_from(v).map_err(|_| EINVAL)
}

impl NetHeaders for Headers {
    fn tx_hdr(&self, m: &NetTxMeta) -> Result<[u8; NET_HDR_LEN]> {
        let csum = if m.csum_partial != 0 { Some((to_u16(m.csum_start)?, to_u16(m.csum_offset)?)) } else { None };
        let (size, hdr_len, ecn) = (to_u16(m.gso_size).unwrap_or(0), to_u16(m.hdr_len).unwrap_or(0), m.ecn != 0);
        let gso = match m.gso {
            net_gso::NONE => TxGso::None,
            net_gso::TCP4 => TxGso::Tcp4 { size, hdr_len, ecn },
            net_gso::TCP6 => TxGso::Tcp6 { size, hdr_len, ecn },
            _ => TxGso::Other,
        };
        nethdr::tx_header(&self.caps, &TxMeta { csum, gso, len: m.len }).map_err(|_| EINVAL)
    }

    fn rx_hdr(&self, hdr: &[u8; NET_HDR_LEN], len: u32) -> Result<NetRxInfo> {
        let info = nethdr::rx_packet(&self.caps, hdr, len).map_err(|_| EINVAL)?;
        let csum = match info.csum {
            RxCsum::None => NetRxCsum::None,
            RxCsum::Valid => NetRxCsum::Valid,
            RxCsum::Partial(s, o) => NetRxCsum::Partial(s, o),
        };
        let gso = match info.gso {
            RxGso::None => NetRxGso::None,
            RxGso::Tcp4(size) => NetRxGso::Tcp4(size),
            RxGso::Tcp6(size) => NetRxGso::Tcp6(size),
        };
        Ok(NetRxInfo { csum, gso, buffers: info.buffers })
    }

    fn rx_filter(
        &self,
        promisc: bool,
        allmulti: bool,
        addrs: &[u8],
        n_uc: usize,
        n_mc: usize,
        table: &mut [u8],
    ) -> Result<NetRxFilter> {
        match ctrl::rx_filter(promisc, allmulti, addrs, n_uc, n_mc, table) {
            Ok(f) => Ok(NetRxFilter { promisc: f.promisc, allmulti: f.allmulti, table_len: f.table_len }),
            Err(e) => Err(Error::from_errno(-e.errno())),
        }
    }
}

/// One bound device.
pub(crate) struct NetDev {
    net: VirtioNet<Headers>,
}

/// The offload bits for the C side.
pub(crate) fn offload_bits(o: &Offloads) -> u32 {
    let mut b = 0;
    for (on, bit) in [
        (o.sg, net_off::SG),
        (o.hw_csum, net_off::HW_CSUM),
        (o.tso4, net_off::TSO4),
        (o.tso6, net_off::TSO6),
        (o.rx_csum, net_off::RX_CSUM),
    ] {
        if on {
            b |= bit;
        }
    }
    b
}

impl Driver for NetDriver {
    type Data = NetDev;

    fn validate(&self, dev: &Device, offered: u64, _accepted: u64) -> Result<u64> {
        match features::negotiate(DeviceKind::Net, Features(offered)) {
            Ok(f) => Ok(f.0),
            Err(e) => {
                pr_err!("blanket_net: {}: not bound: {}\n", dev.name(), e.message());
                Err(Error::from_errno(-e.errno()))
            }
        }
    }

    fn probe(&self, dev: &Device) -> Result<KBox<NetDev>> {
        let caps = NetCaps::of(Features(dev.features()));
        let cfg = dev.net_config();
        let mac = cfg.mac;
        let mtu = nethdr::choose_mtu(cfg.mtu);
        let pairs = nethdr::queue_pairs(cfg.max_pairs, cfg.cpus);
        // The operator may lower the MTU but not raise it: receive buffers are sized for it (no jumbo frames yet).
        let max_mtu = mtu;
        let off = Offloads::of(&caps);
        let params = NetParams {
            mac,
            mtu,
            max_mtu,
            rx_buf_len: nethdr::rx_buf_len(max_mtu),
            tx_stop_free: nethdr::tx_descs_needed(virtio::net_max_frags()),
            offloads: offload_bits(&off),
            pairs: u32::from(pairs),
        };
        let headers = Arc::new(Headers { caps }, GFP_KERNEL)?;
        let net = VirtioNet::new(dev, c"bnet%d", &params, headers).inspect_err(|e| {
            pr_err!(
                "blanket_net: {}: not bound: setting up the queues or the interface failed ({:?}); the device is reset\n",
                dev.name(),
                e
            );
        })?;
        let m = mac.unwrap_or([0; 6]);
        let (rx, tx) = net.rings();
        pr_info!(
            "blanket_net: {}: {}: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}{}, mtu {}, rings rx {} tx {}, tx csum {}, tso4 {}, tso6 {}, rx csum {}, indirect {}, link status {}, control queue {} (rx filter {}, mac {}), queue pairs {} of {}, mergeable rx {}, rx tso4 {}, tso6 {}\n",
            dev.name(),
            net.name(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            if mac.is_some() { "" } else { " (device gave none: random MAC)" },
            mtu,
            rx,
            tx,
            caps.tx_csum,
            caps.tso4,
            caps.tso6,
            caps.rx_csum,
            caps.indirect,
            dev.has_feature(features::bit::NET_STATUS),
            dev.has_feature(features::bit::NET_CTRL_VQ),
            dev.has_feature(features::bit::NET_CTRL_RX),
            dev.has_feature(features::bit::NET_CTRL_MAC_ADDR),
            net.queue_pairs(),
            cfg.max_pairs.unwrap_or(1),
            caps.mergeable,
            caps.rx_tso4,
            caps.rx_tso6
        );
        Ok(KBox::new(NetDev { net }, GFP_KERNEL)?)
    }

    fn remove(&self, dev: &Device, data: KBox<NetDev>) {
        let name = CString::try_from_fmt(fmt!("{}", data.net.name())).ok();
        let name: &CStr = name.as_deref().unwrap_or(c"bnet?");
        let (rx_bad, tx_bad) = data.net.header_errors();
        let r = KBox::into_inner(data).net.close();
        if r.unaccounted != 0 {
            pr_err!(
                "blanket_net: {}: {} removed, but {} buffers are unaccounted for (DMA mappings leaked); please report\n",
                dev.name(),
                name,
                r.unaccounted
            );
        } else {
            pr_info!(
                "blanket_net: {}: {} removed; device reset, {} receive and {} transmit buffers taken back, 0 outstanding; header errors rx {} tx {}\n",
                dev.name(),
                name,
                r.rx_taken_back,
                r.tx_taken_back,
                rx_bad,
                tx_bad
            );
        }
    }
}
