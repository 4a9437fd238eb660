//! A self-test of the codec, page-map record, placement and map export/import that needs nothing but `core`, so the
//! kernel module can run it as one KUnit case and the host runs it as a unit test. The caller lends a scratch buffer
//! of at least [`SCRATCH_LEN`] bytes (a page plus the largest frame), so the test itself keeps under 1 KiB of stack:
//!
//! ```ignore
//! let mut scratch = KVec::from_elem(0u8, proto::selftest::SCRATCH_LEN, GFP_KERNEL)?;
//! assert_eq!(proto::selftest::run(&mut scratch), Ok(()));
//! ```
//!
//! It returns the name of the first failing check.

use super::crc32c::{crc32c, crc32c_append};
use super::mapfile::{
    ImportError, MapError, MapExporter, MapHeader, MapImporter, MapSink, RepoAddr, RepoEntry,
    HEADER_LEN, RECORD_LEN, REPO_ENTRY_LEN, TRAILER_LEN,
};
use super::pagemap::{PageFlags, PageRecord, ReadPlan, StoreOutcome, NO_REPO};
use super::placement::{place, RepoFlags, RepoInfo};
use super::slots::{Layout, Slots};
use super::window::{Refused, Span, Window};
use super::writebehind::{ArrayPool, Completion, Retry, WRITE_TRIES};
use super::wire::{
    decode_reply, decode_request, Capability, Page, Reply, ReplyBody, ReplyHeader, Request,
    RequestBody, WireError, MAX_REQUEST_LEN, PAGE_SIZE, REPLY_HEADER_LEN, REQUEST_HEADER_LEN,
};

/// Scratch bytes [`run`] needs.
pub const SCRATCH_LEN: usize = PAGE_SIZE + MAX_REQUEST_LEN;

/// A failing check, by name.
pub type Failure = &'static str;

fn check(ok: bool, name: Failure) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(name)
    }
}

/// Run every check.
pub fn run(scratch: &mut [u8]) -> Result<(), Failure> {
    let scratch = scratch
        .get_mut(..SCRATCH_LEN)
        .ok_or("scratch buffer shorter than SCRATCH_LEN")?;
    let (page, frame) = scratch.split_at_mut(PAGE_SIZE);
    let page: &mut Page = page.try_into().map_err(|_| "scratch split")?;
    crc()?;
    wire(page, frame)?;
    pagemap()?;
    placement()?;
    mapfile()?;
    writebehind()?;
    slots()?;
    window()?;
    Ok(())
}

/// The requests in service: an overlapping one waits, each completes when its own replies are in, first error kept.
fn window() -> Result<(), Failure> {
    // Unit requests: the window's places then take about 800 bytes of this frame.
    let mut w: Window<(), u8> = Window::new();
    let a = w.admit((), Span { pos: 0, len: 8192 }).map_err(|_| "window: first request admitted")?;
    let refused = w.admit((), Span { pos: 4096, len: 4096 });
    check(matches!(refused, Err(((), Refused::Overlaps))), "window: an overlapping request waits")?;
    let b = w.admit((), Span { pos: 8192, len: 4096 }).map_err(|_| "window: a disjoint request admitted")?;
    w.sent(a);
    w.sent(a);
    w.sent(b);
    w.answered(a);
    w.answered(b);
    check(w.next_answered(0) == Some(b), "window: b completes without waiting for a's replies")?;
    w.fail(b, 5);
    w.fail(b, 6);
    check(w.complete(b) == Some(((), Err(5))), "window: the first error kept")?;
    w.answered(a);
    check(w.next_answered(0) == Some(a) && w.complete(a) == Some(((), Ok(()))), "window: a completes last")?;
    check(w.is_empty() && w.complete(a).is_none(), "window: each completes once")
}

/// The local store's slots: handed out in order, wrapping to freed ones, never one twice.
fn slots() -> Result<(), Failure> {
    let mut m = Slots::with([u64::MAX; 2], 70).ok_or("slots: two words hold 70 slots")?;
    for want in 0..70u64 {
        check(m.alloc() == Some(want), "slots: handed out in order")?;
    }
    check(m.alloc().is_none() && m.used() == 70, "slots: all used")?;
    check(m.free(64) && !m.free(64) && m.free(2), "slots: free once")?;
    check(m.alloc() == Some(2) && m.alloc() == Some(64), "slots: wrap to the freed ones")?;
    check(!m.mark(5) && !m.mark(70), "slots: a used or out-of-range slot cannot be claimed")?;
    let mut m = Slots::with([u64::MAX; 2], 70).ok_or("slots: a second map")?;
    check(m.used() == 0 && m.alloc() == Some(0), "slots: a new map starts empty")?;
    check(m.take(Layout::Fixed, 9) == Some(9) && m.take(Layout::Log, 9) == Some(1), "slots: fixed and log layouts")?;
    check(Layout::parse("log\n") == Some(Layout::Log) && Layout::parse("LOG").is_none(), "slots: layout names")
}

/// The write-behind pool: FIFO order, a full pool refuses, a finished buffer's completion comes back once.
fn writebehind() -> Result<(), Failure> {
    let mut p: ArrayPool<2> = ArrayPool::new();
    let (a, none) = p.claim().ok_or("write-behind: claim of an empty pool")?;
    check(none.is_none() && p.queue(a, 7, 1, 7), "write-behind: queue")?;
    let (b, _) = p.claim().ok_or("write-behind: second claim")?;
    check(p.queue(b, 7, 2, 7), "write-behind: queue a newer write to the same slot")?;
    check(p.claim().is_none(), "write-behind: a full pool must refuse")?;
    check(p.pending(7) && !p.idle(), "write-behind: page pending")?;
    check(p.take_next() == Some((a, 7)), "write-behind: oldest first")?;
    check(p.take_next().is_none(), "write-behind: a later write waits while its slot is being written")?;
    check(p.finish(a, true), "write-behind: finish")?;
    let again = p.claim();
    check(
        again == Some((a, Some(Completion { page: 7, seq: 1, ok: true }))),
        "write-behind: a done buffer is reused after its completion",
    )?;
    p.release(a);
    check(p.take_next() == Some((b, 7)) && p.finish(b, false), "write-behind: second write")?;
    let mut seen = 0u32;
    let n = p.reap(|c| {
        if c == (Completion { page: 7, seq: 2, ok: false }) {
            seen = seen.wrapping_add(1);
        }
    });
    check(n == 1 && seen == 1 && p.idle() && !p.pending(7), "write-behind: reap")?;
    // Runs: any pages queued one after the other to consecutive store slots are taken together, a gap ends the run.
    let mut q: ArrayPool<4> = ArrayPool::new();
    for (page, slot) in [(907u64, 10u64), (3, 11), (55, 12), (4, 20)] {
        let (at, _) = q.claim().ok_or("write-behind: claim for a run")?;
        check(q.queue(at, page, 1, slot), "write-behind: queue for a run")?;
    }
    let mut run = [(0usize, 0u64); 4];
    let n = q.take_run(&mut run);
    let slots_ok = run.iter().take(n).map(|r| r.1).eq([10, 11, 12]);
    check(n == 3 && slots_ok, "write-behind: a run of three consecutive slots")?;
    let n = q.take_run(&mut run);
    check(n == 1 && run.first().map(|r| r.1) == Some(20), "write-behind: the slot after a gap alone")?;
    check(q.take_run(&mut run) == 0, "write-behind: nothing left to take")?;
    // Retries of a failed local write: growing waits, then given up; a failing store gets one try per write.
    let mut r = Retry::new();
    check(r.delay_ms(1) == Some(10) && r.delay_ms(2) == Some(20), "write-behind: first retry waits")?;
    check(r.delay_ms(9) == Some(1000) && r.delay_ms(WRITE_TRIES).is_none(), "write-behind: retries end")?;
    check(r.ended(false) && r.delay_ms(1).is_none(), "write-behind: a failing store is not retried")?;
    check(r.ended(true) && r.delay_ms(1) == Some(10), "write-behind: a good write ends the failing state")
}

fn crc() -> Result<(), Failure> {
    check(crc32c(b"123456789") == 0xE306_9283, "crc32c check value")?;
    check(
        crc32c_append(crc32c(b"1234"), b"56789") == 0xE306_9283,
        "crc32c append",
    )?;
    check(crc32c(&[0u8; 32]) == 0x8A91_36AA, "crc32c of 32 zero bytes")
}

fn wire(page: &mut Page, frame: &mut [u8]) -> Result<(), Failure> {
    for (i, b) in page.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    let cap = Capability([0x11; 16]);
    let store = Request {
        tag: 7,
        cap,
        body: RequestBody::store(42, page),
    };
    let n = store.encode(frame).map_err(|_| "encode STORE")?;
    check(n == REQUEST_HEADER_LEN + PAGE_SIZE, "STORE frame length")?;
    check(frame.get(..4) == Some(b"CSWQ".as_slice()), "request magic")?;
    let (back, used) =
        decode_request(frame.get(..n).ok_or("slice")?).map_err(|_| "decode STORE")?;
    check(used == n && back == store, "STORE round trip")?;
    check(
        decode_request(frame.get(..100).ok_or("slice")?)
            == Err(WireError::Incomplete { needed: n.saturating_sub(100) }),
        "truncated STORE asks for the rest",
    )?;
    if let Some(b) = frame.get_mut(REQUEST_HEADER_LEN + 9) {
        *b ^= 0x80;
    }
    check(
        decode_request(frame.get(..n).ok_or("slice")?) == Err(WireError::BadChecksum),
        "corrupted page refused",
    )?;
    check(
        decode_request(b"GET / HTTP/1.1\r\n") == Err(WireError::BadMagic),
        "garbage refused",
    )?;

    let bodies = [
        RequestBody::Hello {
            client_id: 3,
            min_version: 1,
            max_version: 4,
        },
        RequestBody::Fetch { page: 9 },
        RequestBody::Drop {
            first: 10,
            count: 5,
        },
        RequestBody::Ping,
    ];
    for body in bodies {
        let r = Request { tag: 1, cap, body };
        let n = r.encode(frame).map_err(|_| "encode request")?;
        let ok = decode_request(frame.get(..n).ok_or("slice")?) == Ok((r, n));
        check(ok, "request round trip")?;
    }
    if let Some(len) = frame.get_mut(44..48) {
        len.copy_from_slice(&0x0010_0000u32.to_le_bytes());
    }
    check(
        decode_request(frame) == Err(WireError::Oversized(0x0010_0000)),
        "oversized length refused",
    )?;

    let crc = crc32c(page);
    let replies = [
        ReplyBody::Welcome {
            version: 1,
            max_pages: 100,
        },
        ReplyBody::Ok { value: 5 },
        ReplyBody::Data {
            page: 42,
            crc,
            data: page,
        },
        ReplyBody::NotFound,
        ReplyBody::Full,
        ReplyBody::Denied,
        ReplyBody::Error { code: 71 },
    ];
    for body in replies {
        let r = Reply { tag: 99, body };
        let n = r.encode(frame).map_err(|_| "encode reply")?;
        check(
            decode_reply(frame.get(..n).ok_or("slice")?) == Ok((r, n)),
            "reply round trip",
        )?;
        let h = ReplyHeader::parse(frame.get(..REPLY_HEADER_LEN).ok_or("slice")?)
            .map_err(|_| "reply header")?;
        let len = h.payload_len().map_err(|_| "reply payload length")?;
        let payload = frame
            .get(REPLY_HEADER_LEN..REPLY_HEADER_LEN.saturating_add(len))
            .ok_or("slice")?;
        check(h.reply(payload) == Ok(r), "reply from header and payload")?;
    }
    Ok(())
}

fn pagemap() -> Result<(), Failure> {
    let repos = [
        RepoInfo::new(1, RepoFlags::UP),
        RepoInfo::new(2, RepoFlags::UP),
    ];
    let mut rec = PageRecord::new(5);
    check(
        rec.read_plan(&repos) == ReadPlan::Unmapped,
        "fresh page reads as zeroes",
    )?;
    let w1 = rec.begin_write(111, Some(0), Some(5));
    check(
        rec.read_plan(&repos) == ReadPlan::Wait,
        "read waits for the first write",
    )?;
    let w2 = rec.begin_write(222, Some(1), Some(5));
    check(w2.drop_stale == Some(0), "moved page drops its stale copy")?;
    check(
        !rec.complete_remote(w1.seq, StoreOutcome::Stored),
        "stale STORE completion ignored",
    )?;
    check(
        !rec.complete_local(w1.seq, true),
        "stale local completion ignored",
    )?;
    check(
        rec.read_plan(&repos) == ReadPlan::Wait,
        "stale completions validate nothing",
    )?;
    check(rec.complete_local(w2.seq, true), "local completion")?;
    check(
        rec.read_plan(&repos) == ReadPlan::Local { slot: 5 },
        "local copy serves before the STORE is done",
    )?;
    check(
        rec.complete_remote(w2.seq, StoreOutcome::Stored),
        "remote completion",
    )?;
    let plan = ReadPlan::Remote {
        repo: 1,
        crc: 222,
        fallback: Some(5),
    };
    check(rec.read_plan(&repos) == plan, "network memory serves reads")?;
    check(
        rec.verify_fetched(1, 222) && !rec.verify_fetched(1, 111),
        "fetched page checked against the record",
    )?;
    let dead = [repos[0], RepoInfo::new(2, RepoFlags::UP | RepoFlags::DEAD)];
    check(
        rec.read_plan(&dead) == ReadPlan::Local { slot: 5 },
        "dead repository: read the local copy",
    )?;
    check(rec.needs_move(&dead), "page on a dead repository must move")?;
    check(
        rec.repo_gone(1) && rec.repo == NO_REPO,
        "repository removal keeps the page",
    )?;
    let w3 = rec.begin_write(333, Some(0), Some(5));
    rec.complete_local(w3.seq, false);
    rec.complete_remote(w3.seq, StoreOutcome::Full);
    check(
        rec.read_plan(&repos) == ReadPlan::Lost,
        "no copy at all reads as an error, not zeroes",
    )?;
    check(
        rec.discard() == Some(0) && rec.read_plan(&repos) == ReadPlan::Unmapped,
        "discard",
    )?;
    Ok(())
}

fn placement() -> Result<(), Failure> {
    let repos = [
        RepoInfo::new(1, RepoFlags::UP | RepoFlags::FULL),
        RepoInfo::new(2, RepoFlags::UP | RepoFlags::DEAD),
        RepoInfo::new(3, RepoFlags::UP),
        RepoInfo::new(4, RepoFlags::UP | RepoFlags::DRAINING),
        RepoInfo::new(5, RepoFlags::UP),
    ];
    let mut hits = [0u32; 5];
    for page in 0..1000u64 {
        let i = place(9, page, &repos, 0).ok_or("placement found no repository")?;
        let slot = hits
            .get_mut(usize::from(i))
            .ok_or("placement index out of range")?;
        *slot = slot.saturating_add(1);
        check(
            place(9, page, &repos, 1 << i) != Some(i),
            "avoid mask honoured",
        )?;
    }
    check(
        hits[0] == 0 && hits[1] == 0 && hits[3] == 0,
        "full, dead and draining repositories skipped",
    )?;
    check(
        hits[2] > 400 && hits[4] > 400,
        "pages spread over healthy repositories",
    )?;
    check(
        place(9, 1, &repos, (1 << 2) | (1 << 4)).is_none(),
        "no eligible repository",
    )
}

/// Counts what the importer delivers and checks it against the exported items.
struct Verify {
    repos: u16,
    records: u64,
    last: Option<PageRecord>,
}

impl MapSink for Verify {
    type Error = ();
    fn header(&mut self, h: &MapHeader) -> Result<(), ()> {
        if h.record_count == 3 && h.seed == 77 {
            Ok(())
        } else {
            Err(())
        }
    }
    fn repo(&mut self, e: &RepoEntry) -> Result<(), ()> {
        self.repos = self.repos.saturating_add(1);
        if e.repo_id == 1000 && e.addr.port == 7400 {
            Ok(())
        } else {
            Err(())
        }
    }
    fn record(&mut self, r: &PageRecord) -> Result<(), ()> {
        self.records = self.records.saturating_add(1);
        self.last = Some(*r);
        Ok(())
    }
}

fn mapfile() -> Result<(), Failure> {
    let mut stream = [0u8; HEADER_LEN + REPO_ENTRY_LEN + 3 * RECORD_LEN + TRAILER_LEN];
    let header = MapHeader {
        device_pages: 64,
        repo_count: 1,
        record_count: 3,
        seed: 77,
    };
    let repo = RepoEntry {
        index: 0,
        flags: RepoFlags(RepoFlags::UP),
        addr: RepoAddr {
            family: 4,
            ip: [192, 168, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            port: 7400,
        },
        cap: Capability([7; 16]),
        client_id: 2,
        repo_id: 1000,
    };
    let settled = PageFlags::WRITTEN | PageFlags::LOCAL_VALID;
    let records = [
        PageRecord {
            page: 1,
            local: 1,
            repo: 0,
            flags: PageFlags(settled | PageFlags::REMOTE_VALID),
            crc: 5,
            seq: 9,
        },
        PageRecord {
            page: 2,
            local: 2,
            repo: NO_REPO,
            flags: PageFlags(settled),
            crc: 6,
            seq: 0,
        },
        PageRecord {
            page: 63,
            local: 63,
            repo: 0,
            flags: PageFlags(settled),
            crc: 7,
            seq: 0,
        },
    ];
    {
        let mut out = super::wire::Wr(&mut stream);
        let mut hb = [0u8; HEADER_LEN];
        let mut ex = MapExporter::new(&header, &mut hb).map_err(|_| "export header")?;
        out.arr(hb);
        let mut eb = [0u8; REPO_ENTRY_LEN];
        ex.repo(&repo, &mut eb).map_err(|_| "export repository")?;
        out.arr(eb);
        let mut busy = records[0];
        busy.flags.0 |= PageFlags::REMOTE_INFLIGHT;
        let mut rb = [0u8; RECORD_LEN];
        check(
            ex.record(&busy, &mut rb) == Err(MapError::InFlight(1)),
            "busy record refused",
        )?;
        for r in &records {
            ex.record(r, &mut rb).map_err(|_| "export record")?;
            out.arr(rb);
        }
        let mut tb = [0u8; TRAILER_LEN];
        ex.finish(&mut tb).map_err(|_| "export trailer")?;
        out.arr(tb);
    }
    // import in 7-byte chunks
    let mut imp = MapImporter::new();
    let mut sink = Verify {
        repos: 0,
        records: 0,
        last: None,
    };
    for chunk in stream.chunks(7) {
        imp.feed(chunk, &mut sink).map_err(|_| "import")?;
    }
    check(imp.finish().is_ok(), "import complete")?;
    check(sink.repos == 1 && sink.records == 3, "imported counts")?;
    let mut want = records[2];
    want.seq = 0;
    check(
        sink.last == Some(want),
        "imported record equals exported one",
    )?;
    // a flipped bit anywhere is refused
    for i in [
        0usize,
        30,
        HEADER_LEN + 10,
        HEADER_LEN + REPO_ENTRY_LEN + 21,
        stream.len().saturating_sub(6),
    ] {
        let mut imp = MapImporter::new();
        let mut sink = Verify {
            repos: 0,
            records: 0,
            last: None,
        };
        if let Some(b) = stream.get_mut(i) {
            *b ^= 4;
        }
        let fed = imp.feed(&stream, &mut sink);
        if let Some(b) = stream.get_mut(i) {
            *b ^= 4;
        }
        let refused = matches!(fed, Err(ImportError::Map(_)) | Err(ImportError::Sink(())))
            || imp.finish().is_err();
        check(refused, "corrupted export refused")?;
    }
    let mut imp = MapImporter::new();
    let mut sink = Verify {
        repos: 0,
        records: 0,
        last: None,
    };
    imp.feed(stream.get(..stream.len().saturating_sub(1)).ok_or("slice")?, &mut sink)
        .map_err(|_| "import prefix")?;
    check(
        imp.finish() == Err(MapError::Truncated),
        "truncated export refused",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn selftest_passes() {
        let mut scratch = [0u8; super::SCRATCH_LEN];
        assert_eq!(super::run(&mut scratch), Ok(()));
        let mut short = [0u8; 100];
        assert!(super::run(&mut short).is_err());
    }
}
