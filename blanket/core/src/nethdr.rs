//! virtio-net packet headers and ring accounting for `blanket_net` (virtio 1.2 §5.1.6).
//!
//! Every packet on a virtio-net queue starts with a `virtio_net_hdr`. With VIRTIO_F_VERSION_1 (which the Blanket
//! drivers require, see [`super::features`]) it is always the 12-byte form with `num_buffers`, little endian:
//!
//! ```text
//! flags u8 | gso_type u8 | hdr_len le16 | gso_size le16 | csum_start le16 | csum_offset le16 | num_buffers le16
//! ```
//!
//! Transmit: the driver says whether the device must finish a partial checksum (`NEEDS_CSUM`, only with
//! VIRTIO_NET_F_CSUM) and whether the frame is a TCP segmentation-offload frame (only with HOST_TSO4/6).
//! Receive: the device says whether the checksum is already verified (`DATA_VALID`) or still partial
//! (`NEEDS_CSUM`), both only with GUEST_CSUM. With mergeable receive buffers (MRG_RXBUF) a packet spans
//! `num_buffers` ring buffers; without, `num_buffers` is ignored (devices need not write it) and a packet is one
//! buffer. Receive segmentation offload (GUEST_TSO4/6) is negotiated only together with GUEST_CSUM and
//! MRG_RXBUF: the device may then hand over one large TCP packet for many segments (`gso_type`, `gso_size`, with a
//! partial checksum), which the stack takes as a GSO packet. A header announcing anything else is a device error and
//! the packet is dropped.

use super::features::{bit, Features};

/// Length of the header in front of every packet (virtio_net_hdr_v1).
pub const HDR_LEN: usize = 12;

/// Header flags.
pub mod flags {
    /// csum_start/csum_offset hold a partial checksum to finish.
    pub const NEEDS_CSUM: u8 = 1;
    /// The checksum was verified (receive only).
    pub const DATA_VALID: u8 = 2;
}

/// Header `gso_type` values.
pub mod gso {
    /// Not a segmentation-offload frame.
    pub const NONE: u8 = 0;
    /// TCP over IPv4.
    pub const TCPV4: u8 = 1;
    /// TCP over IPv6.
    pub const TCPV6: u8 = 4;
    /// The TCP segments carry ECN (CWR must be kept on the first segment only).
    pub const ECN: u8 = 0x80;
}

/// Ethernet header + one VLAN tag: what a receive buffer needs beyond the MTU.
pub const ETH_OVERHEAD: u32 = 14 + 4;
/// Smallest MTU (Ethernet's minimum of IPv4 needs 68).
pub const MIN_MTU: u32 = 68;

/// What the negotiated features allow the driver to do with packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NetCaps {
    /// The device finishes partial checksums of transmitted frames (VIRTIO_NET_F_CSUM).
    pub tx_csum: bool,
    /// The device segments TCP/IPv4 frames (HOST_TSO4, needs CSUM).
    pub tso4: bool,
    /// The device segments TCP/IPv6 frames (HOST_TSO6, needs CSUM).
    pub tso6: bool,
    /// The device may hand over frames with a verified or partial checksum (GUEST_CSUM).
    pub rx_csum: bool,
    /// Indirect descriptors: a frame of any number of fragments takes one ring descriptor.
    pub indirect: bool,
    /// A received packet may span several buffers (MRG_RXBUF).
    pub mergeable: bool,
    /// The device may hand over TCP/IPv4 packets for many segments (GUEST_TSO4, with GUEST_CSUM and MRG_RXBUF).
    pub rx_tso4: bool,
    /// The same for TCP/IPv6 (GUEST_TSO6).
    pub rx_tso6: bool,
}

impl NetCaps {
    /// The capabilities of a device that negotiated `f`.
    pub const fn of(f: Features) -> Self {
        let tx_csum = f.has(bit::NET_CSUM);
        let rx_csum = f.has(bit::NET_GUEST_CSUM);
        let mergeable = f.has(bit::NET_MRG_RXBUF);
        Self {
            tx_csum,
            tso4: tx_csum && f.has(bit::NET_HOST_TSO4),
            tso6: tx_csum && f.has(bit::NET_HOST_TSO6),
            rx_csum,
            indirect: f.has(bit::RING_INDIRECT_DESC),
            mergeable,
            rx_tso4: rx_csum && mergeable && f.has(bit::NET_GUEST_TSO4),
            rx_tso6: rx_csum && mergeable && f.has(bit::NET_GUEST_TSO6),
        }
    }
}

/// Segmentation offload the kernel asked for on a transmitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxGso {
    /// An ordinary frame.
    None,
    /// TCP/IPv4 segmentation into `size`-byte payloads after `hdr_len` bytes of headers.
    Tcp4 {
        /// Payload bytes per segment (MSS).
        size: u16,
        /// Ethernet + IP + TCP header bytes.
        hdr_len: u16,
        /// ECN in use.
        ecn: bool,
    },
    /// TCP/IPv6, as [`TxGso::Tcp4`].
    Tcp6 {
        /// Payload bytes per segment (MSS).
        size: u16,
        /// Ethernet + IP + TCP header bytes.
        hdr_len: u16,
        /// ECN in use.
        ecn: bool,
    },
    /// A kind of segmentation the driver never advertises (UDP, tunnels, ...).
    Other,
}

/// A frame to transmit, as the kernel handed it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxMeta {
    /// A partial checksum to finish: (start from the Ethernet header, offset of the checksum field after start).
    pub csum: Option<(u16, u16)>,
    /// Segmentation offload.
    pub gso: TxGso,
    /// Frame length (Ethernet header onwards).
    pub len: u32,
}

/// Why a frame cannot be transmitted as it is (it is dropped and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// A partial checksum, but the device did not negotiate CSUM (the kernel should have finished it).
    CsumNotOffered,
    /// Segmentation the device did not negotiate.
    GsoNotOffered,
    /// A segmentation-offload frame without a partial checksum (the spec requires NEEDS_CSUM with GSO).
    GsoWithoutCsum,
    /// Checksum position beyond the frame.
    BadCsumOffsets,
}

fn put16(b: &mut [u8; HDR_LEN], at: usize, v: u16) {
    let [lo, hi] = v.to_le_bytes();
    if let Some(s) = b.get_mut(at..at + 2) {
        s[0] = lo;
        s[1] = hi;
    }
}

fn get16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// The header in front of a transmitted frame.
pub fn tx_header(caps: &NetCaps, m: &TxMeta) -> Result<[u8; HDR_LEN], TxError> {
    let mut h = [0u8; HDR_LEN];
    if let Some((start, off)) = m.csum {
        if !caps.tx_csum {
            return Err(TxError::CsumNotOffered);
        }
        // The 2-byte checksum field must lie inside the frame.
        if u32::from(start) + u32::from(off) + 2 > m.len {
            return Err(TxError::BadCsumOffsets);
        }
        h[0] = flags::NEEDS_CSUM;
        put16(&mut h, 6, start);
        put16(&mut h, 8, off);
    }
    let (ty, size, hdr_len, ecn) = match m.gso {
        TxGso::None => return Ok(h),
        TxGso::Other => return Err(TxError::GsoNotOffered),
        TxGso::Tcp4 { size, hdr_len, ecn } => {
            if !caps.tso4 {
                return Err(TxError::GsoNotOffered);
            }
            (gso::TCPV4, size, hdr_len, ecn)
        }
        TxGso::Tcp6 { size, hdr_len, ecn } => {
            if !caps.tso6 {
                return Err(TxError::GsoNotOffered);
            }
            (gso::TCPV6, size, hdr_len, ecn)
        }
    };
    if m.csum.is_none() {
        return Err(TxError::GsoWithoutCsum);
    }
    // ECN segmentation needs VIRTIO_NET_F_HOST_ECN, which is not negotiated: the driver never advertises
    // NETIF_F_TSO_ECN, so such a frame is a kernel inconsistency.
    if ecn {
        return Err(TxError::GsoNotOffered);
    }
    h[1] = ty;
    put16(&mut h, 2, hdr_len);
    put16(&mut h, 4, size);
    Ok(h)
}

/// The checksum state of a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxCsum {
    /// Nothing known: the stack verifies.
    None,
    /// The device verified it.
    Valid,
    /// A partial checksum (frame from a local sender on the provider's side): (start, offset) as on transmit.
    Partial(u16, u16),
}

/// Why a received frame is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// Shorter than the header plus an Ethernet header.
    Short,
    /// The device announced segmentation offload, which was not negotiated.
    UnexpectedGso,
    /// A checksum flag without GUEST_CSUM.
    UnexpectedCsum,
    /// Partial checksum position beyond the frame.
    BadCsumOffsets,
    /// A segmentation-offload packet without a segment size or without a partial checksum.
    BadGso,
    /// `num_buffers` 0, or more than [`MAX_RX_BUFFERS`].
    BadBufferCount,
}

/// Receive segmentation offload of a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxGso {
    /// One frame.
    None,
    /// TCP/IPv4 for segments of this many payload bytes.
    Tcp4(u16),
    /// TCP/IPv6 for segments of this many payload bytes.
    Tcp6(u16),
}

/// What the header of a received packet says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxInfo {
    /// Checksum state.
    pub csum: RxCsum,
    /// Segmentation offload.
    pub gso: RxGso,
    /// Ring buffers the packet spans, this one included (1 without MRG_RXBUF).
    pub buffers: u16,
}

/// Most buffers one received packet may span: a 64 KiB segmentation-offload packet in page-size buffers takes
/// 17; a device announcing more is in error.
pub const MAX_RX_BUFFERS: u16 = 64;

/// Parses the header of a received packet whose first buffer holds `len` bytes (header included): checksum,
/// segmentation offload and the number of buffers. Checksum positions are checked against the first buffer,
/// which holds every header of a packet that has one.
pub fn rx_packet(caps: &NetCaps, hdr: &[u8], len: u32) -> Result<RxInfo, RxError> {
    let csum = rx_header(caps, hdr, len)?;
    let size = get16(hdr, 4);
    let gso = match hdr[1] {
        gso::NONE => RxGso::None,
        gso::TCPV4 if caps.rx_tso4 => RxGso::Tcp4(size),
        gso::TCPV6 if caps.rx_tso6 => RxGso::Tcp6(size),
        _ => return Err(RxError::UnexpectedGso),
    };
    if gso != RxGso::None && (size == 0 || !matches!(csum, RxCsum::Partial(..))) {
        return Err(RxError::BadGso);
    }
    let buffers = if caps.mergeable { get16(hdr, 10) } else { 1 };
    if buffers == 0 || buffers > MAX_RX_BUFFERS {
        return Err(RxError::BadBufferCount);
    }
    Ok(RxInfo { csum, gso, buffers })
}

/// Parses the header of a received buffer of `len` bytes (header included).
pub fn rx_header(caps: &NetCaps, hdr: &[u8], len: u32) -> Result<RxCsum, RxError> {
    if hdr.len() < HDR_LEN || (len as usize) < HDR_LEN + 14 {
        return Err(RxError::Short);
    }
    let frame = len - HDR_LEN as u32;
    let gso_ok = match hdr[1] {
        gso::NONE => true,
        gso::TCPV4 => caps.rx_tso4,
        gso::TCPV6 => caps.rx_tso6,
        _ => false,
    };
    if !gso_ok {
        return Err(RxError::UnexpectedGso);
    }
    // num_buffers (bytes 10..12) means something only with MRG_RXBUF (see `rx_packet`): without, devices need not
    // write it (QEMU leaves it as it was in the buffer, i.e. whatever the memory held), so it is not read here.
    let fl = hdr[0];
    if fl & (flags::NEEDS_CSUM | flags::DATA_VALID) != 0 && !caps.rx_csum {
        return Err(RxError::UnexpectedCsum);
    }
    if fl & flags::NEEDS_CSUM != 0 {
        let (start, off) = (get16(hdr, 6), get16(hdr, 8));
        if u32::from(start) + u32::from(off) + 2 > frame {
            return Err(RxError::BadCsumOffsets);
        }
        return Ok(RxCsum::Partial(start, off));
    }
    if fl & flags::DATA_VALID != 0 {
        return Ok(RxCsum::Valid);
    }
    Ok(RxCsum::None)
}

/// Kernel netdev offloads to advertise (`NETIF_F_*`), as bits of [`Offloads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Offloads {
    /// Scatter-gather transmit.
    pub sg: bool,
    /// Checksum offload on transmit.
    pub hw_csum: bool,
    /// TCP/IPv4 segmentation.
    pub tso4: bool,
    /// TCP/IPv6 segmentation.
    pub tso6: bool,
    /// Receive checksum offload.
    pub rx_csum: bool,
}

impl Offloads {
    /// What to advertise for `caps`. Scatter-gather needs checksum offload (the kernel would otherwise have to
    /// linearise every frame to checksum it in software, so it turns SG off by itself without HW_CSUM).
    pub const fn of(caps: &NetCaps) -> Self {
        Self {
            sg: caps.tx_csum,
            hw_csum: caps.tx_csum,
            tso4: caps.tso4,
            tso6: caps.tso6,
            rx_csum: caps.rx_csum,
        }
    }
}

/// Receive buffer size for `mtu`: header + Ethernet frame with one VLAN tag.
pub const fn rx_buf_len(mtu: u32) -> u32 {
    HDR_LEN as u32 + ETH_OVERHEAD + mtu
}

/// The MTU to use: the device's (VIRTIO_NET_F_MTU, if given and within bounds), else 1500.
pub const fn choose_mtu(device_mtu: Option<u16>) -> u32 {
    match device_mtu {
        Some(m) if (m as u32) >= MIN_MTU && (m as u32) <= 1500 => m as u32,
        _ => 1500,
    }
}

/// Most queue pairs blanket_net drives (virtio allows 0x8000; more than one per CPU buys nothing).
pub const MAX_QUEUE_PAIRS: u16 = 16;

/// Queue pairs to drive: the device's `max_virtqueue_pairs` (`None` without `VIRTIO_NET_F_MQ`; a value outside
/// 1..=0x8000, which the spec forbids, counts as one), at most one per online CPU and [`MAX_QUEUE_PAIRS`].
pub const fn queue_pairs(device_max: Option<u16>, cpus: u32) -> u16 {
    let dev = match device_max {
        Some(m) if m >= 1 && m <= 0x8000 => m,
        _ => 1,
    };
    let cpus = if cpus == 0 {
        1
    } else if cpus > MAX_QUEUE_PAIRS as u32 {
        MAX_QUEUE_PAIRS
    } else {
        cpus as u16
    };
    let n = if dev < cpus { dev } else { cpus };
    if n > MAX_QUEUE_PAIRS {
        MAX_QUEUE_PAIRS
    } else {
        n
    }
}

/// Ring descriptors one transmitted frame may need, header included: one per fragment plus the linear part and the
/// header. Also with indirect descriptors: the virtio core allocates the indirect table with GFP_ATOMIC and, when that
/// fails, falls back to one ring descriptor per buffer. The transmit queue is stopped while fewer are free.
pub const fn tx_descs_needed(max_frags: u32) -> u32 {
    max_frags + 2
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_pairs_follow_device_and_cpus() {
        use super::{queue_pairs, MAX_QUEUE_PAIRS};
        assert_eq!(queue_pairs(None, 8), 1);
        assert_eq!(queue_pairs(Some(4), 2), 2);
        assert_eq!(queue_pairs(Some(2), 8), 2);
        assert_eq!(queue_pairs(Some(0), 8), 1);
        assert_eq!(queue_pairs(Some(0x8001), 8), 1);
        assert_eq!(queue_pairs(Some(0x8000), 64), MAX_QUEUE_PAIRS);
        assert_eq!(queue_pairs(Some(3), 0), 1);
    }

    use super::*;

    fn caps_all() -> NetCaps {
        NetCaps {
            tx_csum: true,
            tso4: true,
            tso6: true,
            rx_csum: true,
            indirect: true,
            mergeable: false,
            rx_tso4: false,
            rx_tso6: false,
        }
    }

    fn caps_mrg() -> NetCaps {
        NetCaps {
            mergeable: true,
            rx_tso4: true,
            rx_tso6: true,
            ..caps_all()
        }
    }

    #[test]
    fn rx_packets_with_mergeable_buffers_and_gso() {
        let mut h = [0u8; HDR_LEN];
        h[10] = 3;
        let one = RxInfo {
            csum: RxCsum::None,
            gso: RxGso::None,
            buffers: 3,
        };
        assert_eq!(rx_packet(&caps_mrg(), &h, 4096), Ok(one));
        // Without MRG_RXBUF the field is not read.
        assert_eq!(rx_packet(&caps_all(), &h, 4096).map(|i| i.buffers), Ok(1));
        h[10] = 0;
        assert_eq!(
            rx_packet(&caps_mrg(), &h, 4096),
            Err(RxError::BadBufferCount)
        );
        h[10] = 65;
        assert_eq!(
            rx_packet(&caps_mrg(), &h, 4096),
            Err(RxError::BadBufferCount)
        );
        // A 64 KiB TCP/IPv4 packet: partial checksum after the IP header, MSS 1448.
        let mut g = [0u8; HDR_LEN];
        g[0] = flags::NEEDS_CSUM;
        g[1] = gso::TCPV4;
        g[4..6].copy_from_slice(&1448u16.to_le_bytes());
        g[6] = 34;
        g[8] = 16;
        g[10] = 17;
        let info = rx_packet(&caps_mrg(), &g, 4096).unwrap();
        assert_eq!(info.gso, RxGso::Tcp4(1448));
        assert_eq!((info.csum, info.buffers), (RxCsum::Partial(34, 16), 17));
        g[1] = gso::TCPV6;
        assert_eq!(
            rx_packet(&caps_mrg(), &g, 4096).map(|i| i.gso),
            Ok(RxGso::Tcp6(1448))
        );
        // Not negotiated, no size, no partial checksum, ECN or UDP: refused.
        assert_eq!(
            rx_packet(&caps_all(), &g, 4096),
            Err(RxError::UnexpectedGso)
        );
        g[4] = 0;
        g[5] = 0;
        assert_eq!(rx_packet(&caps_mrg(), &g, 4096), Err(RxError::BadGso));
        g[4..6].copy_from_slice(&1448u16.to_le_bytes());
        g[0] = flags::DATA_VALID;
        assert_eq!(rx_packet(&caps_mrg(), &g, 4096), Err(RxError::BadGso));
        g[0] = flags::NEEDS_CSUM;
        g[1] = gso::TCPV4 | gso::ECN;
        assert_eq!(
            rx_packet(&caps_mrg(), &g, 4096),
            Err(RxError::UnexpectedGso)
        );
        g[1] = 3; // UDP
        assert_eq!(
            rx_packet(&caps_mrg(), &g, 4096),
            Err(RxError::UnexpectedGso)
        );
    }

    #[test]
    fn rx_tso_needs_guest_csum_and_mergeable_buffers() {
        let all = [
            bit::NET_GUEST_CSUM,
            bit::NET_MRG_RXBUF,
            bit::NET_GUEST_TSO4,
            bit::NET_GUEST_TSO6,
        ];
        let c = NetCaps::of(Features::of(&all));
        assert!(c.rx_tso4 && c.rx_tso6 && c.mergeable);
        let c = NetCaps::of(Features::of(&[bit::NET_MRG_RXBUF, bit::NET_GUEST_TSO4]));
        assert!(!c.rx_tso4 && c.mergeable);
        let c = NetCaps::of(Features::of(&[bit::NET_GUEST_CSUM, bit::NET_GUEST_TSO4]));
        assert!(!c.rx_tso4 && !c.mergeable);
    }

    #[test]
    fn plain_frame_has_zero_header() {
        let m = TxMeta {
            csum: None,
            gso: TxGso::None,
            len: 60,
        };
        assert_eq!(tx_header(&NetCaps::default(), &m), Ok([0u8; HDR_LEN]));
    }

    #[test]
    fn partial_checksum_header() {
        let m = TxMeta {
            csum: Some((34, 16)),
            gso: TxGso::None,
            len: 100,
        };
        let h = tx_header(&caps_all(), &m).unwrap();
        assert_eq!(h, [1, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0, 0]);
        assert_eq!(
            tx_header(&NetCaps::default(), &m),
            Err(TxError::CsumNotOffered)
        );
        let bad = TxMeta {
            csum: Some((90, 16)),
            gso: TxGso::None,
            len: 100,
        };
        assert_eq!(tx_header(&caps_all(), &bad), Err(TxError::BadCsumOffsets));
    }

    #[test]
    fn tso_header() {
        let m = TxMeta {
            csum: Some((34, 16)),
            gso: TxGso::Tcp4 {
                size: 1448,
                hdr_len: 66,
                ecn: false,
            },
            len: 64000,
        };
        let h = tx_header(&caps_all(), &m).unwrap();
        assert_eq!(h, [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]);
        let c = NetCaps {
            tso4: false,
            ..caps_all()
        };
        assert_eq!(tx_header(&c, &m), Err(TxError::GsoNotOffered));
        let nocsum = TxMeta { csum: None, ..m };
        assert_eq!(
            tx_header(&caps_all(), &nocsum),
            Err(TxError::GsoWithoutCsum)
        );
        let ecn = TxMeta {
            gso: TxGso::Tcp4 {
                size: 1448,
                hdr_len: 66,
                ecn: true,
            },
            ..m
        };
        assert_eq!(tx_header(&caps_all(), &ecn), Err(TxError::GsoNotOffered));
        let v6 = TxMeta {
            gso: TxGso::Tcp6 {
                size: 1428,
                hdr_len: 86,
                ecn: false,
            },
            csum: Some((54, 16)),
            len: 9000,
        };
        assert_eq!(tx_header(&caps_all(), &v6).map(|h| h[1]), Ok(gso::TCPV6));
        let other = TxMeta {
            gso: TxGso::Other,
            ..m
        };
        assert_eq!(tx_header(&caps_all(), &other), Err(TxError::GsoNotOffered));
    }

    #[test]
    fn rx_headers() {
        let mut h = [0u8; HDR_LEN];
        h[10] = 1;
        assert_eq!(
            rx_header(&NetCaps::default(), &h, 12 + 60),
            Ok(RxCsum::None)
        );
        assert_eq!(
            rx_header(&NetCaps::default(), &h, 12 + 10),
            Err(RxError::Short)
        );
        h[0] = flags::DATA_VALID;
        assert_eq!(
            rx_header(&NetCaps::default(), &h, 72),
            Err(RxError::UnexpectedCsum)
        );
        assert_eq!(rx_header(&caps_all(), &h, 72), Ok(RxCsum::Valid));
        h[0] = flags::NEEDS_CSUM;
        h[6] = 34;
        h[8] = 6;
        assert_eq!(rx_header(&caps_all(), &h, 72), Ok(RxCsum::Partial(34, 6)));
        h[6] = 60;
        assert_eq!(rx_header(&caps_all(), &h, 72), Err(RxError::BadCsumOffsets));
        let mut g = [0u8; HDR_LEN];
        g[1] = gso::TCPV4;
        assert_eq!(
            rx_header(&caps_all(), &g, 1000),
            Err(RxError::UnexpectedGso)
        );
        // num_buffers is not written by devices without MRG_RXBUF: whatever it holds is ignored.
        let mut nb = [0u8; HDR_LEN];
        nb[10] = 0xa5;
        nb[11] = 0x5a;
        assert_eq!(rx_header(&caps_all(), &nb, 1000), Ok(RxCsum::None));
    }

    #[test]
    fn caps_from_features() {
        let f = Features::of(&[bit::NET_HOST_TSO4, bit::NET_GUEST_CSUM]);
        let c = NetCaps::of(f);
        assert!(!c.tso4 && !c.tx_csum && c.rx_csum);
        let f = Features::of(&[bit::NET_CSUM, bit::NET_HOST_TSO4, bit::RING_INDIRECT_DESC]);
        let c = NetCaps::of(f);
        assert!(c.tso4 && c.tx_csum && !c.tso6 && c.indirect);
        assert_eq!(
            Offloads::of(&c),
            Offloads {
                sg: true,
                hw_csum: true,
                tso4: true,
                tso6: false,
                rx_csum: false
            }
        );
    }

    #[test]
    fn ring_accounting() {
        assert_eq!(tx_descs_needed(17), 19);
        assert_eq!(rx_buf_len(1500), 1530);
        assert_eq!(choose_mtu(None), 1500);
        assert_eq!(choose_mtu(Some(1400)), 1400);
        assert_eq!(choose_mtu(Some(20)), 1500);
    }
}
