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
    /// Discard a range.
    Discard,
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

/// What the device negotiated that requests depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevCaps {
    /// FLUSH negotiated.
    pub flush: bool,
    /// DISCARD negotiated.
    pub discard: bool,
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
        Op::Discard => {
            if !caps.discard {
                return Err(ReqError::Unsupported);
            }
            if caps.read_only {
                return Err(ReqError::ReadOnly);
            }
            (req::DISCARD, true, false)
        }
    };
    if needs_data && (segs == 0 || len == 0 || (op != Op::Discard && len % 512 != 0)) {
        return Err(ReqError::BadLength);
    }
    let data_segs = if needs_data { segs } else { 0 };
    if u32::from(data_segs) + 2 > u32::from(caps.max_descs) {
        return Err(ReqError::TooManySegments);
    }
    Ok(Plan { header: Header { type_, sector }, data_segs, data_device_writes: writes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: DevCaps = DevCaps { flush: true, discard: false, read_only: false, max_descs: 8 };

    #[test]
    fn read_chain_has_header_data_status() {
        let p = plan(&CAPS, Op::Read, 8, 3, 3 * 4096).unwrap();
        assert_eq!(p.descs(), 5);
        assert!(p.data_device_writes);
        assert_eq!(p.header.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn write_header_encodes_type_and_sector() {
        let p = plan(&CAPS, Op::Write, 0x0102_0304_0506_0708, 1, 512).unwrap();
        assert_eq!(p.header.encode(), [1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert!(!p.data_device_writes);
    }

    #[test]
    fn flush_has_no_data() {
        assert_eq!(plan(&CAPS, Op::Flush, 0, 4, 0).unwrap().descs(), 2);
        let no_flush = DevCaps { flush: false, ..CAPS };
        assert_eq!(plan(&no_flush, Op::Flush, 0, 0, 0), Err(ReqError::Unsupported));
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(plan(&CAPS, Op::Read, 0, 7, 7 * 512), Err(ReqError::TooManySegments));
        assert_eq!(plan(&CAPS, Op::Read, 0, 6, 6 * 512).map(|p| p.descs()), Ok(8));
        assert_eq!(plan(&CAPS, Op::Read, 0, 1, 100), Err(ReqError::BadLength));
        assert_eq!(plan(&CAPS, Op::Write, 0, 0, 0), Err(ReqError::BadLength));
        let ro = DevCaps { read_only: true, ..CAPS };
        assert_eq!(plan(&ro, Op::Write, 0, 1, 512), Err(ReqError::ReadOnly));
        assert_eq!(plan(&CAPS, Op::Discard, 0, 1, 16), Err(ReqError::Unsupported));
    }
}
