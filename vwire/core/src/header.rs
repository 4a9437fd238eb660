//! The 8-byte VirtualWire header (Fig. 5.3), carried right after the outer UDP header.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|C|R|R|I|R|R|R|            Reserved (0)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Connector id word                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! * `I` (0x08) is always set: it is VXLAN's "VNI valid" flag (RFC 7348).
//! * `C` (0x40) clear - **compact form**, byte-identical to VXLAN: the id word is `VNI << 8` (id in the top 24
//!   bits, low byte 0).  Used for ids `1..=16777215`; a kernel VXLAN device with `id <N>` interoperates.
//! * `C` set - **extended form**: the id word is the whole 32-bit connector id (network byte order).  Used only for
//!   ids above 16777215.  0x40 is reserved in both VXLAN-GBP and VXLAN-GPE, and the kernel VXLAN driver drops
//!   frames with unknown flags, so an extended frame can never be mistaken for another VNI.
//!
//! Every id has exactly one encoding; the decoder rejects everything else (other flag bits, non-zero reserved
//! bits, a compact word with a non-zero low byte, an extended word that fits in 24 bits, id 0).

use core::fmt;

use zerocopy::byteorder::network_endian::U32;
use zerocopy::{FromBytes, IntoBytes};
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::errno;
use super::id::{ConnectorId, VXLAN_VNI_MAX};

/// Header length in bytes.
pub const HEADER_LEN: usize = 8;
/// Smallest inner frame: an Ethernet header (destination, source, ethertype).
pub const MIN_INNER_FRAME: usize = 14;
/// VXLAN "I" flag: the id word is valid.
pub const FLAG_I: u8 = 0x08;
/// VirtualWire "C" flag: the id word holds a full 32-bit connector id.
pub const FLAG_C: u8 = 0x40;

/// The header as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct WireHeader {
    /// Flags byte: `FLAG_I`, optionally `FLAG_C`.
    pub flags: u8,
    /// Must be zero.
    pub reserved: [u8; 3],
    /// The connector id word (see module documentation).
    pub id_word: U32,
}

const _: () = assert!(core::mem::size_of::<WireHeader>() == HEADER_LEN);

/// Why a received header was rejected (all counted as drop reason `bad_header`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 8 bytes.
    Truncated,
    /// `I` flag clear.
    NoIdFlag,
    /// A flag other than `I` and `C` set.
    UnknownFlags,
    /// Reserved bytes not zero, or compact form with a non-zero low byte.
    ReservedBits,
    /// Extended form used for an id that fits the compact form.
    NonCanonical,
    /// Connector id 0.
    ZeroId,
    /// Payload shorter than an Ethernet header.
    RuntFrame,
    /// Output buffer shorter than 8 bytes.
    NoRoom,
}

impl HeaderError {
    /// Errno if the error has to be reported to a caller.
    pub const fn errno(self) -> i32 {
        match self {
            HeaderError::NoRoom => errno::EINVAL,
            _ => errno::EPROTO,
        }
    }

    /// Short human text.
    pub const fn message(self) -> &'static str {
        match self {
            HeaderError::Truncated => "header truncated",
            HeaderError::NoIdFlag => "I flag clear",
            HeaderError::UnknownFlags => "unknown header flags",
            HeaderError::ReservedBits => "reserved header bits set",
            HeaderError::NonCanonical => "extended form for a 24-bit id",
            HeaderError::ZeroId => "connector id 0",
            HeaderError::RuntFrame => "inner frame shorter than an Ethernet header",
            HeaderError::NoRoom => "buffer too small for header",
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl WireHeader {
    /// The canonical header for `id`.
    pub fn new(id: ConnectorId) -> WireHeader {
        let raw = id.get();
        if raw <= VXLAN_VNI_MAX {
            WireHeader {
                flags: FLAG_I,
                reserved: [0; 3],
                id_word: U32::new(raw << 8),
            }
        } else {
            WireHeader {
                flags: FLAG_I | FLAG_C,
                reserved: [0; 3],
                id_word: U32::new(raw),
            }
        }
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// Validates the header and returns the connector id it names.
    pub fn connector(&self) -> Result<ConnectorId, HeaderError> {
        if self.flags & FLAG_I == 0 {
            return Err(HeaderError::NoIdFlag);
        }
        if self.flags & !(FLAG_I | FLAG_C) != 0 {
            return Err(HeaderError::UnknownFlags);
        }
        if self.reserved != [0; 3] {
            return Err(HeaderError::ReservedBits);
        }
        let word = self.id_word.get();
        let raw = if self.flags & FLAG_C == 0 {
            if word & 0xff != 0 {
                return Err(HeaderError::ReservedBits);
            }
            word >> 8
        } else {
            if word <= VXLAN_VNI_MAX {
                return Err(if word == 0 {
                    HeaderError::ZeroId
                } else {
                    HeaderError::NonCanonical
                });
            }
            word
        };
        ConnectorId::new(raw).ok_or(HeaderError::ZeroId)
    }
}

/// Writes the header for `id` into the first 8 bytes of `out`.
pub fn encode(id: ConnectorId, out: &mut [u8]) -> Result<(), HeaderError> {
    let dst = out.get_mut(..HEADER_LEN).ok_or(HeaderError::NoRoom)?;
    dst.copy_from_slice(WireHeader::new(id).as_bytes());
    Ok(())
}

/// Decodes a UDP payload: returns the connector id and the inner Ethernet frame.
pub fn decode(udp_payload: &[u8]) -> Result<(ConnectorId, &[u8]), HeaderError> {
    let (hdr, inner) =
        WireHeader::ref_from_prefix(udp_payload).map_err(|_| HeaderError::Truncated)?;
    let id = hdr.connector()?;
    if inner.len() < MIN_INNER_FRAME {
        return Err(HeaderError::RuntFrame);
    }
    Ok((id, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u32) -> ConnectorId {
        ConnectorId::new(n).unwrap()
    }

    fn frame(hdr: [u8; 8]) -> [u8; 22] {
        let mut f = [0xaau8; 22];
        f[..8].copy_from_slice(&hdr);
        f
    }

    #[test]
    fn compact_form_is_vxlan() {
        // VNI 0x123456 as the Linux VXLAN driver sends it.
        assert_eq!(
            WireHeader::new(cid(0x12_3456)).to_bytes(),
            [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]
        );
        assert_eq!(
            WireHeader::new(cid(1)).to_bytes(),
            [0x08, 0, 0, 0, 0, 0, 1, 0]
        );
        assert_eq!(
            WireHeader::new(cid(VXLAN_VNI_MAX)).to_bytes(),
            [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]
        );
    }

    #[test]
    fn extended_form() {
        assert_eq!(
            WireHeader::new(cid(0x0100_0000)).to_bytes(),
            [0x48, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            WireHeader::new(cid(u32::MAX)).to_bytes(),
            [0x48, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn decode_ok() {
        let f = frame([0x08, 0, 0, 0, 0, 0, 7, 0]);
        let (id, inner) = decode(&f).unwrap();
        assert_eq!(id, cid(7));
        assert_eq!(inner.len(), 14);
        let f = frame([0x48, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(decode(&f).map(|(id, _)| id), Ok(cid(0xdead_beef)));
    }

    #[test]
    fn decode_errors() {
        let cases: &[([u8; 8], HeaderError)] = &[
            ([0x00, 0, 0, 0, 0, 0, 7, 0], HeaderError::NoIdFlag),
            ([0x40, 0, 0, 0, 1, 0, 0, 0], HeaderError::NoIdFlag),
            ([0x88, 0, 0, 0, 0, 0, 7, 0], HeaderError::UnknownFlags),
            ([0x0c, 0, 0, 0, 0, 0, 7, 0], HeaderError::UnknownFlags),
            ([0x09, 0, 0, 0, 0, 0, 7, 0], HeaderError::UnknownFlags),
            ([0x08, 1, 0, 0, 0, 0, 7, 0], HeaderError::ReservedBits),
            ([0x08, 0, 0x20, 0, 0, 0, 7, 0], HeaderError::ReservedBits),
            ([0x08, 0, 0, 0, 0, 0, 7, 1], HeaderError::ReservedBits),
            ([0x08, 0, 0, 0, 0, 0, 0, 0], HeaderError::ZeroId),
            ([0x48, 0, 0, 0, 0, 0, 0, 0], HeaderError::ZeroId),
            ([0x48, 0, 0, 0, 0, 0, 0, 7], HeaderError::NonCanonical),
            (
                [0x48, 0, 0, 0, 0, 0xff, 0xff, 0xff],
                HeaderError::NonCanonical,
            ),
        ];
        for (hdr, err) in cases {
            assert_eq!(
                decode(&frame(*hdr)).map(|(id, _)| id),
                Err(*err),
                "header {hdr:02x?}"
            );
        }
        assert_eq!(
            decode(&[0x08, 0, 0, 0, 0, 0, 7]),
            Err(HeaderError::Truncated)
        );
        assert_eq!(decode(&[]), Err(HeaderError::Truncated));
        let short = frame([0x08, 0, 0, 0, 0, 0, 7, 0]);
        assert_eq!(decode(&short[..21]), Err(HeaderError::RuntFrame));
        assert_eq!(decode(&short[..8]), Err(HeaderError::RuntFrame));
    }

    #[test]
    fn encode_into_buffer() {
        let mut buf = [0xffu8; 10];
        encode(cid(5), &mut buf).unwrap();
        assert_eq!(buf, [0x08, 0, 0, 0, 0, 0, 5, 0, 0xff, 0xff]);
        assert_eq!(encode(cid(5), &mut [0u8; 7]), Err(HeaderError::NoRoom));
        assert_eq!(HeaderError::NoRoom.errno(), errno::EINVAL);
        assert_eq!(HeaderError::ZeroId.errno(), errno::EPROTO);
    }
}
