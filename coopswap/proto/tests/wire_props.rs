//! Property tests of the wire codec: round trips, streaming, and that no input makes the decoder panic.

use coopswap_proto::crc32c::crc32c;
use coopswap_proto::wire::*;
use proptest::prelude::*;

fn page_from(seed: u64) -> Box<Page> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    let mut x = seed | 1;
    for b in p.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    p
}

#[derive(Debug, Clone)]
enum Req {
    Hello(u64, u16, u16),
    Store(u64, u64),
    Fetch(u64),
    Drop(u64, u32),
    Ping,
}

fn req_strategy() -> impl Strategy<Value = (u64, [u8; 16], Req)> {
    let body = prop_oneof![
        (any::<u64>(), 1u16..100, 0u16..100).prop_map(|(c, lo, d)| Req::Hello(
            c,
            lo,
            lo.saturating_add(d)
        )),
        (any::<u64>(), any::<u64>()).prop_map(|(p, s)| Req::Store(p, s)),
        any::<u64>().prop_map(Req::Fetch),
        (0u64..u64::MAX / 2, 1u32..).prop_map(|(f, c)| Req::Drop(f, c)),
        Just(Req::Ping),
    ];
    (any::<u64>(), any::<[u8; 16]>(), body)
}

fn with_request<R>(tag: u64, cap: [u8; 16], r: &Req, f: impl FnOnce(Request<'_>) -> R) -> R {
    let page;
    let body = match *r {
        Req::Hello(client_id, min_version, max_version) => RequestBody::Hello {
            client_id,
            min_version,
            max_version,
        },
        Req::Store(p, seed) => {
            page = page_from(seed);
            RequestBody::store(p, &page)
        }
        Req::Fetch(page) => RequestBody::Fetch { page },
        Req::Drop(first, count) => RequestBody::Drop { first, count },
        Req::Ping => RequestBody::Ping,
    };
    f(Request {
        tag,
        cap: Capability(cap),
        body,
    })
}

#[derive(Debug, Clone)]
enum Rep {
    Welcome(u16, u64),
    Ok(u64),
    Data(u64, u64),
    NotFound,
    Full,
    Denied,
    Error(u32),
}

fn rep_strategy() -> impl Strategy<Value = (u64, Rep)> {
    let body = prop_oneof![
        (1u16.., any::<u64>()).prop_map(|(v, m)| Rep::Welcome(v, m)),
        any::<u64>().prop_map(Rep::Ok),
        (any::<u64>(), any::<u64>()).prop_map(|(p, s)| Rep::Data(p, s)),
        Just(Rep::NotFound),
        Just(Rep::Full),
        Just(Rep::Denied),
        any::<u32>().prop_map(Rep::Error),
    ];
    (any::<u64>(), body)
}

fn with_reply<R>(tag: u64, r: &Rep, f: impl FnOnce(Reply<'_>) -> R) -> R {
    let page;
    let body = match *r {
        Rep::Welcome(version, max_pages) => ReplyBody::Welcome { version, max_pages },
        Rep::Ok(value) => ReplyBody::Ok { value },
        Rep::Data(p, seed) => {
            page = page_from(seed);
            ReplyBody::Data {
                page: p,
                crc: crc32c(&page[..]),
                data: &page,
            }
        }
        Rep::NotFound => ReplyBody::NotFound,
        Rep::Full => ReplyBody::Full,
        Rep::Denied => ReplyBody::Denied,
        Rep::Error(code) => ReplyBody::Error { code },
    };
    f(Reply { tag, body })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_roundtrip((tag, cap, r) in req_strategy()) {
        with_request(tag, cap, &r, |req| {
            let mut buf = vec![0u8; MAX_REQUEST_LEN + 3];
            let n = req.encode(&mut buf).unwrap();
            prop_assert_eq!(n, req.encoded_len());
            let (back, used) = decode_request(&buf[..n]).unwrap();
            prop_assert_eq!(used, n);
            prop_assert_eq!(back, req);
            // trailing bytes of a following frame are not consumed
            let (back2, used2) = decode_request(&buf).unwrap();
            prop_assert_eq!((back2, used2), (req, n));
            // every proper prefix asks for more, never more than what is really missing
            for cut in [0, 1, 4, REQUEST_HEADER_LEN - 1, REQUEST_HEADER_LEN, n - 1] {
                if cut < n {
                    match decode_request(&buf[..cut]) {
                        Err(WireError::Incomplete { needed }) => prop_assert!(needed >= 1 && needed <= n - cut),
                        other => prop_assert!(false, "prefix {} gave {:?}", cut, other),
                    }
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn reply_roundtrip((tag, r) in rep_strategy()) {
        with_reply(tag, &r, |rep| {
            let mut buf = vec![0u8; MAX_REPLY_LEN];
            let n = rep.encode(&mut buf).unwrap();
            let (back, used) = decode_reply(&buf[..n]).unwrap();
            prop_assert_eq!(used, n);
            prop_assert_eq!(back, rep);
            for cut in 0..n.min(REPLY_HEADER_LEN + 2) {
                let incomplete = matches!(decode_reply(&buf[..cut]), Err(WireError::Incomplete { .. }));
                prop_assert!(incomplete);
            }
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..5000)) {
        // decoders must return, not panic; a successful decode re-encodes to the same bytes (canonical form)
        if let Ok((req, used)) = decode_request(&bytes) {
            let mut out = vec![0u8; used];
            prop_assert_eq!(req.encode(&mut out), Ok(used));
            prop_assert_eq!(&out[..], &bytes[..used]);
        }
        if let Ok((rep, used)) = decode_reply(&bytes) {
            let mut out = vec![0u8; used];
            prop_assert_eq!(rep.encode(&mut out), Ok(used));
            prop_assert_eq!(&out[..], &bytes[..used]);
        }
    }

    #[test]
    fn mutated_headers_never_panic((tag, cap, r) in req_strategy(), pos in 0usize..REQUEST_HEADER_LEN, val in any::<u8>()) {
        with_request(tag, cap, &r, |req| {
            let mut buf = vec![0u8; MAX_REQUEST_LEN];
            let n = req.encode(&mut buf).unwrap();
            buf[pos] = val;
            match decode_request(&buf[..n]) {
                Ok((back, used)) => {
                    // only fields without constraints were changed: the result re-encodes to the mutated bytes
                    let mut out = vec![0u8; used];
                    back.encode(&mut out).unwrap();
                    prop_assert_eq!(&out[..], &buf[..used]);
                }
                Err(e) => prop_assert!(e.errno() > 0),
            }
            Ok(())
        })?;
    }

    #[test]
    fn pipelined_frames_decode_in_sequence(reqs in prop::collection::vec(req_strategy(), 1..20)) {
        let mut stream = Vec::new();
        let mut expect = Vec::new();
        for (tag, cap, r) in &reqs {
            with_request(*tag, *cap, r, |req| {
                let mut buf = vec![0u8; req.encoded_len()];
                req.encode(&mut buf).unwrap();
                stream.extend_from_slice(&buf);
                expect.push((req.tag, req.header()));
            });
        }
        let mut off = 0;
        for (tag, hdr) in expect {
            let (req, used) = decode_request(&stream[off..]).unwrap();
            prop_assert_eq!(req.tag, tag);
            prop_assert_eq!(req.header(), hdr);
            off += used;
        }
        prop_assert_eq!(off, stream.len());
    }
}
