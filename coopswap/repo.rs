// SPDX-License-Identifier: GPL-2.0

//! One page repository as the device sees it: its address, client id and capability token, and one TCP
//! connection speaking the repository protocol (Documentation/coopswap-protocol.md). Requests are pipelined: the
//! device sends many frames, each with its own tag, and collects the replies afterwards (matching them by tag).

use super::core_logic::mapfile::RepoAddr;
use super::core_logic::wire::{self, op, status, Capability, ReplyHeader, RequestHeader, PAGE_SIZE};
use super::overcast::sock::TcpStream;
use kernel::prelude::*;
use kernel::time::{Delta, Instant, Monotonic};

/// Send/receive timeout of a repository connection: a repository that does not answer within it is declared dead
/// and its pages are read from the local store.
pub(crate) const TIMEOUT_MS: u32 = 5000;
/// First wait before an automatic reconnection attempt (`auto_reconnect`), doubled after each failed one up to
/// [`RETRY_MAX_MS`].
pub(crate) const RETRY_FIRST_MS: i64 = 1000;
/// Longest wait between automatic reconnection attempts.
pub(crate) const RETRY_MAX_MS: i64 = 64_000;

/// Per-repository counters (pages).
#[derive(Default, Clone, Copy)]
pub(crate) struct RepoCounters {
    pub(crate) stores: u64,
    pub(crate) fetches: u64,
    pub(crate) full: u64,
    pub(crate) failed: u64,
}

/// A repository in the device's table. Entries are never removed (page records refer to them by index); a removed
/// or failed repository stays as a dead entry.
pub(crate) struct Repo {
    /// Where it is (IPv4 or IPv6, and port).
    pub(crate) addr: RepoAddr,
    pub(crate) client_id: u64,
    pub(crate) cap: Capability,
    pub(crate) conn: Option<TcpStream>,
    pub(crate) max_pages: u64,
    pub(crate) counters: RepoCounters,
    /// Why the repository is not in use (None while up).
    pub(crate) down_reason: Option<&'static str>,
    /// Frames and bytes completely sent on the current connection, HELLO included (to compare with the server's
    /// count when a connection breaks).
    pub(crate) sent_frames: u64,
    pub(crate) sent_bytes: u64,
    /// `sent_frames`/`sent_bytes` when the requests now in flight began (nothing was outstanding).
    pub(crate) mark: (u64, u64),
    /// When the next automatic reconnection attempt is due; `None`: none (in service, being attempted, or out of
    /// service by the administrator's word or for a refused token).
    pub(crate) retry_at: Option<Instant<Monotonic>>,
    /// The wait before the attempt after that one.
    pub(crate) retry_ms: i64,
}

fn wire_err(_e: wire::WireError) -> Error {
    EPROTO
}

impl Repo {
    /// Connects and says HELLO. Errors: connection errno (ECONNREFUSED, ETIMEDOUT, …), EACCES for a wrong token or
    /// unknown client id, EPROTO for a peer that does not speak the protocol.
    pub(crate) fn connect(addr: RepoAddr, client_id: u64, cap: Capability) -> Result<Self> {
        let mut conn = TcpStream::connect(&addr.socket_addr(), TIMEOUT_MS)?;
        let hello = RequestHeader {
            op: op::HELLO,
            flags: 0,
            tag: 0,
            cap,
            page: client_id,
            count: u32::from(wire::MIN_VERSION) | (u32::from(wire::MAX_VERSION) << 16),
            len: 0,
            csum: 0,
        };
        let mut hdr = [0u8; wire::REQUEST_HEADER_LEN];
        hello.write(&mut hdr).map_err(wire_err)?;
        conn.send2(&hdr, &[])?;
        let mut rh = [0u8; wire::REPLY_HEADER_LEN];
        conn.recv_exact(&mut rh)?;
        let h = ReplyHeader::parse(&rh).map_err(wire_err)?;
        if h.payload_len().map_err(wire_err)? != 0 {
            return Err(EPROTO);
        }
        match h.status {
            status::WELCOME => Ok(Self {
                addr,
                client_id,
                cap,
                conn: Some(conn),
                max_pages: h.value,
                counters: RepoCounters::default(),
                down_reason: None,
                sent_frames: 1,
                sent_bytes: wire::REQUEST_HEADER_LEN as u64,
                mark: (1, wire::REQUEST_HEADER_LEN as u64),
                retry_at: None,
                retry_ms: RETRY_FIRST_MS,
            }),
            status::DENIED => Err(EACCES),
            _ => Err(EPROTO),
        }
    }

    /// A repository known by address and capability but not connected (e.g. one an imported map names that does not
    /// answer): out of service from the start, with `reason` shown to the operator.
    pub(crate) fn offline(addr: RepoAddr, client_id: u64, cap: Capability, reason: &'static str) -> Self {
        Self {
            addr,
            client_id,
            cap,
            conn: None,
            max_pages: 0,
            counters: RepoCounters::default(),
            down_reason: Some(reason),
            sent_frames: 0,
            sent_bytes: 0,
            mark: (0, 0),
            // An imported map's repository that did not answer is retried like one that failed.
            retry_at: Some(Instant::<Monotonic>::now() + Delta::from_millis(RETRY_FIRST_MS)),
            retry_ms: RETRY_FIRST_MS,
        }
    }

    /// Out of service after a failure: the next automatic attempt is due after the current wait, which doubles.
    pub(crate) fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::<Monotonic>::now() + Delta::from_millis(self.retry_ms));
        self.retry_ms = (self.retry_ms.saturating_mul(2)).min(RETRY_MAX_MS);
    }

    /// Milliseconds until the next automatic attempt (0 if it is due), or `None` if none is scheduled.
    pub(crate) fn retry_in_ms(&self) -> Option<i64> {
        self.retry_at.as_ref().map(|at| (*at - Instant::<Monotonic>::now()).as_millis().max(0))
    }

    /// Whether an automatic attempt is due now.
    pub(crate) fn retry_due(&self) -> bool {
        self.retry_in_ms() == Some(0)
    }

    /// Sends one request (STORE with `payload`, FETCH or DROP). On error the connection is closed.
    pub(crate) fn send(&mut self, opcode: u8, tag: u64, page: u64, payload: Option<(&[u8], u32)>) -> Result {
        self.send_count(opcode, tag, page, if opcode == op::DROP { 1 } else { 0 }, payload)
    }

    /// [`Repo::send`] with an explicit `count` (DROP of a range).
    fn send_count(&mut self, opcode: u8, tag: u64, page: u64, count: u32, payload: Option<(&[u8], u32)>) -> Result {
        let conn = self.conn.as_mut().ok_or(ENOTCONN)?;
        let (len, csum, data): (u32, u32, &[u8]) = match payload {
            Some((d, crc)) => (PAGE_SIZE as u32, crc, d),
            None => (0, 0, &[]),
        };
        let h = RequestHeader {
            op: opcode,
            flags: 0,
            tag,
            cap: self.cap,
            page,
            count,
            len,
            csum,
        };
        let mut hdr = [0u8; wire::REQUEST_HEADER_LEN];
        h.write(&mut hdr).map_err(wire_err)?;
        let res = conn.send2(&hdr, data);
        if res.is_err() {
            self.conn = None;
        } else {
            self.sent_frames += 1;
            self.sent_bytes += (hdr.len() + data.len()) as u64;
        }
        res
    }

    /// Drops pages `0 .. pages` of this client at the repository (DROP with a count) and returns how many it held.
    /// Used on a reconnected repository: the device's page map refers to none of its pages any more (they were
    /// forgotten when it went down), so whatever it still holds from before is garbage taking its memory.
    pub(crate) fn drop_all(&mut self, pages: u64) -> Result<u64> {
        let count = u32::try_from(pages).map_err(|_| EINVAL)?;
        if count == 0 {
            return Ok(0);
        }
        let tag = u64::MAX;
        self.send_count(op::DROP, tag, 0, count, None)?;
        let r = self.recv(&mut [])?;
        match r.status {
            status::OK if r.tag == tag => Ok(r.value),
            status::DENIED => Err(EACCES),
            _ => Err(EPROTO),
        }
    }

    /// Receives one reply; a DATA payload lands in `page` and is checked (length, fields, checksum). On any error
    /// (timeout, reset, malformed frame) the connection is closed.
    pub(crate) fn recv(&mut self, page: &mut [u8]) -> Result<ReplyHeader> {
        let res = self.recv_inner(page);
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    fn recv_inner(&mut self, page: &mut [u8]) -> Result<ReplyHeader> {
        let conn = self.conn.as_mut().ok_or(ENOTCONN)?;
        let mut rh = [0u8; wire::REPLY_HEADER_LEN];
        conn.recv_exact(&mut rh)?;
        let h = ReplyHeader::parse(&rh).map_err(wire_err)?;
        let n = h.payload_len().map_err(wire_err)?;
        let payload = page.get_mut(..n).ok_or(EPROTO)?;
        if n > 0 {
            conn.recv_exact(payload)?;
        }
        h.reply(payload).map_err(wire_err)?;
        Ok(h)
    }
}
