//! Per-frame overhead and endpoint MTU arithmetic (§5.1.2).
//!
//! An encapsulated frame is `outer Ethernet | outer IP | UDP | VirtualWire header | inner Ethernet frame`.  The
//! path MTU bounds the outer *IP datagram*, which contains the inner frame *including its Ethernet header*, so
//!
//! ```text
//! endpoint MTU = path MTU - outer IP (20 | 40) - UDP (8) - header (8) - inner Ethernet (14)
//!              = path MTU - 50 (IPv4)   |   path MTU - 70 (IPv6)
//! ```
//!
//! VXLAN's well-known "50 bytes" is the same number counted on the wire: outer Ethernet 14 + IPv4 20 + UDP 8 +
//! VXLAN 8; the outer Ethernet header does not count against the path MTU, the inner one does.  The dissertation's
//! 1500 -> 1456 (a 44-byte header) leaves 8 bytes of room beyond IPv4 + UDP + 8-byte header, less than the
//! 14-byte inner Ethernet header: a guest using 1456 would produce 1506-byte datagrams and be fragmented, which
//! §5.1.2 sets out to avoid.  We report 1450 (IPv4) / 1430 (IPv6) instead (jumbo: 8950 / 8930).

use super::addr::Family;

/// Ethernet header without VLAN tags.
pub const ETH_HLEN: u32 = 14;
/// One 802.1Q tag.
pub const VLAN_HLEN: u32 = 4;
/// IPv4 header without options.
pub const IPV4_HLEN: u32 = 20;
/// IPv6 header without extension headers.
pub const IPV6_HLEN: u32 = 40;
/// UDP header.
pub const UDP_HLEN: u32 = 8;
/// VirtualWire header.
pub const VW_HLEN: u32 = 8;
/// Smallest MTU an endpoint interface may have (Linux `ETH_MIN_MTU`, the IPv4 minimum).
pub const MIN_ENDPOINT_MTU: u32 = 68;
/// Largest path MTU considered (IP datagram length field).
pub const MAX_PATH_MTU: u32 = 65535;
/// Suggested default UDP port: IANA's VXLAN port, so a kernel VXLAN device with `dstport 4789` interoperates.
pub const DEFAULT_PORT: u16 = 4789;

/// Outer IP header length.
pub const fn ip_hlen(family: Family) -> u32 {
    match family {
        Family::V4 => IPV4_HLEN,
        Family::V6 => IPV6_HLEN,
    }
}

/// Smallest path MTU of the family (RFC 791: 68, RFC 8200: 1280).
pub const fn min_path_mtu(family: Family) -> u32 {
    match family {
        Family::V4 => 68,
        Family::V6 => 1280,
    }
}

/// Bytes added on the wire to every frame: outer Ethernet + outer IP + UDP + header (50 / 70).
pub const fn wire_overhead(family: Family) -> u32 {
    ETH_HLEN + ip_hlen(family) + UDP_HLEN + VW_HLEN
}

/// Bytes the path MTU loses before the endpoint's own MTU: outer IP + UDP + header + inner Ethernet (50 / 70).
pub const fn mtu_overhead(family: Family) -> u32 {
    ip_hlen(family) + UDP_HLEN + VW_HLEN + ETH_HLEN
}

/// The MTU an endpoint interface reports for a path MTU, or `None` if the path MTU is outside the family's range
/// or leaves less than [`MIN_ENDPOINT_MTU`].
pub fn endpoint_mtu(path_mtu: u32, family: Family) -> Option<u32> {
    endpoint_mtu_vlan(path_mtu, family, 0)
}

/// As [`endpoint_mtu`], also reserving room for `vlan_tags` 802.1Q tags in the inner frame (guests that send
/// VLAN-tagged frames of full MTU through the connector need this).
pub fn endpoint_mtu_vlan(path_mtu: u32, family: Family, vlan_tags: u32) -> Option<u32> {
    if path_mtu < min_path_mtu(family) || path_mtu > MAX_PATH_MTU {
        return None;
    }
    let mtu = path_mtu
        .checked_sub(mtu_overhead(family))?
        .checked_sub(vlan_tags.checked_mul(VLAN_HLEN)?)?;
    if mtu < MIN_ENDPOINT_MTU {
        None
    } else {
        Some(mtu)
    }
}

/// Length of the outer IP datagram carrying an inner frame of `inner_frame_len` bytes (Ethernet header included).
pub fn outer_datagram_len(inner_frame_len: u32, family: Family) -> Option<u32> {
    inner_frame_len.checked_add(ip_hlen(family) + UDP_HLEN + VW_HLEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_jumbo() {
        assert_eq!(endpoint_mtu(1500, Family::V4), Some(1450));
        assert_eq!(endpoint_mtu(1500, Family::V6), Some(1430));
        assert_eq!(endpoint_mtu(9000, Family::V4), Some(8950));
        assert_eq!(endpoint_mtu(9000, Family::V6), Some(8930));
        assert_eq!(endpoint_mtu_vlan(1500, Family::V4, 1), Some(1446));
        assert_eq!(endpoint_mtu_vlan(1500, Family::V6, 2), Some(1422));
    }

    #[test]
    fn overheads() {
        assert_eq!(wire_overhead(Family::V4), 50);
        assert_eq!(wire_overhead(Family::V6), 70);
        assert_eq!(mtu_overhead(Family::V4), 50);
        assert_eq!(mtu_overhead(Family::V6), 70);
    }

    #[test]
    fn full_mtu_frame_fits_path() {
        for family in [Family::V4, Family::V6] {
            for pmtu in [1280u32, 1500, 4000, 9000, 65535] {
                let mtu = endpoint_mtu(pmtu, family).unwrap();
                assert_eq!(outer_datagram_len(mtu + ETH_HLEN, family), Some(pmtu));
                let tagged = endpoint_mtu_vlan(pmtu, family, 1).unwrap();
                assert_eq!(
                    outer_datagram_len(tagged + ETH_HLEN + VLAN_HLEN, family),
                    Some(pmtu)
                );
            }
        }
    }

    #[test]
    fn out_of_range() {
        assert_eq!(endpoint_mtu(67, Family::V4), None);
        assert_eq!(endpoint_mtu(117, Family::V4), None);
        assert_eq!(endpoint_mtu(118, Family::V4), Some(68));
        assert_eq!(endpoint_mtu(1279, Family::V6), None);
        assert_eq!(endpoint_mtu(1280, Family::V6), Some(1210));
        assert_eq!(endpoint_mtu(65536, Family::V4), None);
        assert_eq!(endpoint_mtu(u32::MAX, Family::V6), None);
        assert_eq!(endpoint_mtu_vlan(1500, Family::V4, u32::MAX), None);
        assert_eq!(endpoint_mtu_vlan(1500, Family::V4, 400), None);
        assert_eq!(outer_datagram_len(u32::MAX, Family::V4), None);
    }
}
