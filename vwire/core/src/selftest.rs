//! A self-test over the parser, header codec, MTU arithmetic, table and renderer that needs nothing but `core`, so
//! that the kernel module can run it as one KUnit case and the host runs it as a unit test:
//!
//! ```ignore
//! #[test]
//! fn vwire_core_selftest() {
//!     assert_eq!(core_logic::selftest::run(), Ok(()));
//! }
//! ```
//!
//! It returns the name of the first failing check.  Stack use is small (a 4-slot table and a 768-byte buffer).

use core::net::SocketAddr;

use super::addr::AddrError;
use super::cmd::{parse_create, parse_destroy, parse_repoint, Field, ParseError};
use super::errno;
use super::header::{decode, WireHeader};
use super::id::{ConnectorId, IdError};
use super::mtu::endpoint_mtu;
use super::status::render_status;
use super::table::{Kind, Mode, Slot, Table, TableError, EMPTY_SLOT};

const P: u16 = 4789;

/// A failing check, by name.
pub type Failure = &'static str;

fn check(ok: bool, name: Failure) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(name)
    }
}

fn addr(text: &str) -> Result<SocketAddr, Failure> {
    super::addr::parse_addr(text, P).map_err(|_| "parse_addr of a valid address")
}

fn id(n: u32) -> Result<ConnectorId, Failure> {
    ConnectorId::new(n).ok_or("ConnectorId::new")
}

/// Runs every check.
pub fn run() -> Result<(), Failure> {
    parser()?;
    header()?;
    mtu()?;
    table()?;
    Ok(())
}

fn parser() -> Result<(), Failure> {
    let accepted: [&[u8]; 6] = [
        b"7 10.0.0.1:4789 10.0.0.2:4789\n",
        b"7 10.0.0.1 10.0.0.2",
        b"4294967295 [2001:db8::1]:1 [2001:db8::2]",
        b"1 [::ffff:0:1.2.3.4]:9 [64:ff9b::10.0.0.1]",
        b"relay 9 10.0.0.1:6000 10.0.0.3",
        b" 5\t[fe80::1%2] [fe80::2%2]:7 ",
    ];
    for input in accepted {
        check(
            parse_create(input, P).is_ok(),
            "create accepts a valid command",
        )?;
    }
    let rejected: [(&[u8], ParseError); 12] = [
        (&[b'1'; 257], ParseError::TooLong { len: 257 }),
        (b"\n", ParseError::Empty),
        (b"7 10.0.0.1 \xff", ParseError::NotUtf8),
        (b"7 10.0.0.1 10.0.0.2\0", ParseError::ControlChar),
        (b"7 10.0.0.1 10.0.0.2\n\n", ParseError::ControlChar),
        (
            b"7 10.0.0.1",
            ParseError::FieldCount {
                got: 2,
                usage: super::cmd::CREATE_USAGE,
            },
        ),
        (b"via 7 10.0.0.1 10.0.0.2", ParseError::UnknownKeyword),
        (
            b"07 10.0.0.1 10.0.0.2",
            ParseError::Id(IdError::LeadingZero),
        ),
        (b"0 10.0.0.1 10.0.0.2", ParseError::Id(IdError::Zero)),
        (
            b"7 10.0.0.1:0 10.0.0.2",
            ParseError::Addr {
                field: Field::Local,
                err: AddrError::PortZero,
            },
        ),
        (
            b"7 10.0.0.1 239.1.1.1",
            ParseError::Addr {
                field: Field::Remote,
                err: AddrError::Multicast,
            },
        ),
        (b"7 10.0.0.1 [::2]", ParseError::FamilyMismatch),
    ];
    for (input, err) in rejected {
        check(
            parse_create(input, P) == Err(err),
            "create rejects with the right error",
        )?;
    }
    check(
        ParseError::TooLong { len: 257 }.errno() == errno::E2BIG,
        "oversize is E2BIG",
    )?;
    check(
        ParseError::Empty.errno() == errno::EINVAL,
        "syntax errors are EINVAL",
    )?;
    check(
        parse_repoint(b"10.0.0.9\n", P).map(|r| (r.local, r.remote))
            == Ok((None, addr("10.0.0.9:4789")?)),
        "repoint",
    )?;
    check(
        parse_repoint(b"2001:db8::1", P).is_err(),
        "repoint rejects bare IPv6",
    )?;
    check(
        parse_destroy(b"7\n", P).map(|d| d.id.get()) == Ok(7),
        "destroy",
    )?;
    check(
        parse_destroy(b"7 8", P).is_err(),
        "destroy rejects a bad selector",
    )?;
    Ok(())
}

fn header() -> Result<(), Failure> {
    check(
        WireHeader::new(id(7)?).to_bytes() == [8, 0, 0, 0, 0, 0, 7, 0],
        "compact form",
    )?;
    check(
        WireHeader::new(id(0x0100_0000)?).to_bytes() == [0x48, 0, 0, 0, 1, 0, 0, 0],
        "extended form",
    )?;
    let mut pkt = [0u8; 22];
    for raw in [1u32, 7, 0x00ff_ffff, 0x0100_0000, u32::MAX] {
        let cid = id(raw)?;
        super::header::encode(cid, &mut pkt).map_err(|_| "encode")?;
        check(
            decode(&pkt).map(|(got, inner)| (got, inner.len())) == Ok((cid, 14)),
            "roundtrip",
        )?;
    }
    let bad: [[u8; 8]; 4] = [
        [0, 0, 0, 0, 0, 0, 7, 0],
        [8, 0, 0, 0, 0, 0, 7, 1],
        [0x48, 0, 0, 0, 0, 0, 0, 7],
        [8, 0, 0, 0, 0, 0, 0, 0],
    ];
    for hdr in bad {
        let mut p = [0u8; 22];
        if let Some(dst) = p.get_mut(..8) {
            dst.copy_from_slice(&hdr);
        }
        check(decode(&p).is_err(), "malformed header rejected")?;
    }
    check(decode(&pkt[..21]).is_err(), "runt rejected")?;
    Ok(())
}

fn mtu() -> Result<(), Failure> {
    use super::addr::Family;
    check(
        endpoint_mtu(1500, Family::V4) == Some(1450),
        "1500 over IPv4",
    )?;
    check(
        endpoint_mtu(1500, Family::V6) == Some(1430),
        "1500 over IPv6",
    )?;
    check(
        endpoint_mtu(9000, Family::V4) == Some(8950),
        "9000 over IPv4",
    )?;
    check(endpoint_mtu(100, Family::V4).is_none(), "tiny path MTU")?;
    Ok(())
}

fn table() -> Result<(), Failure> {
    let mut t: Table<[Slot; 4]> = Table::new([EMPTY_SLOT; 4]);
    let c = |text: &[u8]| parse_create(text, P).map_err(|_| "parse_create in table check");
    let x = t
        .create(&c(b"5 10.0.0.1:1 10.0.0.1:2")?, 1500)
        .map_err(|_| "create x")?;
    check(
        t.create(&c(b"5 10.0.0.1:1 10.0.0.3")?, 1500) == Err(TableError::Exists),
        "duplicate is EEXIST",
    )?;
    check(
        t.get(x).map(|e| e.mode()) == Some(Mode::Encapsulating),
        "alone: encapsulating",
    )?;
    let y = t
        .create(&c(b"5 10.0.0.1:2 10.0.0.1:1")?, 1500)
        .map_err(|_| "create y")?;
    check(
        t.get(x).map(|e| e.mode()) == Some(Mode::Collapsed { peer: y }),
        "x collapsed onto y",
    )?;
    check(
        t.get(y).map(|e| e.mode()) == Some(Mode::Collapsed { peer: x }),
        "y collapsed onto x",
    )?;
    check(
        t.repoint(id(5)?, None, addr("10.0.0.9")?) == Err(TableError::Ambiguous { entries: 2 }),
        "ambiguous repoint",
    )?;
    let y_local = addr("10.0.0.1:2")?;
    t.repoint(id(5)?, Some(&y_local), addr("10.0.0.9")?)
        .map_err(|_| "repoint y away")?;
    check(
        t.get(y).map(|e| e.mode()) == Some(Mode::Encapsulating),
        "repointed away: encapsulating",
    )?;
    t.create(&c(b"relay 6 10.0.0.1:3 10.0.0.4")?, 0)
        .map_err(|_| "create relay")?;
    t.create(&c(b"7 10.0.0.1:3 10.0.0.4")?, 1500)
        .map_err(|_| "create 7")?;
    check(
        t.create(&c(b"8 10.0.0.1:3 10.0.0.4")?, 1500) == Err(TableError::Full),
        "full is ENOSPC",
    )?;
    check(TableError::Full.errno() == errno::ENOSPC, "ENOSPC")?;
    let mut buf = [0u8; 768];
    let n = render_status(&mut buf, &t, id(5)?).map_err(|_| "render connector 5")?;
    let text = core::str::from_utf8(buf.get(..n).unwrap_or(&[])).map_err(|_| "status is UTF-8")?;
    check(
        text.starts_with("id: 5\nkind: endpoint\nfamily: ipv4\nlocal: 10.0.0.1:1\n"),
        "status text",
    )?;
    check(
        text.contains("mode: collapsed\npeer: 10.0.0.1:2\n"),
        "status shows collapse",
    )?;
    check(text.contains("\n\nid: 5\n"), "two blocks")?;
    let (_, gone) = t.destroy(id(5)?, Some(&y_local)).map_err(|_| "destroy y")?;
    check(gone.kind() == Kind::Endpoint, "destroy returns the entry")?;
    check(
        t.get(x).map(|e| e.mode()) == Some(Mode::Encapsulating),
        "peer gone: encapsulating",
    )?;
    check(
        t.destroy(id(5)?, Some(&y_local)) == Err(TableError::NotFound),
        "destroy twice is ENOENT",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn selftest_passes() {
        assert_eq!(super::run(), Ok(()));
    }
}
