//! The /proc/vw command parser (Fig. 5.9 plus the extender command).
//!
//! | file              | accepted text                                   | meaning                                   |
//! |-------------------|-------------------------------------------------|-------------------------------------------|
//! | `/proc/vw/create` | `<N> <AdrA> <AdrB>`                             | endpoint N receives on AdrA, sends to AdrB |
//! | `/proc/vw/create` | `relay <N> <AdrIn> <AdrOut>`                    | extender: forward N from AdrIn to AdrOut  |
//! | `/proc/vw/<N>`    | `<AdrC>` or `<AdrA> <AdrC>`                     | repoint the send side (of the entry at AdrA) |
//! | `/proc/vw/destroy`| `<N>` or `<N> <AdrA>`                           | destroy N (the entry at AdrA)             |
//!
//! A write is at most [`MAX_INPUT`] bytes of printable ASCII (tabs allowed), optionally ending in exactly one
//! `\n`.  Fields are separated by runs of spaces/tabs; leading and trailing blanks are ignored.  The optional
//! `<AdrA>` selector is only needed when several entries of one connector live on this host (both ends of a
//! collapsed connector, or both directions of a relay).

use core::fmt;
use core::net::SocketAddr;

use super::addr::{check_addr, parse_addr, AddrError, Family};
use super::errno;
use super::id::{parse_id, ConnectorId, IdError};
use super::table::Kind;

/// Largest accepted write, in bytes, newline included.
pub const MAX_INPUT: usize = 256;
/// First field of the extender (relay) command.
pub const RELAY_KEYWORD: &str = "relay";
/// Usage text of /proc/vw/create.
pub const CREATE_USAGE: &str = "<N> <AdrA> <AdrB> | relay <N> <AdrIn> <AdrOut>";
/// Usage text of /proc/vw/<N>.
pub const REPOINT_USAGE: &str = "<AdrC> | <AdrA> <AdrC>";
/// Usage text of /proc/vw/destroy.
pub const DESTROY_USAGE: &str = "<N> | <N> <AdrA>";

/// A validated create (or relay) command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Create {
    /// Connector id, also the id carried in the wire header.
    pub id: ConnectorId,
    /// Endpoint or extender relay.
    pub kind: Kind,
    /// Where encapsulated frames for this entry arrive (AdrA / AdrIn).
    pub local: SocketAddr,
    /// Where this entry sends encapsulated frames (AdrB / AdrOut).
    pub remote: SocketAddr,
}

impl Create {
    /// Validates a command built from parts (e.g. by the `ip link` path): both addresses valid, same family, and
    /// distinct (an entry that sends to its own receive address would loop).
    pub fn new(
        id: ConnectorId,
        kind: Kind,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Create, ParseError> {
        check_addr(&local).map_err(|err| ParseError::Addr {
            field: Field::Local,
            err,
        })?;
        check_addr(&remote).map_err(|err| ParseError::Addr {
            field: Field::Remote,
            err,
        })?;
        check_pair(&local, &remote)?;
        Ok(Create {
            id,
            kind,
            local,
            remote,
        })
    }
}

/// A validated repoint command (write to /proc/vw/<N>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repoint {
    /// Selects the entry of this connector whose local address this is; `None`: the connector's only entry.
    pub local: Option<SocketAddr>,
    /// The new send address (AdrC).
    pub remote: SocketAddr,
}

/// A validated destroy command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destroy {
    /// Connector id.
    pub id: ConnectorId,
    /// Selects the entry of this connector whose local address this is; `None`: the connector's only entry.
    pub local: Option<SocketAddr>,
}

/// Which field an address error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The receive address (AdrA, AdrIn, or the repoint/destroy selector).
    Local,
    /// The send address (AdrB, AdrOut, AdrC).
    Remote,
}

/// Why a /proc/vw write (or an `ip link` request) was rejected.  Every variant changes no state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More than [`MAX_INPUT`] bytes.
    TooLong {
        /// Bytes written.
        len: usize,
    },
    /// Nothing but blanks.
    Empty,
    /// Not valid UTF-8.
    NotUtf8,
    /// A control byte (NUL, CR, a second newline, DEL...): binary input.
    ControlChar,
    /// Valid UTF-8 but not ASCII.
    NonAscii,
    /// Wrong number of fields (this includes trailing garbage).
    FieldCount {
        /// Fields found.
        got: usize,
        /// Accepted forms.
        usage: &'static str,
    },
    /// Four fields whose first is not `relay`.
    UnknownKeyword,
    /// Bad connector id.
    Id(IdError),
    /// Bad address.
    Addr {
        /// Which address.
        field: Field,
        /// What is wrong with it.
        err: AddrError,
    },
    /// Local and remote addresses of different families.
    FamilyMismatch,
    /// Local and remote address identical.
    SameAddress,
}

impl ParseError {
    /// Positive errno the write returns (negated by the kernel).
    pub const fn errno(&self) -> i32 {
        match self {
            ParseError::TooLong { .. } => errno::E2BIG,
            _ => errno::EINVAL,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong { len } => {
                write!(f, "input too long ({len} bytes, max {MAX_INPUT})")
            }
            ParseError::Empty => f.write_str("empty command"),
            ParseError::NotUtf8 => f.write_str("input is not UTF-8 text"),
            ParseError::ControlChar => f.write_str("control character in input"),
            ParseError::NonAscii => f.write_str("non-ASCII character in input"),
            ParseError::FieldCount { got, usage } => {
                write!(f, "wrong number of fields ({got}); usage: {usage}")
            }
            ParseError::UnknownKeyword => write!(f, "unknown keyword (only '{RELAY_KEYWORD}')"),
            ParseError::Id(e) => e.fmt(f),
            ParseError::Addr {
                field: Field::Local,
                err,
            } => write!(f, "local address: {err}"),
            ParseError::Addr {
                field: Field::Remote,
                err,
            } => write!(f, "remote address: {err}"),
            ParseError::FamilyMismatch => f.write_str("local and remote address families differ"),
            ParseError::SameAddress => f.write_str("local and remote address are the same"),
        }
    }
}

fn check_pair(local: &SocketAddr, remote: &SocketAddr) -> Result<(), ParseError> {
    if Family::of(local) != Family::of(remote) {
        Err(ParseError::FamilyMismatch)
    } else if local == remote {
        Err(ParseError::SameAddress)
    } else {
        Ok(())
    }
}

/// Checks size and character set and strips one trailing newline.
fn line(input: &[u8]) -> Result<&str, ParseError> {
    if input.len() > MAX_INPUT {
        return Err(ParseError::TooLong { len: input.len() });
    }
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let text = core::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    for &b in text.as_bytes() {
        if b >= 0x80 {
            return Err(ParseError::NonAscii);
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            return Err(ParseError::ControlChar);
        }
    }
    Ok(text)
}

/// Splits into at most 4 fields; returns them and the total field count.
fn fields(input: &[u8]) -> Result<([&str; 4], usize), ParseError> {
    let text = line(input)?;
    let mut out = [""; 4];
    let mut n = 0usize;
    for field in text.split([' ', '\t']).filter(|s| !s.is_empty()) {
        if let Some(slot) = out.get_mut(n) {
            *slot = field;
        }
        n = n.saturating_add(1);
    }
    if n == 0 {
        return Err(ParseError::Empty);
    }
    Ok((out, n))
}

fn id(text: &str) -> Result<ConnectorId, ParseError> {
    parse_id(text).map_err(ParseError::Id)
}

fn addr(text: &str, field: Field, default_port: u16) -> Result<SocketAddr, ParseError> {
    parse_addr(text, default_port).map_err(|err| ParseError::Addr { field, err })
}

/// Parses a write to /proc/vw/create.
pub fn parse_create(input: &[u8], default_port: u16) -> Result<Create, ParseError> {
    let (f, n) = fields(input)?;
    let (kind, [n_text, local, remote]) = match (n, f) {
        (3, [a, b, c, _]) if a != RELAY_KEYWORD => (Kind::Endpoint, [a, b, c]),
        (4, [k, a, b, c]) if k == RELAY_KEYWORD => (Kind::Relay, [a, b, c]),
        (4, [k, ..]) if k.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) => {
            return Err(ParseError::UnknownKeyword)
        }
        (got, _) => {
            return Err(ParseError::FieldCount {
                got,
                usage: CREATE_USAGE,
            })
        }
    };
    let id = id(n_text)?;
    let local = addr(local, Field::Local, default_port)?;
    let remote = addr(remote, Field::Remote, default_port)?;
    check_pair(&local, &remote)?;
    Ok(Create {
        id,
        kind,
        local,
        remote,
    })
}

/// Parses a write to /proc/vw/<N>.
pub fn parse_repoint(input: &[u8], default_port: u16) -> Result<Repoint, ParseError> {
    let (f, n) = fields(input)?;
    match (n, f) {
        (1, [c, ..]) => Ok(Repoint {
            local: None,
            remote: addr(c, Field::Remote, default_port)?,
        }),
        (2, [a, c, ..]) => {
            let local = addr(a, Field::Local, default_port)?;
            let remote = addr(c, Field::Remote, default_port)?;
            check_pair(&local, &remote)?;
            Ok(Repoint {
                local: Some(local),
                remote,
            })
        }
        (got, _) => Err(ParseError::FieldCount {
            got,
            usage: REPOINT_USAGE,
        }),
    }
}

/// Parses a write to /proc/vw/destroy.
pub fn parse_destroy(input: &[u8], default_port: u16) -> Result<Destroy, ParseError> {
    let (f, n) = fields(input)?;
    match (n, f) {
        (1, [n_text, ..]) => Ok(Destroy {
            id: id(n_text)?,
            local: None,
        }),
        (2, [n_text, a, ..]) => Ok(Destroy {
            id: id(n_text)?,
            local: Some(addr(a, Field::Local, default_port)?),
        }),
        (got, _) => Err(ParseError::FieldCount {
            got,
            usage: DESTROY_USAGE,
        }),
    }
}

/// Parses an on/off setting written by an operator (e.g. `/sys/kernel/config/vwire/collapse`): exactly `1`, `y`,
/// `yes`, `on` or `0`, `n`, `no`, `off` (any case), with surrounding whitespace ignored. Anything else is `None`:
/// unlike the kernel's `kstrtobool`, `1garbage` is not taken for `1`.
pub fn parse_switch(input: &[u8]) -> Option<bool> {
    let text = core::str::from_utf8(input).ok()?.trim();
    const ON: [&str; 4] = ["1", "y", "yes", "on"];
    const OFF: [&str; 4] = ["0", "n", "no", "off"];
    if ON.iter().any(|w| w.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if OFF.iter().any(|w| w.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    const P: u16 = 4789;

    fn a4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
    }

    fn cid(n: u32) -> ConnectorId {
        ConnectorId::new(n).unwrap()
    }

    #[test]
    fn switches() {
        for on in [&b"1"[..], b"1\n", b"y", b"Yes", b"on\n", b" ON "] {
            assert_eq!(parse_switch(on), Some(true), "{on:?}");
        }
        for off in [&b"0"[..], b"0\n", b"n", b"No", b"off\n"] {
            assert_eq!(parse_switch(off), Some(false), "{off:?}");
        }
        for bad in [&b""[..], b"\n", b"1garbage", b"2", b"o", b"onn", b"\xff", b"1 0"] {
            assert_eq!(parse_switch(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn create_endpoint() {
        let want = Create {
            id: cid(7),
            kind: Kind::Endpoint,
            local: a4(1, P),
            remote: a4(2, 5000),
        };
        assert_eq!(parse_create(b"7 10.0.0.1 10.0.0.2:5000", P), Ok(want));
        assert_eq!(parse_create(b"7 10.0.0.1 10.0.0.2:5000\n", P), Ok(want));
        assert_eq!(
            parse_create(b"  7\t10.0.0.1   10.0.0.2:5000 \t\n", P),
            Ok(want)
        );
    }

    #[test]
    fn create_relay() {
        let want = Create {
            id: cid(9),
            kind: Kind::Relay,
            local: a4(1, 6000),
            remote: a4(3, P),
        };
        assert_eq!(
            parse_create(b"relay 9 10.0.0.1:6000 10.0.0.3\n", P),
            Ok(want)
        );
    }

    #[test]
    fn create_ipv6() {
        let c = parse_create(b"16777216 [2001:db8::1]:4789 [2001:db8::2]", P).unwrap();
        assert_eq!(c.id.get(), 16_777_216);
        assert_eq!(Family::of(&c.remote), Family::V6);
    }

    #[test]
    fn create_errors() {
        let long = [b'1'; MAX_INPUT + 1];
        let cases: &[(&[u8], ParseError)] = &[
            (&long, ParseError::TooLong { len: MAX_INPUT + 1 }),
            (b"", ParseError::Empty),
            (b"\n", ParseError::Empty),
            (b"   \t \n", ParseError::Empty),
            (b"7 10.0.0.1 \xff10.0.0.2", ParseError::NotUtf8),
            (b"7 10.0.0.1 10.0.0.2\0", ParseError::ControlChar),
            (b"7 10.0.0.1 10.0.0.2\r\n", ParseError::ControlChar),
            (b"7 10.0.0.1 10.0.0.2\n\n", ParseError::ControlChar),
            (b"7 10.0.0.1\n10.0.0.2", ParseError::ControlChar),
            (b"7 10.0.0.1 10.0.0.2\x7f", ParseError::ControlChar),
            ("7 10.0.0.1 10.0.0.2 é".as_bytes(), ParseError::NonAscii),
            (
                b"7 10.0.0.1",
                ParseError::FieldCount {
                    got: 2,
                    usage: CREATE_USAGE,
                },
            ),
            (
                b"7",
                ParseError::FieldCount {
                    got: 1,
                    usage: CREATE_USAGE,
                },
            ),
            (
                b"7 10.0.0.1 10.0.0.2 10.0.0.3",
                ParseError::FieldCount {
                    got: 4,
                    usage: CREATE_USAGE,
                },
            ),
            (
                b"relay 7 10.0.0.1 10.0.0.2 x",
                ParseError::FieldCount {
                    got: 5,
                    usage: CREATE_USAGE,
                },
            ),
            (
                b"relay 7 10.0.0.1",
                ParseError::FieldCount {
                    got: 3,
                    usage: CREATE_USAGE,
                },
            ),
            (b"bridge 7 10.0.0.1 10.0.0.2", ParseError::UnknownKeyword),
            (b"RELAY 7 10.0.0.1 10.0.0.2", ParseError::UnknownKeyword),
            (b"0 10.0.0.1 10.0.0.2", ParseError::Id(IdError::Zero)),
            (
                b"07 10.0.0.1 10.0.0.2",
                ParseError::Id(IdError::LeadingZero),
            ),
            (b"x 10.0.0.1 10.0.0.2", ParseError::Id(IdError::NotDecimal)),
            (
                b"4294967296 10.0.0.1 10.0.0.2",
                ParseError::Id(IdError::TooLarge),
            ),
            (
                b"7 10.0.0.1:0 10.0.0.2",
                ParseError::Addr {
                    field: Field::Local,
                    err: AddrError::PortZero,
                },
            ),
            (
                b"7 10.0.0.1 224.0.0.1",
                ParseError::Addr {
                    field: Field::Remote,
                    err: AddrError::Multicast,
                },
            ),
            (
                b"7 0.0.0.0 10.0.0.2",
                ParseError::Addr {
                    field: Field::Local,
                    err: AddrError::Unspecified,
                },
            ),
            (b"7 10.0.0.1 [::1]", ParseError::FamilyMismatch),
            (b"7 10.0.0.1 10.0.0.1:4789", ParseError::SameAddress),
            (b"relay 7 [::1]:5 [::1]:5", ParseError::SameAddress),
        ];
        for (input, err) in cases {
            assert_eq!(
                parse_create(input, P),
                Err(*err),
                "input {:?}",
                core::str::from_utf8(input)
            );
        }
        // Exactly MAX_INPUT bytes is not "too long": it fails later, on the content.
        assert_eq!(
            parse_create(&long[..MAX_INPUT], P),
            Err(ParseError::FieldCount {
                got: 1,
                usage: CREATE_USAGE
            })
        );
    }

    #[test]
    fn max_input_accepted_with_padding() {
        let mut buf = [b' '; MAX_INPUT];
        let cmd = b"7 10.0.0.1 10.0.0.2";
        buf[..cmd.len()].copy_from_slice(cmd);
        buf[MAX_INPUT - 1] = b'\n';
        assert!(parse_create(&buf, P).is_ok());
    }

    #[test]
    fn repoint() {
        assert_eq!(
            parse_repoint(b"10.0.0.9\n", P),
            Ok(Repoint {
                local: None,
                remote: a4(9, P)
            })
        );
        assert_eq!(
            parse_repoint(b"10.0.0.1:1 10.0.0.9:2", P),
            Ok(Repoint {
                local: Some(a4(1, 1)),
                remote: a4(9, 2)
            })
        );
        assert_eq!(parse_repoint(b"", P), Err(ParseError::Empty));
        assert_eq!(
            parse_repoint(b"10.0.0.1 10.0.0.2 10.0.0.3", P),
            Err(ParseError::FieldCount {
                got: 3,
                usage: REPOINT_USAGE
            })
        );
        assert_eq!(
            parse_repoint(b"7", P),
            Err(ParseError::Addr {
                field: Field::Remote,
                err: AddrError::BadIpv4
            })
        );
        assert_eq!(
            parse_repoint(b"x 10.0.0.2", P),
            Err(ParseError::Addr {
                field: Field::Local,
                err: AddrError::BadIpv4
            })
        );
        assert_eq!(
            parse_repoint(b"10.0.0.1 [::2]", P),
            Err(ParseError::FamilyMismatch)
        );
        assert_eq!(
            parse_repoint(b"10.0.0.1 10.0.0.1", P),
            Err(ParseError::SameAddress)
        );
        assert_eq!(
            parse_repoint(b"255.255.255.255", P),
            Err(ParseError::Addr {
                field: Field::Remote,
                err: AddrError::Broadcast
            })
        );
    }

    #[test]
    fn destroy() {
        assert_eq!(
            parse_destroy(b"7\n", P),
            Ok(Destroy {
                id: cid(7),
                local: None
            })
        );
        assert_eq!(
            parse_destroy(b"7 10.0.0.1:9", P),
            Ok(Destroy {
                id: cid(7),
                local: Some(a4(1, 9))
            })
        );
        assert_eq!(
            parse_destroy(b"7 8 9", P),
            Err(ParseError::FieldCount {
                got: 3,
                usage: DESTROY_USAGE
            })
        );
        assert_eq!(parse_destroy(b"0", P), Err(ParseError::Id(IdError::Zero)));
        assert_eq!(
            parse_destroy(b"-1", P),
            Err(ParseError::Id(IdError::NotDecimal))
        );
        assert_eq!(
            parse_destroy(b"7 [fe80::1]", P),
            Err(ParseError::Addr {
                field: Field::Local,
                err: AddrError::ScopeRequired
            })
        );
    }

    #[test]
    fn create_new_validates() {
        assert_eq!(
            Create::new(cid(1), Kind::Endpoint, a4(1, 0), a4(2, 1)),
            Err(ParseError::Addr {
                field: Field::Local,
                err: AddrError::PortZero
            })
        );
        assert_eq!(
            Create::new(cid(1), Kind::Relay, a4(1, 1), a4(1, 1)),
            Err(ParseError::SameAddress)
        );
        assert!(Create::new(cid(1), Kind::Relay, a4(1, 1), a4(1, 2)).is_ok());
    }

    #[test]
    fn errno_and_messages() {
        assert_eq!(ParseError::TooLong { len: 300 }.errno(), errno::E2BIG);
        assert_eq!(ParseError::FamilyMismatch.errno(), errno::EINVAL);
        use core::fmt::Write;
        let mut buf = [0u8; 128];
        let mut w = super::super::status::BufWriter::new(&mut buf);
        write!(
            w,
            "{}",
            ParseError::Addr {
                field: Field::Remote,
                err: AddrError::Multicast
            }
        )
        .unwrap();
        assert_eq!(w.as_bytes(), b"remote address: multicast address");
        let mut w = super::super::status::BufWriter::new(&mut buf);
        write!(
            w,
            "{}",
            ParseError::FieldCount {
                got: 2,
                usage: CREATE_USAGE
            }
        )
        .unwrap();
        assert_eq!(
            w.as_bytes(),
            b"wrong number of fields (2); usage: <N> <AdrA> <AdrB> | relay <N> <AdrIn> <AdrOut>"
        );
    }
}
