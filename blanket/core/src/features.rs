//! virtio feature negotiation for the Blanket drivers.
//!
//! A Blanket Dom0 is a Xen PV domain: its "physical" frame numbers are not the provider's. §4.2.2 says the only
//! change virtio drivers need there is a correct PFN-to-MFN translation of every address handed to the device. We
//! get it by always going through the kernel's DMA API (swiotlb-xen translates), and we refuse devices that would
//! make that impossible: a modern device (VERSION_1) is required, and when the device offers ACCESS_PLATFORM
//! we must accept it (virtio 1.2 §6.1: a driver that does not accept it may be refused).

/// Feature bits (virtio 1.2 §5.1.3, §5.2.3, §6).
pub mod bit {
    /// net: device handles packets with partial checksum.
    pub const NET_CSUM: u32 = 0;
    /// net: driver handles packets with partial checksum.
    pub const NET_GUEST_CSUM: u32 = 1;
    /// net: device reports its MTU.
    pub const NET_MTU: u32 = 3;
    /// net: device has a MAC address.
    pub const NET_MAC: u32 = 5;
    /// net: driver can receive TSOv4.
    pub const NET_GUEST_TSO4: u32 = 7;
    /// net: driver can receive TSOv6.
    pub const NET_GUEST_TSO6: u32 = 8;
    /// net: driver can receive TSO with ECN (not implemented: never accepted).
    pub const NET_GUEST_ECN: u32 = 9;
    /// net: device can receive TSOv4.
    pub const NET_HOST_TSO4: u32 = 11;
    /// net: device can receive TSOv6.
    pub const NET_HOST_TSO6: u32 = 12;
    /// net: driver can merge receive buffers.
    pub const NET_MRG_RXBUF: u32 = 15;
    /// net: configuration status field is available.
    pub const NET_STATUS: u32 = 16;
    /// net: control virtqueue.
    pub const NET_CTRL_VQ: u32 = 17;
    /// net: receive modes (promiscuous, all-multicast) and the MAC filter table through the control queue.
    pub const NET_CTRL_RX: u32 = 18;
    /// net: the primary MAC address can be set through the control queue.
    pub const NET_CTRL_MAC_ADDR: u32 = 23;
    /// net: multiqueue with automatic receive steering.
    pub const NET_MQ: u32 = 22;
    /// blk: maximum segment size is in config.
    pub const BLK_SIZE_MAX: u32 = 1;
    /// blk: maximum number of segments is in config.
    pub const BLK_SEG_MAX: u32 = 2;
    /// blk: device is read-only.
    pub const BLK_RO: u32 = 5;
    /// blk: block size is in config.
    pub const BLK_BLK_SIZE: u32 = 6;
    /// blk: cache flush command.
    pub const BLK_FLUSH: u32 = 9;
    /// blk: multiqueue.
    pub const BLK_MQ: u32 = 12;
    /// blk: discard command.
    pub const BLK_DISCARD: u32 = 13;
    /// blk: write-zeroes command.
    pub const BLK_WRITE_ZEROES: u32 = 14;
    /// Ring: indirect descriptors.
    pub const RING_INDIRECT_DESC: u32 = 28;
    /// Ring: used/avail event index.
    pub const RING_EVENT_IDX: u32 = 29;
    /// Device complies with virtio 1.x.
    pub const VERSION_1: u32 = 32;
    /// Device needs the platform's DMA translation (IOMMU / Xen grant or swiotlb-xen).
    pub const ACCESS_PLATFORM: u32 = 33;
}

/// A set of feature bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Features(pub u64);

impl Features {
    /// The set holding exactly `bits`.
    pub const fn of(bits: &[u32]) -> Self {
        let mut v = 0u64;
        let mut i = 0;
        while i < bits.len() {
            if bits[i] < 64 {
                v |= 1u64 << bits[i];
            }
            i += 1;
        }
        Self(v)
    }

    /// Whether `bit` is in the set (bits beyond 63 never are).
    pub const fn has(self, bit: u32) -> bool {
        bit < 64 && self.0 & (1u64 << bit) != 0
    }

    /// The bits of both sets.
    pub const fn and(self, o: Self) -> Self {
        Self(self.0 & o.0)
    }
}

/// Which Blanket driver negotiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// virtio-net (device id 1).
    Net,
    /// virtio-blk (device id 2).
    Blk,
}

/// Why a device cannot be driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegotiationError {
    /// The device is legacy-only (no VERSION_1): its queue addresses are guest-physical PFNs, which a PV Dom0
    /// cannot give correctly.
    Legacy,
}

impl NegotiationError {
    /// The errno a probe returns.
    pub const fn errno(self) -> i32 {
        match self {
            Self::Legacy => 19, // ENODEV
        }
    }

    /// One line for the kernel log, telling the operator what to do.
    pub const fn message(self) -> &'static str {
        match self {
            Self::Legacy => "device offers no VIRTIO_F_VERSION_1; configure the provider VM with modern virtio (e.g. QEMU disable-legacy=on or the default for virtio-*-pci-non-transitional)",
        }
    }
}

/// Features the Blanket driver of `kind` can use.
pub const fn supported(kind: DeviceKind) -> Features {
    use bit::*;
    match kind {
        // What blanket_net implements today: one queue pair, receive buffers of one whole frame (no mergeable
        // buffers, no receive segmentation), transmit checksum and TCP segmentation offload, receive checksum
        // offload, link state from the device's status field, the control queue for the receive filter and the
        // MAC address, several queue pairs (MQ), mergeable receive buffers and receive segmentation offload
        // (GUEST_TSO4/6, only with GUEST_CSUM and MRG_RXBUF).
        DeviceKind::Net => Features::of(&[
            NET_CSUM,
            NET_GUEST_CSUM,
            NET_MTU,
            NET_MAC,
            NET_STATUS,
            NET_CTRL_VQ,
            NET_CTRL_RX,
            NET_CTRL_MAC_ADDR,
            NET_MQ,
            NET_MRG_RXBUF,
            NET_GUEST_TSO4,
            NET_GUEST_TSO6,
            NET_HOST_TSO4,
            NET_HOST_TSO6,
            RING_INDIRECT_DESC,
            RING_EVENT_IDX,
            VERSION_1,
            ACCESS_PLATFORM,
        ]),
        // What blanket_blk implements today: one request queue per hardware queue (MQ), flush, discard and
        // write-zeroes.
        DeviceKind::Blk => Features::of(&[
            BLK_MQ,
            BLK_DISCARD,
            BLK_WRITE_ZEROES,
            BLK_SIZE_MAX,
            BLK_SEG_MAX,
            BLK_RO,
            BLK_BLK_SIZE,
            BLK_FLUSH,
            RING_INDIRECT_DESC,
            RING_EVENT_IDX,
            VERSION_1,
            ACCESS_PLATFORM,
        ]),
    }
}

/// First transport feature bit (virtio 1.2 §6): bits below it are device-specific.
pub const TRANSPORT_FIRST: u32 = 24;

/// The device-specific bits of [`supported`] (those below [`TRANSPORT_FIRST`]), ascending, for the virtio core's
/// driver feature table: the first `n` entries of the array, `n` returned alongside. The core adds the transport
/// bits (VERSION_1, ACCESS_PLATFORM, ring features) the device offers by itself.
pub const fn device_table(kind: DeviceKind) -> ([u32; 24], usize) {
    let sup = supported(kind);
    let mut out = [0u32; 24];
    let mut n = 0;
    let mut b = 0;
    while b < TRANSPORT_FIRST {
        if sup.has(b) && n < out.len() {
            out[n] = b;
            n += 1;
        }
        b += 1;
    }
    (out, n)
}

/// The features to accept from a device offering `offered`, or why it cannot be driven.
///
/// Unknown offered bits are ignored (never accepted). Multiqueue, the receive filter and the MAC command need the
/// control queue (virtio 1.2 §5.1.3.1), so MQ, CTRL_RX and CTRL_MAC_ADDR without CTRL_VQ are dropped; TCP segmentation offload needs checksum offload (virtio 1.2 §5.1.3.1: the driver
/// must not accept HOST_TSO4/6 without CSUM), so the TSO bits are dropped without CSUM.
pub fn negotiate(kind: DeviceKind, offered: Features) -> Result<Features, NegotiationError> {
    if !offered.has(bit::VERSION_1) {
        return Err(NegotiationError::Legacy);
    }
    let mut acc = offered.and(supported(kind));
    if kind == DeviceKind::Net && !acc.has(bit::NET_CTRL_VQ) {
        acc.0 &= !((1u64 << bit::NET_MQ)
            | (1u64 << bit::NET_CTRL_RX)
            | (1u64 << bit::NET_CTRL_MAC_ADDR));
    }
    if kind == DeviceKind::Net && !(acc.has(bit::NET_GUEST_CSUM) && acc.has(bit::NET_MRG_RXBUF)) {
        // Receive segmentation needs receive checksum offload (virtio 1.2 §5.1.3.1), and blanket_net receives
        // large packets only in mergeable buffers.
        acc.0 &= !((1u64 << bit::NET_GUEST_TSO4) | (1u64 << bit::NET_GUEST_TSO6));
    }
    if kind == DeviceKind::Net && !acc.has(bit::NET_CSUM) {
        acc.0 &= !((1u64 << bit::NET_HOST_TSO4) | (1u64 << bit::NET_HOST_TSO6));
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_device_is_refused() {
        assert_eq!(
            negotiate(DeviceKind::Blk, Features::of(&[bit::BLK_FLUSH])),
            Err(NegotiationError::Legacy)
        );
    }

    #[test]
    fn access_platform_is_accepted_when_offered() {
        let off = Features::of(&[bit::VERSION_1, bit::ACCESS_PLATFORM, bit::BLK_FLUSH]);
        let acc = negotiate(DeviceKind::Blk, off).unwrap();
        assert!(acc.has(bit::ACCESS_PLATFORM));
        assert!(acc.has(bit::BLK_FLUSH));
    }

    #[test]
    fn unknown_bits_are_never_accepted() {
        let off = Features(u64::MAX);
        for kind in [DeviceKind::Net, DeviceKind::Blk] {
            let acc = negotiate(kind, off).unwrap();
            assert_eq!(acc.0 & !supported(kind).0, 0);
        }
    }

    #[test]
    fn net_accepts_only_what_blanket_net_implements() {
        let off = Features::of(&[
            bit::VERSION_1,
            bit::NET_MQ,
            bit::NET_CTRL_VQ,
            bit::NET_MRG_RXBUF,
            bit::NET_GUEST_TSO4,
            bit::NET_GUEST_ECN,
            bit::NET_STATUS,
            bit::NET_CSUM,
            bit::NET_HOST_TSO4,
            bit::NET_MAC,
        ]);
        let acc = negotiate(DeviceKind::Net, off).unwrap();
        // GUEST_TSO4 goes: no GUEST_CSUM offered; GUEST_ECN is not implemented.
        assert_eq!(
            acc,
            Features::of(&[
                bit::VERSION_1,
                bit::NET_CSUM,
                bit::NET_HOST_TSO4,
                bit::NET_MAC,
                bit::NET_STATUS,
                bit::NET_CTRL_VQ,
                bit::NET_MQ,
                bit::NET_MRG_RXBUF
            ])
        );
    }

    #[test]
    fn net_control_commands_need_the_control_queue() {
        let cmds = [
            bit::VERSION_1,
            bit::NET_CTRL_RX,
            bit::NET_CTRL_MAC_ADDR,
            bit::NET_MQ,
        ];
        let acc = negotiate(DeviceKind::Net, Features::of(&cmds)).unwrap();
        assert_eq!(acc, Features::of(&[bit::VERSION_1]));
        let with_vq = [
            bit::VERSION_1,
            bit::NET_CTRL_VQ,
            bit::NET_CTRL_RX,
            bit::NET_CTRL_MAC_ADDR,
            bit::NET_MQ,
        ];
        let acc = negotiate(DeviceKind::Net, Features::of(&with_vq)).unwrap();
        assert_eq!(acc, Features::of(&with_vq));
    }

    #[test]
    fn net_tso_needs_csum() {
        let off = Features::of(&[bit::VERSION_1, bit::NET_HOST_TSO4, bit::NET_HOST_TSO6]);
        let acc = negotiate(DeviceKind::Net, off).unwrap();
        assert!(!acc.has(bit::NET_HOST_TSO4) && !acc.has(bit::NET_HOST_TSO6));
    }

    #[test]
    fn device_table_lists_device_bits_only() {
        let (t, n) = device_table(DeviceKind::Blk);
        assert_eq!(
            &t[..n],
            &[
                bit::BLK_SIZE_MAX,
                bit::BLK_SEG_MAX,
                bit::BLK_RO,
                bit::BLK_BLK_SIZE,
                bit::BLK_FLUSH,
                bit::BLK_MQ,
                bit::BLK_DISCARD,
                bit::BLK_WRITE_ZEROES
            ]
        );
        let (t, n) = device_table(DeviceKind::Net);
        assert!(t[..n]
            .iter()
            .all(|&b| b < TRANSPORT_FIRST && supported(DeviceKind::Net).has(b)));
        assert!(t[..n].contains(&bit::NET_MAC) && !t[..n].contains(&bit::NET_GUEST_ECN));
    }

    #[test]
    fn blk_accepts_indirect_mq_discard_and_write_zeroes_but_not_unimplemented_bits() {
        let off = Features::of(&[
            bit::VERSION_1,
            bit::RING_INDIRECT_DESC,
            bit::BLK_MQ,
            bit::BLK_DISCARD,
            bit::BLK_WRITE_ZEROES,
            // VIRTIO_BLK_F_SECURE_ERASE (16) and VIRTIO_BLK_F_ZONED (17): not implemented, never accepted.
            16,
            17,
        ]);
        let acc = negotiate(DeviceKind::Blk, off).unwrap();
        assert!(acc.has(bit::RING_INDIRECT_DESC) && acc.has(bit::BLK_MQ));
        assert!(acc.has(bit::BLK_DISCARD) && acc.has(bit::BLK_WRITE_ZEROES));
        assert!(!acc.has(16) && !acc.has(17));
    }

    #[test]
    fn bits_above_63_are_not_in_any_set() {
        assert!(!Features(u64::MAX).has(64));
        assert_eq!(Features::of(&[70]), Features(0));
    }
}
