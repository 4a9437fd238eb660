//! virtio-blk request layout (virtio 1.2 §5.2.6): a device-readable header, the data segments (device-writable
//! for reads), and a one-byte device-writable status. The driver builds the descriptor chain from this plan.

/// Request types.
pub mod req {
    /// Read.
    pub const IN: u32 = 0;
    /// Write.
    pub const OUT: u32 = 1;
    /// Cache flush.
    pub const FLUSH: u32 = 4;
    /// Discard.
    pub const DISCARD: u32 = 11;
    /// Write zeroes.
    pub const WRITE_ZEROES: u32 = 13;
}

/// The block operation the kernel asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `len` bytes at `sector`.
    Read,
    /// Write.
    Write,
    /// Flush the device's volatile cache.
    Flush,
}

/// An operation on ranges of sectors rather than on data: its payload is a list of [`Range`]s ([`plan_ranges`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    /// Discard (trim): the device may forget the ranges.
    Discard,
    /// Write zeroes over the ranges; `unmap`: the device may deallocate them (reads still return zeroes). The block
    /// layer says "no unmap" when the caller must keep the space allocated (`REQ_NOUNMAP`).
    WriteZeroes {
        /// The caller allows deallocation.
        unmap: bool,
    },
}

/// Why a request cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqError {
    /// More data segments than the queue allows (after header and status).
    TooManySegments,
    /// The device did not negotiate the feature this operation needs.
    Unsupported,
    /// Zero-length read/write or a length that is not a multiple of 512.
    BadLength,
    /// The device is read-only.
    ReadOnly,
}

impl ReqError {
    /// The errno the request completes with.
    pub const fn errno(self) -> i32 {
        match self {
            Self::TooManySegments => 7, // E2BIG
            Self::Unsupported => 95,    // EOPNOTSUPP
            Self::BadLength => 22,      // EINVAL
            Self::ReadOnly => 30,       // EROFS
        }
    }
}

/// The header the device reads first (little endian on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// One of [`req`].
    pub type_: u32,
    /// Sector (512 bytes) the request starts at.
    pub sector: u64,
}

impl Header {
    /// The 16-byte wire form: type (le32), reserved (le32), sector (le64).
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        let t = self.type_.to_le_bytes();
        let s = self.sector.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            b[i] = t[i];
            i += 1;
        }
        let mut j = 0;
        while j < 8 {
            b[8 + j] = s[j];
            j += 1;
        }
        b
    }
}

/// What the device accepts in one discard or write-zeroes request (from its configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    /// Sectors per range (and per request: the block layer's limit is per request, the device's per range).
    pub max_sectors: u32,
    /// Ranges per request (1..=[`MAX_RANGES`]).
    pub max_ranges: u32,
}

/// What the device negotiated that requests depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevCaps {
    /// FLUSH negotiated.
    pub flush: bool,
    /// DISCARD negotiated, with its limits.
    pub discard: Option<RangeLimits>,
    /// WRITE_ZEROES negotiated, with its limits.
    pub write_zeroes: Option<RangeLimits>,
    /// RO negotiated.
    pub read_only: bool,
    /// Descriptors per chain the queue accepts (the ring size, or seg_max + 2).
    pub max_descs: u16,
}

/// The descriptor chain of one request: header, `data_segs` data descriptors (device-writable iff
/// `data_device_writes`), status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The header to send.
    pub header: Header,
    /// Data descriptors between header and status.
    pub data_segs: u16,
    /// Whether the device writes the data (reads).
    pub data_device_writes: bool,
}

impl Plan {
    /// Descriptors the chain uses.
    pub const fn descs(&self) -> u16 {
        self.data_segs + 2
    }
}

/// Plans a request of `op` at `sector` with `segs` data segments totalling `len` bytes.
pub fn plan(caps: &DevCaps, op: Op, sector: u64, segs: u16, len: u64) -> Result<Plan, ReqError> {
    let (type_, needs_data, writes) = match op {
        Op::Read => (req::IN, true, true),
        Op::Write => {
            if caps.read_only {
                return Err(ReqError::ReadOnly);
            }
            (req::OUT, true, false)
        }
        Op::Flush => {
            if !caps.flush {
                return Err(ReqError::Unsupported);
            }
            (req::FLUSH, false, false)
        }
    };
    if needs_data && (segs == 0 || len == 0 || !len.is_multiple_of(512)) {
        return Err(ReqError::BadLength);
    }
    let data_segs = if needs_data { segs } else { 0 };
    if u32::from(data_segs) + 2 > u32::from(caps.max_descs) {
        return Err(ReqError::TooManySegments);
    }
    Ok(Plan {
        header: Header { type_, sector },
        data_segs,
        data_device_writes: writes,
    })
}

/// One range of a discard or write-zeroes request (virtio 1.2 §5.2.6, `struct virtio_blk_discard_write_zeroes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    /// First sector (512 bytes).
    pub sector: u64,
    /// Number of sectors.
    pub sectors: u32,
}

/// Bytes of one encoded [`Range`]: sector (le64), num_sectors (le32), flags (le32).
pub const RANGE_LEN: usize = 16;
/// Most ranges the driver puts in one request (its per-slot payload buffer holds this many).
pub const MAX_RANGES: u32 = 8;
/// Bytes of the largest payload: [`MAX_RANGES`] encoded ranges.
pub const MAX_PAYLOAD: usize = MAX_RANGES as usize * RANGE_LEN;
/// Range flag: the device may deallocate (write-zeroes only; discard ranges carry no flags).
pub const RANGE_FLAG_UNMAP: u32 = 1;

/// The limits of discard or write-zeroes from the device's configuration: `max_sectors` per range (0: no limit
/// given, taken as the largest the block layer can express) and `max_seg` ranges per request (0 is read as 1;
/// capped at [`MAX_RANGES`]).
pub const fn range_limits(max_sectors: u32, max_seg: u32) -> RangeLimits {
    let max_ranges = if max_seg == 0 {
        1
    } else if max_seg > MAX_RANGES {
        MAX_RANGES
    } else {
        max_seg
    };
    RangeLimits {
        max_sectors: if max_sectors == 0 {
            u32::MAX
        } else {
            max_sectors
        },
        max_ranges,
    }
}

/// Discard granularity in bytes: the device's `discard_sector_alignment` (sectors) if given and at least one
/// logical block, else the logical block size.
pub const fn discard_granularity(alignment_sectors: u32, logical_block_size: u32) -> u32 {
    let bytes = alignment_sectors.saturating_mul(512);
    if bytes < logical_block_size {
        logical_block_size
    } else {
        bytes
    }
}

/// Plans a discard or write-zeroes request over `ranges` and encodes its payload into `payload`. Returns the plan
/// (header, one device-readable payload descriptor, status) and the payload's length in bytes.
pub fn plan_ranges(
    caps: &DevCaps,
    op: RangeOp,
    ranges: &[Range],
    payload: &mut [u8; MAX_PAYLOAD],
) -> Result<(Plan, usize), ReqError> {
    let (type_, lim, flags) = match op {
        RangeOp::Discard => (req::DISCARD, caps.discard, 0),
        RangeOp::WriteZeroes { unmap } => (
            req::WRITE_ZEROES,
            caps.write_zeroes,
            if unmap { RANGE_FLAG_UNMAP } else { 0 },
        ),
    };
    let Some(lim) = lim else {
        return Err(ReqError::Unsupported);
    };
    if caps.read_only {
        return Err(ReqError::ReadOnly);
    }
    if ranges.is_empty() {
        return Err(ReqError::BadLength);
    }
    if ranges.len() > lim.max_ranges as usize || ranges.len() > MAX_RANGES as usize {
        return Err(ReqError::TooManySegments);
    }
    if caps.max_descs < 3 {
        return Err(ReqError::TooManySegments);
    }
    for (r, out) in ranges.iter().zip(payload.chunks_exact_mut(RANGE_LEN)) {
        if r.sectors == 0
            || r.sectors > lim.max_sectors
            || r.sector.checked_add(u64::from(r.sectors)).is_none()
        {
            return Err(ReqError::BadLength);
        }
        let (s, rest) = out.split_at_mut(8);
        let (n, f) = rest.split_at_mut(4);
        s.copy_from_slice(&r.sector.to_le_bytes());
        n.copy_from_slice(&r.sectors.to_le_bytes());
        f.copy_from_slice(&flags.to_le_bytes());
    }
    let plan = Plan {
        header: Header { type_, sector: 0 },
        data_segs: 1,
        data_device_writes: false,
    };
    Ok((plan, ranges.len() * RANGE_LEN))
}

/// Status byte values the device writes (virtio 1.2 §5.2.6).
pub mod status {
    /// Success.
    pub const OK: u8 = 0;
    /// Device or driver error.
    pub const IOERR: u8 = 1;
    /// Request unsupported by the device.
    pub const UNSUPP: u8 = 2;
}

/// A request the device did not complete successfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusError {
    /// VIRTIO_BLK_S_IOERR.
    IoErr,
    /// VIRTIO_BLK_S_UNSUPP.
    Unsupported,
    /// A status byte the specification does not define (0xff: the device wrote none).
    Unknown(u8),
}

impl StatusError {
    /// The errno the request completes with.
    pub const fn errno(self) -> i32 {
        match self {
            Self::IoErr | Self::Unknown(_) => 5, // EIO
            Self::Unsupported => 95,             // EOPNOTSUPP
        }
    }
}

/// What a completed request's status byte means.
pub const fn check_status(s: u8) -> Result<(), StatusError> {
    match s {
        status::OK => Ok(()),
        status::IOERR => Err(StatusError::IoErr),
        status::UNSUPP => Err(StatusError::Unsupported),
        other => Err(StatusError::Unknown(other)),
    }
}

/// Largest scatterlist the driver allocates per request.
pub const MAX_SEGMENTS: u32 = 256;
/// Largest tag-set depth the driver asks for.
pub const MAX_DEPTH: u32 = 128;
/// Largest request, in 512-byte sectors (1 MiB).
pub const MAX_HW_SECTORS: u32 = 2048;

/// Queue limits of the disk, from the device's configuration and its ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Logical block size in bytes (512..=4096, a power of two).
    pub logical_block_size: u32,
    /// Data segments per request.
    pub max_segments: u32,
    /// Bytes per segment (0: the block layer's default).
    pub max_segment_size: u32,
    /// Sectors per request.
    pub max_hw_sectors: u32,
    /// Requests in flight (tag-set depth).
    pub depth: u32,
}

/// Why a device's configuration cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The ring cannot hold even a one-segment request (header, data, status).
    RingTooSmall(u32),
    /// blk_size is not a power of two in 512..=4096.
    BadBlockSize(u32),
}

impl ConfigError {
    /// The errno the probe fails with.
    pub const fn errno(self) -> i32 {
        22 // EINVAL
    }
}

/// The smaller of two limits where 0 means "no limit".
pub const fn min_nonzero(a: u32, b: u32) -> u32 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) if x < y => x,
        (_, y) => y,
    }
}

/// Computes the disk's queue limits. `seg_max`, `size_max`, `blk_size` are the configuration fields (0 when their
/// feature was not negotiated); `ring` is the virtqueue's size; `indirect` whether indirect descriptors were
/// negotiated (a request then takes one ring slot, else 2 + its segments).
pub const fn queue_limits(
    seg_max: u32,
    size_max: u32,
    blk_size: u32,
    ring: u32,
    indirect: bool,
) -> Result<QueueLimits, ConfigError> {
    if ring < 3 {
        return Err(ConfigError::RingTooSmall(ring));
    }
    let logical_block_size = if blk_size == 0 {
        512
    } else if blk_size < 512 || blk_size > 4096 || !blk_size.is_power_of_two() {
        return Err(ConfigError::BadBlockSize(blk_size));
    } else {
        blk_size
    };
    // Without SEG_MAX the device promises nothing beyond one segment (as the C driver assumes).
    let mut max_segments = if seg_max == 0 { 1 } else { seg_max };
    if max_segments > MAX_SEGMENTS {
        max_segments = MAX_SEGMENTS;
    }
    if !indirect && max_segments > ring - 2 {
        max_segments = ring - 2;
    }
    let depth = if ring < MAX_DEPTH { ring } else { MAX_DEPTH };
    Ok(QueueLimits {
        logical_block_size,
        max_segments,
        max_segment_size: size_max,
        max_hw_sectors: MAX_HW_SECTORS,
        depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: DevCaps = DevCaps {
        flush: true,
        discard: None,
        write_zeroes: None,
        read_only: false,
        max_descs: 8,
    };

    #[test]
    fn read_chain_has_header_data_status() {
        let p = plan(&CAPS, Op::Read, 8, 3, 3 * 4096).unwrap();
        assert_eq!(p.descs(), 5);
        assert!(p.data_device_writes);
        assert_eq!(
            p.header.encode(),
            [0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn write_header_encodes_type_and_sector() {
        let p = plan(&CAPS, Op::Write, 0x0102_0304_0506_0708, 1, 512).unwrap();
        assert_eq!(
            p.header.encode(),
            [1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert!(!p.data_device_writes);
    }

    #[test]
    fn flush_has_no_data() {
        assert_eq!(plan(&CAPS, Op::Flush, 0, 4, 0).unwrap().descs(), 2);
        let no_flush = DevCaps {
            flush: false,
            ..CAPS
        };
        assert_eq!(
            plan(&no_flush, Op::Flush, 0, 0, 0),
            Err(ReqError::Unsupported)
        );
    }

    #[test]
    fn status_bytes_map_to_errnos() {
        assert_eq!(check_status(status::OK), Ok(()));
        assert_eq!(
            check_status(status::IOERR).map_err(StatusError::errno),
            Err(5)
        );
        assert_eq!(
            check_status(status::UNSUPP).map_err(StatusError::errno),
            Err(95)
        );
        assert_eq!(check_status(0xff), Err(StatusError::Unknown(0xff)));
        for s in 3..=255u8 {
            assert_eq!(check_status(s).map_err(StatusError::errno), Err(5));
        }
    }

    #[test]
    fn min_nonzero_treats_zero_as_unlimited() {
        assert_eq!(min_nonzero(0, 0), 0);
        assert_eq!(min_nonzero(0, 262_144), 262_144);
        assert_eq!(min_nonzero(65_536, 0), 65_536);
        assert_eq!(min_nonzero(65_536, 262_144), 65_536);
        assert_eq!(min_nonzero(1_048_576, 262_144), 262_144);
    }

    #[test]
    fn queue_limits_follow_config_and_ring() {
        // QEMU's defaults: seg_max 254, 256-entry ring, indirect descriptors.
        let l = queue_limits(254, 0, 512, 256, true).unwrap();
        assert_eq!(
            (
                l.logical_block_size,
                l.max_segments,
                l.max_segment_size,
                l.depth
            ),
            (512, 254, 0, MAX_DEPTH)
        );
        assert_eq!(l.max_hw_sectors, MAX_HW_SECTORS);
        // Without indirect descriptors a request's chain must fit the ring.
        assert_eq!(
            queue_limits(254, 0, 0, 64, false).map(|l| (l.max_segments, l.depth)),
            Ok((62, 64))
        );
        // No SEG_MAX: one segment; huge seg_max is capped; size_max is passed through.
        assert_eq!(
            queue_limits(0, 0, 0, 256, true).map(|l| l.max_segments),
            Ok(1)
        );
        assert_eq!(
            queue_limits(100_000, 65536, 4096, 256, true).map(|l| (
                l.max_segments,
                l.max_segment_size,
                l.logical_block_size
            )),
            Ok((MAX_SEGMENTS, 65536, 4096))
        );
        assert_eq!(
            queue_limits(8, 0, 0, 2, true),
            Err(ConfigError::RingTooSmall(2))
        );
        assert_eq!(
            queue_limits(8, 0, 1000, 256, true),
            Err(ConfigError::BadBlockSize(1000))
        );
        assert_eq!(
            queue_limits(8, 0, 8192, 256, true),
            Err(ConfigError::BadBlockSize(8192))
        );
        assert_eq!(
            queue_limits(8, 0, 256, 256, true),
            Err(ConfigError::BadBlockSize(256))
        );
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(
            plan(&CAPS, Op::Read, 0, 7, 7 * 512),
            Err(ReqError::TooManySegments)
        );
        assert_eq!(
            plan(&CAPS, Op::Read, 0, 6, 6 * 512).map(|p| p.descs()),
            Ok(8)
        );
        assert_eq!(plan(&CAPS, Op::Read, 0, 1, 100), Err(ReqError::BadLength));
        assert_eq!(plan(&CAPS, Op::Write, 0, 0, 0), Err(ReqError::BadLength));
        let ro = DevCaps {
            read_only: true,
            ..CAPS
        };
        assert_eq!(plan(&ro, Op::Write, 0, 1, 512), Err(ReqError::ReadOnly));
    }

    const QEMU_RANGES: RangeLimits = RangeLimits {
        max_sectors: 8192,
        max_ranges: 1,
    };

    #[test]
    fn discard_payload_is_the_spec_layout() {
        let caps = DevCaps {
            discard: Some(range_limits(0, 4)),
            ..CAPS
        };
        let mut buf = [0xaau8; MAX_PAYLOAD];
        let ranges = [
            Range {
                sector: 0x0102_0304_0506_0708,
                sectors: 0x10,
            },
            Range {
                sector: 2048,
                sectors: 1,
            },
        ];
        let (p, n) = plan_ranges(&caps, RangeOp::Discard, &ranges, &mut buf).unwrap();
        assert_eq!(
            (
                p.header.type_,
                p.header.sector,
                p.data_segs,
                p.data_device_writes
            ),
            (11, 0, 1, false)
        );
        assert_eq!(p.descs(), 3);
        assert_eq!(n, 32);
        assert_eq!(
            buf[..16],
            [8, 7, 6, 5, 4, 3, 2, 1, 0x10, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            buf[16..32],
            [0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn write_zeroes_carries_unmap_only_when_allowed() {
        let caps = DevCaps {
            write_zeroes: Some(QEMU_RANGES),
            ..CAPS
        };
        let r = [Range {
            sector: 8,
            sectors: 8,
        }];
        let mut buf = [0u8; MAX_PAYLOAD];
        let (p, _) =
            plan_ranges(&caps, RangeOp::WriteZeroes { unmap: true }, &r, &mut buf).unwrap();
        assert_eq!(p.header.type_, req::WRITE_ZEROES);
        assert_eq!(buf[12..16], [1, 0, 0, 0]);
        plan_ranges(&caps, RangeOp::WriteZeroes { unmap: false }, &r, &mut buf).unwrap();
        assert_eq!(buf[12..16], [0, 0, 0, 0]);
        // Write-zeroes negotiated does not make discard available.
        assert_eq!(
            plan_ranges(&caps, RangeOp::Discard, &r, &mut buf),
            Err(ReqError::Unsupported)
        );
    }

    #[test]
    fn range_requests_are_checked_against_the_device() {
        let caps = DevCaps {
            discard: Some(QEMU_RANGES),
            ..CAPS
        };
        let mut buf = [0u8; MAX_PAYLOAD];
        let one = Range {
            sector: 0,
            sectors: 8192,
        };
        assert!(plan_ranges(&caps, RangeOp::Discard, &[one], &mut buf).is_ok());
        assert_eq!(
            plan_ranges(&caps, RangeOp::Discard, &[one, one], &mut buf),
            Err(ReqError::TooManySegments)
        );
        assert_eq!(
            plan_ranges(&caps, RangeOp::Discard, &[], &mut buf),
            Err(ReqError::BadLength)
        );
        let big = Range {
            sectors: 8193,
            ..one
        };
        assert_eq!(
            plan_ranges(&caps, RangeOp::Discard, &[big], &mut buf),
            Err(ReqError::BadLength)
        );
        let empty = Range { sectors: 0, ..one };
        assert_eq!(
            plan_ranges(&caps, RangeOp::Discard, &[empty], &mut buf),
            Err(ReqError::BadLength)
        );
        let wraps = Range {
            sector: u64::MAX,
            sectors: 1,
        };
        assert_eq!(
            plan_ranges(&caps, RangeOp::Discard, &[wraps], &mut buf),
            Err(ReqError::BadLength)
        );
        let ro = DevCaps {
            read_only: true,
            ..caps
        };
        assert_eq!(
            plan_ranges(&ro, RangeOp::Discard, &[one], &mut buf),
            Err(ReqError::ReadOnly)
        );
        let wide = DevCaps {
            discard: Some(range_limits(0, 100)),
            ..CAPS
        };
        let nine = [one; 9];
        assert_eq!(
            plan_ranges(&wide, RangeOp::Discard, &nine, &mut buf),
            Err(ReqError::TooManySegments)
        );
        assert_eq!(
            plan_ranges(&wide, RangeOp::Discard, &nine[..8], &mut buf).map(|r| r.1),
            Ok(128)
        );
    }

    #[test]
    fn range_limits_and_granularity_from_config() {
        assert_eq!(
            range_limits(0, 0),
            RangeLimits {
                max_sectors: u32::MAX,
                max_ranges: 1
            }
        );
        assert_eq!(range_limits(8192, 1), QEMU_RANGES);
        assert_eq!(range_limits(1, 1000).max_ranges, MAX_RANGES);
        assert_eq!(discard_granularity(0, 512), 512);
        assert_eq!(discard_granularity(8, 512), 4096);
        assert_eq!(discard_granularity(1, 4096), 4096);
        assert_eq!(discard_granularity(u32::MAX, 512), u32::MAX);
    }
}
