//! Integration tests: a real server on 127.0.0.1:0 in this process, real TCP clients.

use coopswap_proto::wire::{
    errno, Capability, Request, RequestBody, PAGE_SIZE, REQUEST_HEADER_LEN,
};
use coopswap_repod::client::{pattern_page, Answer, Client, ClientError};
use coopswap_repod::config::Config;
use coopswap_repod::server::{Server, ServerHandle};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const TOKEN_A: &str = "0102030405060708090a0b0c0d0e0f10";
const TOKEN_B: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";
const TOKEN_C: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const T: Duration = Duration::from_secs(5);

fn cap(s: &str) -> Capability {
    coopswap_repod::config::parse_token(s).unwrap()
}

fn start_with(capacity_pages: u64, extra: &str) -> ServerHandle {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
capacity_pages = {capacity_pages}
memlock = "try"
{extra}
[[client]]
id = 1
name = "a"
token = "{TOKEN_A}"
[[client]]
id = 2
name = "b"
token = "{TOKEN_B}"
max_pages = 3
"#
    );
    Server::bind(Config::parse(&text).unwrap())
        .unwrap()
        .spawn()
        .unwrap()
}

fn start(capacity_pages: u64) -> ServerHandle {
    start_with(capacity_pages, "")
}

fn client_a(s: &ServerHandle) -> Client {
    Client::connect(s.addr(), 1, cap(TOKEN_A), T).unwrap()
}

fn client_b(s: &ServerHandle) -> Client {
    Client::connect(s.addr(), 2, cap(TOKEN_B), T).unwrap()
}

fn count(
    s: &ServerHandle,
    f: impl Fn(&coopswap_repod::metrics::Counters) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    f(&s.shared().counters).load(Relaxed)
}

/// Counters are updated just before the reply is written or the connection closed; give the server a moment.
fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn store_fetch_drop() {
    let s = start(64);
    let mut c = client_a(&s);
    assert_eq!(c.version, 1);
    assert_eq!(c.max_pages, 64);
    let p = pattern_page(1, 7);
    assert_eq!(c.store(7, &p).unwrap(), Answer::Ok(0));
    match c.fetch(7).unwrap() {
        Answer::Data { page, data, crc } => {
            assert_eq!(page, 7);
            assert_eq!(*data, *p);
            assert_eq!(crc, coopswap_proto::crc32c::crc32c(&p[..]));
        }
        other => panic!("{other:?}"),
    }
    // overwrite
    let q = pattern_page(2, 7);
    assert_eq!(c.store(7, &q).unwrap(), Answer::Ok(0));
    assert!(matches!(c.fetch(7).unwrap(), Answer::Data { data, .. } if *data == *q));
    assert_eq!(c.fetch(8).unwrap(), Answer::NotFound);
    assert_eq!(c.ping().unwrap(), Answer::Ok(63));
    assert_eq!(c.drop_pages(0, 100).unwrap(), Answer::Ok(1));
    assert_eq!(c.fetch(7).unwrap(), Answer::NotFound);
    assert_eq!(c.ping().unwrap(), Answer::Ok(64));
    assert_eq!(count(&s, |c| &c.stores), 2);
    assert_eq!(count(&s, |c| &c.fetches), 2);
    assert_eq!(count(&s, |c| &c.fetch_misses), 2);
    assert_eq!(count(&s, |c| &c.dropped_pages), 1);
    assert_eq!(count(&s, |c| &c.hellos), 1);
    s.shutdown();
}

#[test]
fn wrong_token_is_denied_and_counted() {
    let s = start(64);
    // HELLO with a wrong token, and with the right token for the wrong client id
    let mut raw = Client::connect_raw(s.addr(), cap(TOKEN_B), T).unwrap();
    assert_eq!(raw.hello(1).unwrap(), Answer::Denied);
    assert_eq!(raw.hello(99).unwrap(), Answer::Denied);
    // unbound connection can do nothing
    assert_eq!(raw.fetch(1).unwrap(), Answer::Error(errno::EPROTO));
    assert!(matches!(
        Client::connect(s.addr(), 1, cap(TOKEN_B), T),
        Err(ClientError::Refused(Answer::Denied))
    ));
    assert_eq!(count(&s, |c| &c.denied), 3);

    // a bound connection using another capability is denied, nothing is stored
    let mut a = client_a(&s);
    let p = pattern_page(3, 1);
    a.send_with_cap(77, cap(TOKEN_B), RequestBody::store(1, &p));
    a.send_with_cap(78, cap(TOKEN_B), RequestBody::Fetch { page: 1 });
    a.flush().unwrap();
    assert_eq!(a.recv().unwrap(), (77, Answer::Denied));
    assert_eq!(a.recv().unwrap(), (78, Answer::Denied));
    assert_eq!(a.fetch(1).unwrap(), Answer::NotFound);
    assert_eq!(count(&s, |c| &c.denied), 5);
    assert_eq!(count(&s, |c| &c.stores), 0);
    let m = s.shared().metrics_text();
    assert!(m.contains("coopswap_repod_denied_total 5"), "{m}");
    s.shutdown();
}

#[test]
fn full_repository_and_full_quota_refuse_cleanly() {
    let s = start(4);
    let mut a = client_a(&s);
    for i in 0..4 {
        assert_eq!(a.store(i, &pattern_page(0, i)).unwrap(), Answer::Ok(0));
    }
    assert_eq!(a.store(4, &pattern_page(0, 4)).unwrap(), Answer::Full);
    // overwriting a page held already needs no room
    assert_eq!(a.store(3, &pattern_page(1, 3)).unwrap(), Answer::Ok(0));
    // the connection keeps working and the refused page is not there
    assert_eq!(a.fetch(4).unwrap(), Answer::NotFound);
    assert_eq!(a.ping().unwrap(), Answer::Ok(0));
    assert_eq!(count(&s, |c| &c.full), 1);
    // client b is refused too (repository full), then gets its own quota of 3 after a drops
    let mut b = client_b(&s);
    assert_eq!(b.max_pages, 3);
    assert_eq!(b.store(0, &pattern_page(2, 0)).unwrap(), Answer::Full);
    assert_eq!(a.drop_pages(0, 4).unwrap(), Answer::Ok(4));
    for i in 0..3 {
        assert_eq!(b.store(i, &pattern_page(2, i)).unwrap(), Answer::Ok(0));
    }
    assert_eq!(
        b.store(3, &pattern_page(2, 3)).unwrap(),
        Answer::Full,
        "quota of 3 pages"
    );
    assert_eq!(
        a.store(9, &pattern_page(0, 9)).unwrap(),
        Answer::Ok(0),
        "a still has room"
    );
    assert_eq!(count(&s, |c| &c.full), 3);
    s.shutdown();
}

fn assert_still_serves(s: &ServerHandle, other: &mut Client) {
    let p = pattern_page(9, 1);
    assert_eq!(other.store(1, &p).unwrap(), Answer::Ok(0));
    assert!(matches!(other.fetch(1).unwrap(), Answer::Data { data, .. } if *data == *p));
    let mut fresh = client_b(s);
    assert!(matches!(fresh.fetch(1).unwrap(), Answer::Data { data, .. } if *data == *p));
}

#[test]
fn garbage_closes_only_that_connection() {
    let s = start(16);
    let mut other = client_b(&s);
    let data = pattern_page(0, 0);
    let mut store = vec![0u8; REQUEST_HEADER_LEN + PAGE_SIZE];
    Request {
        tag: 1,
        cap: cap(TOKEN_A),
        body: RequestBody::store(0, &data),
    }
    .encode(&mut store)
    .unwrap();
    let mut bad_crc = store.clone();
    bad_crc[REQUEST_HEADER_LEN + 5] ^= 0xff;
    let mut oversized = store[..REQUEST_HEADER_LEN].to_vec();
    oversized[44..48].copy_from_slice(&(64u32 << 20).to_le_bytes());
    let mut bad_op = store[..REQUEST_HEADER_LEN].to_vec();
    bad_op[5] = 200;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "http",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        ("zeros", vec![0u8; 1000], false),
        ("bad checksum", bad_crc, true),
        ("oversized length", oversized, true),
        ("unknown op", bad_op, true),
    ];
    let mut malformed = 0;
    for (name, bytes, hello_first) in cases {
        let mut c = if hello_first {
            client_a(&s)
        } else {
            Client::connect_raw(s.addr(), cap(TOKEN_A), T).unwrap()
        };
        c.send_raw(&bytes);
        c.flush().unwrap();
        assert!(c.is_closed_by_peer(T), "{name}: connection not closed");
        malformed += 1;
        eventually(name, || count(&s, |c| &c.malformed) == malformed);
        assert_still_serves(&s, &mut other);
    }
    // a frame cut off by the peer closing is counted too
    let mut t = TcpStream::connect(s.addr()).unwrap();
    t.write_all(&store[..100]).unwrap();
    drop(t);
    eventually("truncated", || count(&s, |c| &c.malformed) == malformed + 1);
    assert_still_serves(&s, &mut other);
    // the server said why before closing: ERROR with tag 0
    let mut t = TcpStream::connect(s.addr()).unwrap();
    t.write_all(b"garbage!").unwrap();
    let mut reply = Vec::new();
    t.read_to_end(&mut reply).unwrap();
    let (r, _) = coopswap_proto::wire::decode_reply(&reply).unwrap();
    assert_eq!(
        (r.tag, r.body),
        (
            0,
            coopswap_proto::wire::ReplyBody::Error {
                code: errno::EPROTO
            }
        )
    );
    s.shutdown();
}

#[test]
fn two_clients_are_isolated() {
    let s = start(32);
    let mut a = client_a(&s);
    let mut b = client_b(&s);
    let pa = pattern_page(0xa, 5);
    let pb = pattern_page(0xb, 5);
    assert_eq!(a.store(5, &pa).unwrap(), Answer::Ok(0));
    assert_eq!(
        b.fetch(5).unwrap(),
        Answer::NotFound,
        "b must not see a's page"
    );
    assert_eq!(b.store(5, &pb).unwrap(), Answer::Ok(0));
    assert!(matches!(a.fetch(5).unwrap(), Answer::Data { data, .. } if *data == *pa));
    assert!(matches!(b.fetch(5).unwrap(), Answer::Data { data, .. } if *data == *pb));
    // b's drop of everything leaves a's pages alone
    assert_eq!(b.drop_pages(0, u32::MAX).unwrap(), Answer::Ok(1));
    assert!(matches!(a.fetch(5).unwrap(), Answer::Data { data, .. } if *data == *pa));
    // b cannot use a's token on its connection
    b.send_with_cap(3, cap(TOKEN_A), RequestBody::Fetch { page: 5 });
    b.flush().unwrap();
    assert_eq!(b.recv().unwrap(), (3, Answer::Denied));
    // a second HELLO switching client on one connection is refused
    let mut raw = Client::connect_raw(s.addr(), cap(TOKEN_B), T).unwrap();
    assert!(matches!(raw.hello(2).unwrap(), Answer::Welcome { .. }));
    let mut sw = Client::connect_raw(s.addr(), cap(TOKEN_A), T).unwrap();
    assert!(matches!(sw.hello(1).unwrap(), Answer::Welcome { .. }));
    sw.send_with_cap(
        9,
        cap(TOKEN_B),
        RequestBody::Hello {
            client_id: 2,
            min_version: 1,
            max_version: 1,
        },
    );
    sw.flush().unwrap();
    assert_eq!(sw.recv().unwrap(), (9, Answer::Error(errno::EPROTO)));
    assert!(
        matches!(sw.fetch(5).unwrap(), Answer::Data { data, .. } if *data == *pa),
        "still bound to a"
    );
    s.shutdown();
}

#[test]
fn pipelined_64_requests_matched_by_tag() {
    let s = start(128);
    let mut a = client_a(&s);
    // 64 stores with scrambled tags in one write
    let tag_of = |i: u64| coopswap_proto::placement::mix64(i) | 1;
    let mut want: HashMap<u64, u64> = HashMap::new();
    for i in 0..64u64 {
        let p = pattern_page(4, 100 + i);
        a.send(tag_of(i), RequestBody::store(100 + i, &p));
        want.insert(tag_of(i), 100 + i);
    }
    a.flush().unwrap();
    let mut seen = HashMap::new();
    for _ in 0..64 {
        let (tag, ans) = a.recv().unwrap();
        assert_eq!(ans, Answer::Ok(0));
        assert!(want.contains_key(&tag), "unknown tag {tag}");
        assert!(seen.insert(tag, ()).is_none(), "tag {tag} answered twice");
    }
    // 64 mixed requests (fetches in reverse order, misses, pings, a drop) in one write, matched by tag only
    let mut expect: HashMap<u64, Option<u64>> = HashMap::new();
    for i in (0..60u64).rev() {
        a.send(tag_of(1000 + i), RequestBody::Fetch { page: 100 + i });
        expect.insert(tag_of(1000 + i), Some(100 + i));
    }
    a.send(tag_of(2000), RequestBody::Fetch { page: 5000 });
    expect.insert(tag_of(2000), None);
    a.send(tag_of(2001), RequestBody::Ping);
    expect.insert(tag_of(2001), None);
    a.send(
        tag_of(2002),
        RequestBody::Drop {
            first: 160,
            count: 4,
        },
    );
    expect.insert(tag_of(2002), None);
    a.send(tag_of(2003), RequestBody::Fetch { page: 161 });
    expect.insert(tag_of(2003), None);
    a.flush().unwrap();
    for _ in 0..64 {
        let (tag, ans) = a.recv().unwrap();
        let exp = expect
            .remove(&tag)
            .unwrap_or_else(|| panic!("unexpected tag {tag}"));
        match (tag, ans) {
            (_, Answer::Data { page, data, .. }) => {
                assert_eq!(Some(page), exp);
                assert_eq!(*data, *pattern_page(4, page));
            }
            (t, Answer::NotFound) => assert!(t == tag_of(2000) || t == tag_of(2003)),
            (t, Answer::Ok(v)) if t == tag_of(2001) => assert_eq!(v, 128 - 64),
            (t, Answer::Ok(v)) if t == tag_of(2002) => assert_eq!(v, 4),
            other => panic!("{other:?}"),
        }
    }
    assert!(expect.is_empty());
    s.shutdown();
}

#[test]
fn many_concurrent_clients() {
    let s = start(4096);
    let addr = s.addr();
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, 1, cap(TOKEN_A), T).unwrap();
                for i in 0..64 {
                    let page = t * 1000 + i;
                    assert_eq!(c.store(page, &pattern_page(t, page)).unwrap(), Answer::Ok(0));
                }
                for i in 0..64 {
                    let page = t * 1000 + i;
                    assert!(matches!(c.fetch(page).unwrap(), Answer::Data { data, .. } if *data == *pattern_page(t, page)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&s, |c| &c.stores), 16 * 64);
    assert_eq!(s.shared().gauges().used_pages, 16 * 64);
    s.shutdown();
}

#[test]
fn hello_timeout_and_connection_limit() {
    let s = start_with(16, "max_connections = 2\nhello_timeout_ms = 200");
    let mut idle = Client::connect_raw(s.addr(), cap(TOKEN_A), T).unwrap();
    assert!(idle.is_closed_by_peer(T));
    eventually("hello timeout", || count(&s, |c| &c.hello_timeouts) == 1);
    eventually("slot freed", || count(&s, |c| &c.clients_connected) == 0);
    let mut a1 = client_a(&s);
    let _a2 = client_a(&s);
    let mut third = TcpStream::connect(s.addr()).unwrap();
    let mut reply = Vec::new();
    third.read_to_end(&mut reply).unwrap();
    let (r, _) = coopswap_proto::wire::decode_reply(&reply).unwrap();
    assert_eq!(
        r.body,
        coopswap_proto::wire::ReplyBody::Error { code: errno::EBUSY }
    );
    assert_eq!(count(&s, |c| &c.refused_connections), 1);
    // bound connections are not subject to the HELLO timeout
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(a1.ping().unwrap(), Answer::Ok(16));
    s.shutdown();
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let s = start(8);
    let mut a = client_a(&s);
    a.store(1, &pattern_page(0, 1)).unwrap();
    let mut t = TcpStream::connect(s.metrics_addr().unwrap()).unwrap();
    t.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    t.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK\r\n"), "{body}");
    for line in [
        "coopswap_repod_stores_total 1",
        "coopswap_repod_capacity_pages 8",
        "coopswap_repod_used_pages 1",
        "coopswap_repod_clients_connected 1",
        "# TYPE coopswap_repod_denied_total counter",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    s.shutdown();
}

#[test]
fn reload_adds_removes_and_changes_clients() {
    let s = start(64);
    let mut a = client_a(&s);
    let mut b = client_b(&s);
    assert_eq!(a.store(1, &pattern_page(1, 1)).unwrap(), Answer::Ok(0));
    assert_eq!(b.store(1, &pattern_page(2, 1)).unwrap(), Answer::Ok(0));
    assert!(
        Client::connect(s.addr(), 3, cap(TOKEN_C), T).is_err(),
        "client 3 not configured yet"
    );
    // new config: a keeps its token with a quota, b is removed, c is added
    let text = format!(
        r#"
listen = "127.0.0.1:0"
capacity_pages = 64
memlock = "try"
[[client]]
id = 1
token = "{TOKEN_A}"
max_pages = 2
[[client]]
id = 3
token = "{TOKEN_C}"
"#
    );
    let r = s.shared().reload(&Config::parse(&text).unwrap());
    assert_eq!(
        (r.added, r.removed, r.changed, r.freed_pages),
        (vec![3], vec![2], vec![1], 1)
    );
    assert_eq!(r.need_restart, vec!["metrics_listen"]);
    // b's open connection is denied from now on, and its page is gone
    assert_eq!(b.fetch(1).unwrap(), Answer::Denied);
    assert!(Client::connect(s.addr(), 2, cap(TOKEN_B), T).is_err());
    // a keeps its pages and its connection; the new quota applies at once
    assert!(
        matches!(a.fetch(1).unwrap(), Answer::Data { data, .. } if *data == *pattern_page(1, 1))
    );
    assert_eq!(a.store(2, &pattern_page(1, 2)).unwrap(), Answer::Ok(0));
    assert_eq!(a.store(3, &pattern_page(1, 3)).unwrap(), Answer::Full);
    // c connects
    let mut c = Client::connect(s.addr(), 3, cap(TOKEN_C), T).unwrap();
    assert_eq!(
        c.fetch(1).unwrap(),
        Answer::NotFound,
        "c sees nothing of b's old pages"
    );
    assert_eq!(s.shared().gauges().used_pages, 2);
    s.shutdown();
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Whatever a (possibly authenticated) peer sends, the server answers or closes, and keeps serving others.
        #[test]
        fn random_bytes_never_break_the_server(bytes in prop::collection::vec(any::<u8>(), 1..9000), hello in any::<bool>()) {
            static SERVER: std::sync::OnceLock<(std::net::SocketAddr, std::sync::Arc<coopswap_repod::server::Shared>)> = std::sync::OnceLock::new();
            let (addr, _shared) = SERVER.get_or_init(|| {
                let s = start(64);
                let out = (s.addr(), s.shared().clone());
                std::mem::forget(s);
                out
            });
            let mut c = if hello { Client::connect(*addr, 1, cap(TOKEN_A), T).unwrap() } else { Client::connect_raw(*addr, cap(TOKEN_A), T).unwrap() };
            c.send_raw(&bytes);
            let _ = c.flush();
            drop(c);
            let mut good = Client::connect(*addr, 2, cap(TOKEN_B), T).unwrap();
            prop_assert!(matches!(good.ping().unwrap(), Answer::Ok(_)));
        }
    }
}
