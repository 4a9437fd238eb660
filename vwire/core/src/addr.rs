//! Endpoint address syntax (the `<AdrA>`, `<AdrB>`, `<AdrC>` of Fig. 5.9) and validation.
//!
//! Accepted text forms:
//!
//! * IPv4: `a.b.c.d` or `a.b.c.d:port` - exactly four decimal octets `0..=255`, no leading zeros (inet_aton would
//!   read `010` as octal 8; we refuse the ambiguity).
//! * IPv6: `[addr]` or `[addr]:port`, brackets always required (without them `::1:4789` would be ambiguous).
//!   `addr` is any RFC 4291 §2.2 text form: eight 1-4 digit hex groups (any case), one `::` standing for one or more
//!   zero groups, and an embedded dotted IPv4 quad as the last 32 bits (`[::ffff:1.2.3.4]`, `[64:ff9b::10.0.0.1]`).
//!   A link-local address (`fe80::/10`) must carry a numeric scope (interface index): `[fe80::1%2]:4789`; other
//!   addresses must not.
//! * The port is decimal `1..=65535` without leading zeros; when absent the caller's default port is used.
//!
//! Addresses that cannot be one end of a point-to-point UDP tunnel are rejected: unspecified (`0.0.0.0/8`, `::`),
//! multicast (`224.0.0.0/4`, `ff00::/8`), limited broadcast (`255.255.255.255`), and IPv4-mapped IPv6
//! (`::ffff:0:0/96`; write the IPv4 form instead, so every endpoint address has exactly one representation and the
//! collapse decision can compare addresses for equality).  Loopback is accepted (useful for single-host tests).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Outer address family of a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 outer headers.
    V4,
    /// IPv6 outer headers.
    V6,
}

impl Family {
    /// The family of a socket address.
    pub const fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::V4,
            SocketAddr::V6(_) => Family::V6,
        }
    }

    /// `ipv4` or `ipv6`, as printed in status output.
    pub const fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// Why an address field was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// Empty field.
    Empty,
    /// Text after the address that is neither nothing nor `:port`.
    TrailingGarbage,
    /// More than one `:` outside brackets: IPv6 needs `[...]`.
    BareIpv6,
    /// Not a dotted quad of decimal octets without leading zeros.
    BadIpv4,
    /// Not an RFC 4291 IPv6 text form, or a missing `]`.
    BadIpv6,
    /// Port not decimal `1..=65535` without leading zeros.
    BadPort,
    /// Port 0.
    PortZero,
    /// Scope id after `%` not decimal `1..=4294967295` without leading zeros.
    BadScope,
    /// Link-local IPv6 without `%scope`.
    ScopeRequired,
    /// `%scope` on an address that is not link-local.
    ScopeNotAllowed,
    /// IPv6 flow label set (only possible for addresses built in code, e.g. from netlink).
    FlowInfo,
    /// `0.0.0.0/8` or `::`.
    Unspecified,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `::ffff:a.b.c.d`: use the IPv4 form.
    V4Mapped,
}

impl AddrError {
    /// Short human text.
    pub const fn message(self) -> &'static str {
        match self {
            AddrError::Empty => "empty address",
            AddrError::TrailingGarbage => "garbage after address (expected :port)",
            AddrError::BareIpv6 => "IPv6 address needs brackets: [addr]:port",
            AddrError::BadIpv4 => "malformed IPv4 address",
            AddrError::BadIpv6 => "malformed IPv6 address",
            AddrError::BadPort => "port must be decimal 1-65535",
            AddrError::PortZero => "port 0 is not allowed",
            AddrError::BadScope => "malformed IPv6 scope id (expected %<ifindex>)",
            AddrError::ScopeRequired => "link-local IPv6 address needs %<ifindex>",
            AddrError::ScopeNotAllowed => "scope id only allowed on link-local IPv6",
            AddrError::FlowInfo => "IPv6 flow label must be 0",
            AddrError::Unspecified => "unspecified address",
            AddrError::Multicast => "multicast address",
            AddrError::Broadcast => "broadcast address",
            AddrError::V4Mapped => "IPv4-mapped IPv6 address: use the IPv4 form",
        }
    }
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Parses and validates one endpoint address; `default_port` is used when the text has no port.
pub fn parse_addr(text: &str, default_port: u16) -> Result<SocketAddr, AddrError> {
    if text.is_empty() {
        return Err(AddrError::Empty);
    }
    let addr = if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(AddrError::BadIpv6)?;
        let port = port_suffix(after, default_port)?;
        let (ip_text, scope) = match inner.split_once('%') {
            Some((ip_text, scope_text)) => (ip_text, parse_scope(scope_text)?),
            None => (inner, 0),
        };
        let ip = parse_ipv6(ip_text).ok_or(AddrError::BadIpv6)?;
        SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
    } else {
        let (ip_text, port) = match text.split_once(':') {
            None => (text, default_port),
            Some((_, port_text)) if port_text.contains(':') => return Err(AddrError::BareIpv6),
            Some((ip_text, port_text)) => (ip_text, parse_port(port_text)?),
        };
        let ip = parse_ipv4(ip_text).ok_or(AddrError::BadIpv4)?;
        SocketAddr::V4(SocketAddrV4::new(ip, port))
    };
    check_addr(&addr)?;
    Ok(addr)
}

/// Parses a port setting written by an operator, e.g. the module-wide default port
/// (`/sys/kernel/config/vwire/default_port`): decimal `1..=65535` without leading zeros; surrounding whitespace (the
/// newline of `echo`) is ignored.
pub fn parse_port_setting(input: &[u8]) -> Result<u16, AddrError> {
    let text = core::str::from_utf8(input).map_err(|_| AddrError::BadPort)?;
    parse_port(text.trim())
}

/// Validates an address built elsewhere (e.g. from `ip link` attributes) with the same rules as [`parse_addr`].
pub fn check_addr(addr: &SocketAddr) -> Result<(), AddrError> {
    if addr.port() == 0 {
        return Err(AddrError::PortZero);
    }
    match addr {
        SocketAddr::V4(a) => check_ipv4(*a.ip()),
        SocketAddr::V6(a) => {
            if a.flowinfo() != 0 {
                return Err(AddrError::FlowInfo);
            }
            let ip = a.ip();
            if ip.is_unspecified() {
                return Err(AddrError::Unspecified);
            }
            if ip.is_multicast() {
                return Err(AddrError::Multicast);
            }
            if ip.to_ipv4_mapped().is_some() {
                return Err(AddrError::V4Mapped);
            }
            match (is_link_local(ip), a.scope_id() != 0) {
                (true, false) => Err(AddrError::ScopeRequired),
                (false, true) => Err(AddrError::ScopeNotAllowed),
                _ => Ok(()),
            }
        }
    }
}

fn check_ipv4(ip: Ipv4Addr) -> Result<(), AddrError> {
    if ip.octets()[0] == 0 {
        Err(AddrError::Unspecified)
    } else if ip.is_multicast() {
        Err(AddrError::Multicast)
    } else if ip.is_broadcast() {
        Err(AddrError::Broadcast)
    } else {
        Ok(())
    }
}

/// `fe80::/10`.
pub const fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn port_suffix(after: &str, default_port: u16) -> Result<u16, AddrError> {
    if after.is_empty() {
        if default_port == 0 {
            return Err(AddrError::PortZero);
        }
        return Ok(default_port);
    }
    match after.strip_prefix(':') {
        Some(port_text) => parse_port(port_text),
        None => Err(AddrError::TrailingGarbage),
    }
}

fn parse_decimal(text: &str, max_digits: usize) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > max_digits || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes.first() == Some(&b'0') {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

fn parse_port(text: &str) -> Result<u16, AddrError> {
    match parse_decimal(text, 5) {
        Some(0) => Err(AddrError::PortZero),
        Some(v) => u16::try_from(v).map_err(|_| AddrError::BadPort),
        None => Err(AddrError::BadPort),
    }
}

fn parse_scope(text: &str) -> Result<u32, AddrError> {
    match parse_decimal(text, 10) {
        Some(0) | None => Err(AddrError::BadScope),
        Some(v) => Ok(v),
    }
}

/// Parses a dotted quad: four decimal octets `0..=255`, no leading zeros, nothing else.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0usize;
    for part in text.split('.') {
        let slot = octets.get_mut(n)?;
        *slot = u8::try_from(parse_decimal(part, 3)?).ok()?;
        n += 1;
    }
    if n == 4 {
        Some(Ipv4Addr::from(octets))
    } else {
        None
    }
}

/// Parses RFC 4291 §2.2 IPv6 text (no brackets, no scope).
pub fn parse_ipv6(text: &str) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    match text.find("::") {
        None => {
            if parse_groups(text, &mut groups, true)? != 8 {
                return None;
            }
        }
        Some(pos) => {
            let head = text.get(..pos)?;
            let tail = text.get(pos.checked_add(2)?..)?;
            let mut h = [0u16; 8];
            let mut t = [0u16; 8];
            let nh = if head.is_empty() {
                0
            } else {
                parse_groups(head, &mut h, false)?
            };
            let nt = if tail.is_empty() {
                0
            } else {
                parse_groups(tail, &mut t, true)?
            };
            // `::` stands for at least one zero group.
            if nh.checked_add(nt)? > 7 {
                return None;
            }
            for (dst, src) in groups.iter_mut().zip(h.iter().take(nh)) {
                *dst = *src;
            }
            for (dst, src) in groups.iter_mut().skip(8 - nt).zip(t.iter().take(nt)) {
                *dst = *src;
            }
        }
    }
    Some(Ipv6Addr::from(groups))
}

/// Parses `g:g:...:g` (each 1-4 hex digits; the last may be a dotted quad when `allow_v4`); returns the number of
/// 16-bit groups written.  An empty group (a stray `:`) fails, which also rejects `:::` and a second `::`.
fn parse_groups(text: &str, out: &mut [u16; 8], allow_v4: bool) -> Option<usize> {
    let mut n = 0usize;
    let mut parts = text.split(':').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if last && allow_v4 && part.contains('.') {
            let [a, b, c, d] = parse_ipv4(part)?.octets();
            *out.get_mut(n)? = u16::from_be_bytes([a, b]);
            *out.get_mut(n + 1)? = u16::from_be_bytes([c, d]);
            n += 2;
        } else {
            let bytes = part.as_bytes();
            if bytes.is_empty() || bytes.len() > 4 || !bytes.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            *out.get_mut(n)? = u16::from_str_radix(part, 16).ok()?;
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u16 = 4789;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a), port))
    }

    fn v6(g: [u16; 8], port: u16, scope: u32) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(g), port, 0, scope))
    }

    #[test]
    fn ipv4_forms() {
        assert_eq!(parse_addr("10.0.0.1:5000", P), Ok(v4([10, 0, 0, 1], 5000)));
        assert_eq!(parse_addr("10.0.0.1", P), Ok(v4([10, 0, 0, 1], P)));
        assert_eq!(
            parse_addr("127.0.0.1:65535", P),
            Ok(v4([127, 0, 0, 1], 65535))
        );
        assert_eq!(
            parse_addr("255.255.255.254:1", P),
            Ok(v4([255, 255, 255, 254], 1))
        );
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(
            parse_addr("[2001:db8::1]:5000", P),
            Ok(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 5000, 0))
        );
        assert_eq!(
            parse_addr("[2001:DB8::1]", P),
            Ok(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], P, 0))
        );
        assert_eq!(
            parse_addr("[::1]", P),
            Ok(v6([0, 0, 0, 0, 0, 0, 0, 1], P, 0))
        );
        assert_eq!(
            parse_addr("[1:2:3:4:5:6:7:8]:9", P),
            Ok(v6([1, 2, 3, 4, 5, 6, 7, 8], 9, 0))
        );
        // `::` for a single group (allowed by RFC 4291, discouraged by RFC 5952).
        assert_eq!(
            parse_addr("[1:2:3::5:6:7:8]", P),
            Ok(v6([1, 2, 3, 0, 5, 6, 7, 8], P, 0))
        );
        assert_eq!(
            parse_addr("[2001:db8::]", P),
            Ok(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], P, 0))
        );
        // Embedded IPv4 (NAT64 well-known prefix, IPv4-compatible, full form).
        assert_eq!(
            parse_addr("[64:ff9b::10.0.0.1]", P),
            Ok(v6([0x64, 0xff9b, 0, 0, 0, 0, 0x0a00, 1], P, 0))
        );
        assert_eq!(
            parse_addr("[::1.2.3.4]:7", P),
            Ok(v6([0, 0, 0, 0, 0, 0, 0x0102, 0x0304], 7, 0))
        );
        assert_eq!(
            parse_addr("[1:2:3:4:5:6:1.2.3.4]", P),
            Ok(v6([1, 2, 3, 4, 5, 6, 0x0102, 0x0304], P, 0))
        );
        assert_eq!(
            parse_addr("[0001:00:0::ffff]", P),
            Ok(v6([1, 0, 0, 0, 0, 0, 0, 0xffff], P, 0))
        );
        // Link-local with scope.
        assert_eq!(
            parse_addr("[fe80::1%2]:4000", P),
            Ok(v6([0xfe80, 0, 0, 0, 0, 0, 0, 1], 4000, 2))
        );
        assert_eq!(
            parse_addr("[febf::1%4294967295]", P),
            Ok(v6([0xfebf, 0, 0, 0, 0, 0, 0, 1], P, u32::MAX))
        );
    }

    #[test]
    fn syntax_errors() {
        use AddrError::*;
        let cases: &[(&str, AddrError)] = &[
            ("", Empty),
            ("10.0.0.1:", BadPort),
            ("10.0.0.1:+1", BadPort),
            ("10.0.0.1:01", BadPort),
            ("10.0.0.1:65536", BadPort),
            ("10.0.0.1:123456", BadPort),
            ("10.0.0.1:0", PortZero),
            ("10.0.0.1:x", BadPort),
            ("10.0.0", BadIpv4),
            ("10.0.0.1.2", BadIpv4),
            ("10.0.0.256", BadIpv4),
            ("10.0.0.01", BadIpv4),
            ("10..0.1", BadIpv4),
            ("10.0.0.1.", BadIpv4),
            ("0x0a.0.0.1", BadIpv4),
            ("host.example", BadIpv4),
            ("2001:db8::1", BareIpv6),
            ("::1", BareIpv6),
            ("[::1", BadIpv6),
            ("[::1]x", TrailingGarbage),
            ("[::1]:", BadPort),
            ("[::1]:0", PortZero),
            ("[::1]:99999", BadPort),
            ("[]", BadIpv6),
            ("[:::1]", BadIpv6),
            ("[1::2::3]", BadIpv6),
            ("[1:2:3:4:5:6:7:8:9]", BadIpv6),
            ("[1:2:3:4:5:6:7]", BadIpv6),
            ("[1:2:3:4:5:6:7::8]", BadIpv6),
            ("[12345::1]", BadIpv6),
            ("[g::1]", BadIpv6),
            ("[:1::2]", BadIpv6),
            ("[1::2:]", BadIpv6),
            ("[1.2.3.4::]", BadIpv6),
            ("[::1.2.3.4:5]", BadIpv6),
            ("[::1.2.3]", BadIpv6),
            ("[1:2:3:4:5:6:7:1.2.3.4]", BadIpv6),
            ("[fe80::1%]", BadScope),
            ("[fe80::1%0]", BadScope),
            ("[fe80::1%eth0]", BadScope),
            ("[fe80::1%01]", BadScope),
            ("[fe80::1%4294967296]", BadScope),
        ];
        for (text, err) in cases {
            assert_eq!(parse_addr(text, P), Err(*err), "input {text:?}");
        }
    }

    #[test]
    fn semantic_errors() {
        use AddrError::*;
        let cases: &[(&str, AddrError)] = &[
            ("0.0.0.0:1", Unspecified),
            ("0.1.2.3", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.255:9", Multicast),
            ("255.255.255.255", Broadcast),
            ("[::]", Unspecified),
            ("[ff02::1]", Multicast),
            ("[ff0e::1%3]", Multicast),
            ("[::ffff:10.0.0.1]", V4Mapped),
            ("[::ffff:a00:1]", V4Mapped),
            ("[fe80::1]", ScopeRequired),
            ("[2001:db8::1%2]", ScopeNotAllowed),
        ];
        for (text, err) in cases {
            assert_eq!(parse_addr(text, P), Err(*err), "input {text:?}");
        }
    }

    #[test]
    fn default_port_zero_means_port_required() {
        assert_eq!(parse_addr("10.0.0.1", 0), Err(AddrError::PortZero));
        assert_eq!(parse_addr("[::1]", 0), Err(AddrError::PortZero));
        assert_eq!(parse_addr("10.0.0.1:7", 0), Ok(v4([10, 0, 0, 1], 7)));
    }

    #[test]
    fn port_settings() {
        assert_eq!(parse_port_setting(b"4789\n"), Ok(4789));
        assert_eq!(parse_port_setting(b" 1 "), Ok(1));
        assert_eq!(parse_port_setting(b"65535"), Ok(65535));
        for bad in [&b""[..], b"\n", b"0", b"65536", b"04789", b"-1", b"47 89", b"0x12b5", b"\xff\xfe", b"4789:"] {
            assert!(parse_port_setting(bad).is_err(), "input {bad:?}");
        }
    }

    #[test]
    fn check_addr_rejects_built_addresses() {
        assert_eq!(check_addr(&v4([10, 0, 0, 1], 0)), Err(AddrError::PortZero));
        let flow = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 5, 0));
        assert_eq!(check_addr(&flow), Err(AddrError::FlowInfo));
        assert_eq!(check_addr(&v6([0xfe80, 0, 0, 0, 0, 0, 0, 1], 1, 1)), Ok(()));
    }

    #[test]
    fn family() {
        assert_eq!(Family::of(&v4([1, 2, 3, 4], 1)), Family::V4);
        assert_eq!(
            Family::of(&v6([1, 0, 0, 0, 0, 0, 0, 0], 1, 0)).name(),
            "ipv6"
        );
    }
}
