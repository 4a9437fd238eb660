//! Property tests: the parser never panics and agrees with itself and with `core::net`; the header codec is a
//! bijection on valid headers; the table keeps its invariants and matches a simple model under random operation
//! sequences.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::prelude::*;
use vwire_core::addr::{check_addr, parse_addr, parse_ipv4, parse_ipv6, Family};
use vwire_core::cmd::{parse_create, parse_destroy, parse_repoint, Create, ParseError, MAX_INPUT};
use vwire_core::datapath::{classify_rx, classify_tx, RxVerdict, TxVerdict};
use vwire_core::header::{decode, encode, WireHeader, HEADER_LEN};
use vwire_core::id::{parse_id, ConnectorId};
use vwire_core::index::RxIndex;
use vwire_core::mtu::{endpoint_mtu, mtu_overhead};
use vwire_core::status::render_status;
use vwire_core::table::{Kind, Mode, Slot, Table, TableError, EMPTY_SLOT};

const P: u16 = 4789;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Text made mostly of characters that occur in commands, so that random inputs get deep into the parser.
fn commandish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(b"0123456789abcdefABCDEF:.[]% \t\nrelay".to_vec()),
            1 => any::<u8>(),
        ],
        0..80,
    )
}

fn valid_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), 1u16..)
        .prop_map(|(o, p)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(o), p)))
        .prop_filter("valid endpoint address", |a| check_addr(a).is_ok())
}

fn valid_v6() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u16; 8]>(), 1u16.., 1u32..).prop_map(|(g, p, s)| {
            let ip = Ipv6Addr::from(g);
            let scope = if g[0] & 0xffc0 == 0xfe80 { s } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(ip, p, 0, scope))
        }),
        // Bias towards zero runs, so `::` compression is exercised.
        (
            prop::collection::vec(prop_oneof![3 => Just(0u16), 1 => any::<u16>()], 8),
            1u16..
        )
            .prop_map(|(g, p)| {
                let mut a = [0u16; 8];
                a.copy_from_slice(&g);
                a[0] = 0x2001;
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(a), p, 0, 0))
            }),
        // Link-local with a scope.
        (any::<u64>(), 1u16.., 1u32..).prop_map(|(iid, p, s)| {
            let ip = Ipv6Addr::from((0xfe80u128 << 112) | u128::from(iid));
            SocketAddr::V6(SocketAddrV6::new(ip, p, 0, s))
        }),
    ]
    .prop_filter("valid endpoint address", |a| check_addr(a).is_ok())
}

fn any_valid_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![valid_v4(), valid_v6()]
}

fn valid_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![(valid_v4(), valid_v4()), (valid_v6(), valid_v6())]
        .prop_filter("distinct", |(a, b)| a != b)
}

/// An alternative spelling: uncompressed, zero-padded, upper-case IPv6 groups.
fn long_form(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => {
            let groups: Vec<String> = v6
                .ip()
                .segments()
                .iter()
                .map(|g| format!("{g:04X}"))
                .collect();
            let scope = if v6.scope_id() != 0 {
                format!("%{}", v6.scope_id())
            } else {
                String::new()
            };
            format!("[{}{}]:{}", groups.join(":"), scope, v6.port())
        }
    }
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn parsers_never_panic_on_bytes(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_create(&input, P);
        let _ = parse_repoint(&input, P);
        let _ = parse_destroy(&input, P);
    }

    #[test]
    fn parsers_never_panic_on_commandish(input in commandish(), port in any::<u16>()) {
        let c = parse_create(&input, port);
        let r = parse_repoint(&input, port);
        let d = parse_destroy(&input, port);
        // Whatever is accepted is valid.
        if let Ok(c) = c {
            prop_assert!(check_addr(&c.local).is_ok() && check_addr(&c.remote).is_ok());
            prop_assert_eq!(Family::of(&c.local), Family::of(&c.remote));
            prop_assert_ne!(c.local, c.remote);
        }
        if let Ok(r) = r {
            prop_assert!(check_addr(&r.remote).is_ok());
        }
        if let Ok(d) = d {
            prop_assert!(d.id.get() != 0);
        }
        if input.len() > MAX_INPUT {
            prop_assert_eq!(parse_create(&input, port), Err(ParseError::TooLong { len: input.len() }));
        }
    }

    #[test]
    fn ipv6_parser_agrees_with_core(text in "[0-9a-fA-F:.]{0,45}") {
        prop_assert_eq!(parse_ipv6(&text), text.parse::<Ipv6Addr>().ok(), "text {:?}", text);
    }

    #[test]
    fn ipv4_parser_agrees_with_core(text in "[0-9.]{0,18}") {
        prop_assert_eq!(parse_ipv4(&text), text.parse::<Ipv4Addr>().ok(), "text {:?}", text);
    }

    #[test]
    fn address_display_roundtrip(a in any_valid_addr()) {
        prop_assert_eq!(parse_addr(&a.to_string(), P), Ok(a));
        prop_assert_eq!(parse_addr(&long_form(&a), P), Ok(a));
        // Without a port the default applies.
        let text = a.to_string();
        let (no_port, _) = text.rsplit_once(':').unwrap();
        let mut expect = a;
        expect.set_port(P);
        prop_assert_eq!(parse_addr(no_port, P), Ok(expect));
    }

    #[test]
    fn create_command_roundtrip(id in 1u32.., (local, remote) in valid_pair(), relay in any::<bool>()) {
        let text = format!("{}{id} {local}\t {remote}\n", if relay { "relay " } else { "" });
        let kind = if relay { Kind::Relay } else { Kind::Endpoint };
        let want = Create { id: ConnectorId::new(id).unwrap(), kind, local, remote };
        prop_assert_eq!(parse_create(text.as_bytes(), P), Ok(want));
        prop_assert_eq!(parse_id(&id.to_string()), Ok(want.id));
    }

    #[test]
    fn header_roundtrip(id in 1u32..) {
        let id = ConnectorId::new(id).unwrap();
        let mut pkt = [0x5au8; HEADER_LEN + 14];
        encode(id, &mut pkt).unwrap();
        let (got, inner) = decode(&pkt).unwrap();
        prop_assert_eq!(got, id);
        prop_assert_eq!(inner, &[0x5au8; 14][..]);
    }

    #[test]
    fn header_decode_is_canonical(hdr in header_bytes()) {
        let mut pkt = [0u8; HEADER_LEN + 14];
        pkt[..8].copy_from_slice(&hdr);
        match decode(&pkt) {
            // Accepted headers are exactly the encodings of their id.
            Ok((id, _)) => prop_assert_eq!(WireHeader::new(id).to_bytes(), hdr),
            Err(_) => {
                // Nothing encodes to a rejected header: the id word alone would decode to some id, re-encoding
                // it must differ.
                for id in [u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]), u32::from_be_bytes([0, hdr[4], hdr[5], hdr[6]])] {
                    if let Some(id) = ConnectorId::new(id) {
                        prop_assert_ne!(WireHeader::new(id).to_bytes(), hdr);
                    }
                }
            }
        }
    }

    #[test]
    fn endpoint_mtu_arithmetic(pmtu in 0u32..70000, v6 in any::<bool>()) {
        let family = if v6 { Family::V6 } else { Family::V4 };
        match endpoint_mtu(pmtu, family) {
            Some(m) => {
                prop_assert_eq!(m + mtu_overhead(family), pmtu);
                prop_assert!(m >= 68 && pmtu <= 65535);
            }
            None => prop_assert!(pmtu < mtu_overhead(family) + 68 || pmtu > 65535 || (v6 && pmtu < 1280)),
        }
    }
}

/// Header bytes biased towards the interesting cases: valid flags, zero reserved bytes, ids near 0 and 2^24.
fn header_bytes() -> impl Strategy<Value = [u8; 8]> {
    let flags = prop_oneof![3 => Just(0x08u8), 3 => Just(0x48u8), 1 => any::<u8>()];
    let reserved = prop_oneof![6 => Just([0u8; 3]), 1 => any::<[u8; 3]>()];
    let word = prop_oneof![
        1 => any::<u32>(),
        1 => 0u32..16,
        1 => 0x00ff_fff0u32..0x0100_0010,
        1 => (0u32..0x0100_0000).prop_map(|v| v << 8),
        1 => (0u32..0x0100_0000).prop_map(|v| (v << 8) | 1),
    ];
    (flags, reserved, word).prop_map(|(f, r, w)| {
        let mut h = [0u8; 8];
        h[0] = f;
        h[1..4].copy_from_slice(&r);
        h[4..].copy_from_slice(&w.to_be_bytes());
        h
    })
}

// ---- table model test ----

const CAP: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Create {
        id: u32,
        kind: Kind,
        local: usize,
        remote: usize,
        pmtu: u32,
    },
    Repoint {
        id: u32,
        sel: Option<usize>,
        remote: usize,
    },
    Destroy {
        id: u32,
        sel: Option<usize>,
    },
    Collapse(bool),
}

/// A small pool so that collisions, collapses and ambiguities are frequent.
fn pool(i: usize) -> SocketAddr {
    let host = [1u8, 1, 1, 2, 2, 3][i % 6];
    let port = [1u16, 2, 3, 1, 2, 1][i % 6];
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), port))
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![4 => Just(Kind::Endpoint), 1 => Just(Kind::Relay)];
    prop_oneof![
        5 => (1u32..4, kind, 0usize..6, 0usize..6, prop_oneof![9 => Just(1500u32), 1 => 0u32..2000])
            .prop_map(|(id, kind, local, remote, pmtu)| Op::Create { id, kind, local, remote, pmtu }),
        3 => (1u32..4, prop::option::of(0usize..6), 0usize..6)
            .prop_map(|(id, sel, remote)| Op::Repoint { id, sel, remote }),
        2 => (1u32..4, prop::option::of(0usize..6)).prop_map(|(id, sel)| Op::Destroy { id, sel }),
        1 => any::<bool>().prop_map(Op::Collapse),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct M {
    id: u32,
    kind: Kind,
    local: SocketAddr,
    remote: SocketAddr,
}

fn select(model: &[M], id: u32, sel: Option<usize>) -> Result<usize, TableError> {
    match sel {
        Some(l) => model
            .iter()
            .position(|m| m.id == id && m.local == pool(l))
            .ok_or(TableError::NotFound),
        None => {
            let hits: Vec<usize> = (0..model.len()).filter(|&i| model[i].id == id).collect();
            match hits.len() {
                0 => Err(TableError::NotFound),
                1 => Ok(hits[0]),
                n => Err(TableError::Ambiguous { entries: n }),
            }
        }
    }
}

fn cid(n: u32) -> ConnectorId {
    ConnectorId::new(n).unwrap()
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn table_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut t: Table<[Slot; CAP]> = Table::new([EMPTY_SLOT; CAP]);
        let mut model: Vec<M> = Vec::new();
        let mut collapse = true;
        for op in ops {
            match op {
                Op::Create { id, kind, local, remote, pmtu } => {
                    let (l, r) = (pool(local), pool(remote));
                    let expect = if l == r {
                        Err(TableError::Invalid(ParseError::SameAddress))
                    } else if model.iter().any(|m| m.id == id && m.local == l) {
                        Err(TableError::Exists)
                    } else if kind == Kind::Endpoint && endpoint_mtu(pmtu, Family::V4).is_none() {
                        Err(TableError::PathMtu { path_mtu: pmtu })
                    } else if model.len() == CAP {
                        Err(TableError::Full)
                    } else {
                        Ok(())
                    };
                    let got = t.create(&Create { id: cid(id), kind, local: l, remote: r }, pmtu);
                    prop_assert_eq!(got.map(|_| ()), expect);
                    if expect.is_ok() {
                        model.push(M { id, kind, local: l, remote: r });
                    }
                }
                Op::Repoint { id, sel, remote } => {
                    let r = pool(remote);
                    let expect = select(&model, id, sel).and_then(|i| {
                        if model[i].local == r { Err(TableError::Invalid(ParseError::SameAddress)) } else { Ok(i) }
                    });
                    let got = t.repoint(cid(id), sel.map(pool).as_ref(), r);
                    prop_assert_eq!(got.map(|_| ()), expect.map(|_| ()));
                    if let Ok(i) = expect {
                        model[i].remote = r;
                    }
                }
                Op::Destroy { id, sel } => {
                    let expect = select(&model, id, sel);
                    let got = t.destroy(cid(id), sel.map(pool).as_ref());
                    prop_assert_eq!(got.map(|(_, e)| (e.id().get(), e.local())), expect.map(|i| (model[i].id, model[i].local)));
                    if let Ok(i) = expect {
                        model.remove(i);
                    }
                }
                Op::Collapse(on) => {
                    t.set_collapse(on);
                    collapse = on;
                }
            }

            // Same set of entries.
            let have: BTreeSet<M> = t.iter().map(|(_, e)| M { id: e.id().get(), kind: e.kind(), local: e.local(), remote: e.remote() }).collect();
            let want: BTreeSet<M> = model.iter().copied().collect();
            prop_assert_eq!(&have, &want);
            prop_assert_eq!(t.len(), model.len());
            // (id, local) unique.
            prop_assert_eq!(have.iter().map(|m| (m.id, m.local)).collect::<BTreeSet<_>>().len(), have.len());
            // Modes follow the collapse rule, computed independently from the model.
            for (i, e) in t.iter() {
                prop_assert!(e.local() != e.remote());
                match e.mode() {
                    Mode::Relay => prop_assert_eq!(e.kind(), Kind::Relay),
                    Mode::Collapsed { peer } => {
                        prop_assert!(collapse && e.kind() == Kind::Endpoint && peer != i);
                        let p = t.get(peer).unwrap();
                        prop_assert!(p.kind() == Kind::Endpoint && p.id() == e.id() && p.local() == e.remote());
                    }
                    Mode::Encapsulating => {
                        prop_assert_eq!(e.kind(), Kind::Endpoint);
                        let peer_exists = model.iter().any(|m| m.kind == Kind::Endpoint && m.id == e.id().get() && m.local == e.remote());
                        prop_assert!(!(collapse && peer_exists));
                    }
                }
                if e.kind() == Kind::Endpoint {
                    prop_assert_eq!(Some(e.mtu()), endpoint_mtu(e.path_mtu(), Family::V4));
                }
            }
            // The receive index finds exactly what the table finds.
            let mut index = RxIndex::new([0u32; 2 * CAP]);
            index.rebuild(&t).unwrap();
            for id in 1..4u32 {
                for l in 0..6 {
                    prop_assert_eq!(index.lookup(&t, cid(id), &pool(l)), t.find(cid(id), &pool(l)));
                }
            }
            // Every id with entries renders; others are not found.
            let mut buf = vec![0u8; 8192];
            for id in 1..4u32 {
                let n = model.iter().filter(|m| m.id == id).count();
                match render_status(&mut buf, &t, cid(id)) {
                    Ok(len) => {
                        let text = std::str::from_utf8(&buf[..len]).unwrap();
                        prop_assert_eq!(text.matches("id: ").count(), n);
                    }
                    Err(_) => prop_assert_eq!(n, 0),
                }
            }
        }
    }
}

// ---- two endpoint managers exchanging frames ----

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn rx_never_panics(payload in prop::collection::vec(any::<u8>(), 0..64), hdr in header_bytes(), port in 1u16..4) {
        let mut t: Table<[Slot; 4]> = Table::new([EMPTY_SLOT; 4]);
        t.create(&parse_create(b"7 10.0.0.1:1 10.0.0.2:1", P).unwrap(), 1500).unwrap();
        t.create(&parse_create(b"relay 7 10.0.0.1:2 10.0.0.3:1", P).unwrap(), 1500).unwrap();
        let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port));
        let _ = classify_rx(&t, &local, &payload);
        let mut framed = hdr.to_vec();
        framed.extend_from_slice(&payload);
        let _ = classify_rx(&t, &local, &framed);
    }

    /// Host A's endpoint encapsulates a frame; host B receives it on the address A sent to and must deliver exactly
    /// that frame out of its endpoint of the same connector - and nothing else must match.
    #[test]
    fn frames_cross_between_managers((a, b) in valid_pair(), id in 1u32.., other in 1u32.., frame in prop::collection::vec(any::<u8>(), 14..200)) {
        prop_assume!(other != id);
        let (id, other) = (cid(id), cid(other));
        let mut host_a: Table<[Slot; 4]> = Table::new([EMPTY_SLOT; 4]);
        let mut host_b: Table<[Slot; 4]> = Table::new([EMPTY_SLOT; 4]);
        let pmtu = 9000;
        let xa = host_a.create(&Create { id, kind: Kind::Endpoint, local: a, remote: b }, pmtu).unwrap();
        let xb = host_b.create(&Create { id, kind: Kind::Endpoint, local: b, remote: a }, pmtu).unwrap();
        // A decoy on B: same local address, other connector.
        host_b.create(&Create { id: other, kind: Kind::Endpoint, local: b, remote: a }, pmtu).unwrap();
        let TxVerdict::Encapsulate { remote, header, fits_path, .. } = classify_tx(&host_a, xa, frame.len()) else {
            return Err(TestCaseError::fail("host A did not encapsulate"));
        };
        prop_assert_eq!(remote, b);
        prop_assert!(fits_path);
        let mut udp = header.to_vec();
        udp.extend_from_slice(&frame);
        prop_assert_eq!(classify_rx(&host_b, &remote, &udp), RxVerdict::Deliver { slot: xb, frame: &frame[..] });
        // The same datagram arriving at A's own address matches nothing there (A has no entry of `id` at b).
        prop_assert_eq!(
            classify_rx(&host_a, &remote, &udp),
            RxVerdict::Drop { slot: None, reason: vwire_core::counters::DropReason::UnknownConnector }
        );
    }
}
