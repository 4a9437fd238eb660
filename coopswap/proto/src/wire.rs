//! Repository wire protocol, version 1 (see Documentation/coopswap-protocol.md for the byte tables).
//!
//! * All integers are **little endian**. Frames are a fixed header, optionally followed by exactly one 4 KiB page.
//! * Every request carries the client's 128-bit capability token and a 64-bit tag chosen by the client; the reply
//!   carries the same tag. Many requests may be in flight on one connection (pipelining); a client may write many
//!   frames in one send (batching); replies may arrive in any order, so clients match them by tag only.
//! * Page payloads carry a CRC-32C in the header. The decoder verifies it, so a decoded page is always the page that
//!   the sender checksummed; the repository keeps the checksum and returns it with the page on FETCH.
//! * The decoder never panics: short input gives [`WireError::Incomplete`] with the number of missing bytes
//!   (streaming), anything malformed gives another [`WireError`], and the caller should drop the connection.

use super::crc32c::crc32c;

/// Size of a swap page and of every page payload.
pub const PAGE_SIZE: usize = 4096;
/// A page payload.
pub type Page = [u8; PAGE_SIZE];

/// Protocol version carried in every frame header. HELLO frames always use the version-1 header layout, so peers of
/// different versions can always negotiate.
pub const VERSION: u8 = 1;
/// Lowest protocol version this code speaks.
pub const MIN_VERSION: u16 = 1;
/// Highest protocol version this code speaks.
pub const MAX_VERSION: u16 = 1;

/// First four bytes of every request frame.
pub const REQUEST_MAGIC: [u8; 4] = *b"CSWQ";
/// First four bytes of every reply frame.
pub const REPLY_MAGIC: [u8; 4] = *b"CSWR";
/// Length of a request header.
pub const REQUEST_HEADER_LEN: usize = 56;
/// Length of a reply header.
pub const REPLY_HEADER_LEN: usize = 40;
/// Largest request frame (STORE).
pub const MAX_REQUEST_LEN: usize = REQUEST_HEADER_LEN + PAGE_SIZE;
/// Largest reply frame (DATA).
pub const MAX_REPLY_LEN: usize = REPLY_HEADER_LEN + PAGE_SIZE;

/// Request operation codes (byte 5 of a request header).
pub mod op {
    /// Bind the connection to a client id, negotiate the version.
    pub const HELLO: u8 = 1;
    /// Store one page.
    pub const STORE: u8 = 2;
    /// Fetch one page.
    pub const FETCH: u8 = 3;
    /// Drop a range of pages (discard/trim).
    pub const DROP: u8 = 4;
    /// Liveness probe; the reply says how many more pages this client may store.
    pub const PING: u8 = 5;
}

/// Reply status codes (byte 5 of a reply header).
pub mod status {
    /// Done. `value`: DROP → pages dropped, PING → pages the client may still store, STORE → 0.
    pub const OK: u8 = 0;
    /// FETCH hit: a page follows.
    pub const DATA: u8 = 1;
    /// FETCH miss: the repository holds no such page for this client.
    pub const NOT_FOUND: u8 = 2;
    /// STORE refused: the repository (or this client's quota) is full. The client keeps the page local.
    pub const FULL: u8 = 3;
    /// Wrong capability for this connection's client (or HELLO with unknown client/token).
    pub const DENIED: u8 = 4;
    /// Other failure; `code` is an errno value.
    pub const ERROR: u8 = 5;
    /// HELLO accepted: `code` = negotiated version, `value` = most pages this client may hold.
    pub const WELCOME: u8 = 6;
}

/// errno values used in [`ReplyBody::Error`] and [`WireError::errno`].
pub mod errno {
    /// Bad protocol message or request before HELLO.
    pub const EPROTO: u32 = 71;
    /// Invalid argument (e.g. bad range).
    pub const EINVAL: u32 = 22;
    /// Message too large.
    pub const E2BIG: u32 = 7;
    /// Out of space.
    pub const ENOSPC: u32 = 28;
    /// Permission denied.
    pub const EACCES: u32 = 13;
    /// Busy / too many connections.
    pub const EBUSY: u32 = 16;
}

/// 128-bit capability token. `Debug` never prints the secret; compare with [`Capability::ct_eq`].
#[derive(Clone, Copy, Default)]
pub struct Capability(pub [u8; 16]);

impl Capability {
    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Capability) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= a ^ b;
        }
        diff == 0
    }
}

impl core::fmt::Debug for Capability {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Capability(<secret>)")
    }
}

impl PartialEq for Capability {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}
impl Eq for Capability {}

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Not an error yet: the frame is incomplete, at least `needed` more bytes are required.
    Incomplete {
        /// Missing bytes.
        needed: usize,
    },
    /// The output buffer is too small; `needed` bytes in total are required.
    BufferTooSmall {
        /// Required buffer length.
        needed: usize,
    },
    /// The frame does not start with the request/reply magic.
    BadMagic,
    /// Unsupported protocol version in the header.
    BadVersion(u8),
    /// Unknown request operation.
    BadOp(u8),
    /// Unknown reply status.
    BadStatus(u8),
    /// Flags set that this version does not define.
    BadFlags(u16),
    /// Payload length larger than a page.
    Oversized(u32),
    /// Payload length not allowed for this operation/status.
    BadLength(u32),
    /// A field that must be zero (or within limits) is not.
    BadField,
    /// DROP with zero pages or a range past the end of the 64-bit page space.
    BadRange,
    /// Payload checksum does not match.
    BadChecksum,
}

impl WireError {
    /// errno the kernel returns (or the server puts in an ERROR reply) for this error.
    pub fn errno(&self) -> u32 {
        match self {
            WireError::Incomplete { .. } => 11, // EAGAIN
            WireError::BufferTooSmall { .. } => errno::ENOSPC,
            WireError::Oversized(_) => errno::E2BIG,
            WireError::BadRange => errno::EINVAL,
            _ => errno::EPROTO,
        }
    }
}

/// A request frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Client-chosen id echoed in the reply.
    pub tag: u64,
    /// Capability token of the client.
    pub cap: Capability,
    /// Operation and its arguments.
    pub body: RequestBody<'a>,
}

/// Operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody<'a> {
    /// Bind the connection to `client_id` and negotiate a version in `min_version..=max_version`.
    Hello {
        /// Client id from the repository's configuration.
        client_id: u64,
        /// Lowest version the client speaks (≥ 1).
        min_version: u16,
        /// Highest version the client speaks (≥ `min_version`).
        max_version: u16,
    },
    /// Store `data` as page `page` of this client (replacing any previous content).
    Store {
        /// Page id (the device's page index).
        page: u64,
        /// CRC-32C of `data` (see [`RequestBody::store`]).
        crc: u32,
        /// The page.
        data: &'a Page,
    },
    /// Fetch page `page` of this client.
    Fetch {
        /// Page id.
        page: u64,
    },
    /// Drop pages `first .. first + count` of this client (missing ones are ignored).
    Drop {
        /// First page id.
        first: u64,
        /// Number of pages, ≥ 1.
        count: u32,
    },
    /// Liveness probe.
    Ping,
}

impl<'a> RequestBody<'a> {
    /// A STORE body with its checksum computed.
    pub fn store(page: u64, data: &'a Page) -> Self {
        RequestBody::Store {
            page,
            crc: crc32c(data),
            data,
        }
    }
}

/// A reply frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Tag of the request this answers.
    pub tag: u64,
    /// Status and its values.
    pub body: ReplyBody<'a>,
}

/// Status of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyBody<'a> {
    /// HELLO accepted.
    Welcome {
        /// Negotiated version.
        version: u16,
        /// Most pages this client may hold on the repository.
        max_pages: u64,
    },
    /// Success; see [`status::OK`] for the meaning of `value`.
    Ok {
        /// Operation-specific value.
        value: u64,
    },
    /// FETCH hit.
    Data {
        /// Page id (echo of the request, checked by clients).
        page: u64,
        /// CRC-32C of `data`, as stored by the client.
        crc: u32,
        /// The page.
        data: &'a Page,
    },
    /// FETCH miss.
    NotFound,
    /// STORE refused, repository or quota full.
    Full,
    /// Wrong capability / unknown client.
    Denied,
    /// Failure with an errno value.
    Error {
        /// errno.
        code: u32,
    },
}

// ---------------------------------------------------------------------------------------------------------------
// Byte cursors: fixed-size reads/writes that cannot index out of bounds (a short buffer yields zeroes / is skipped,
// and callers check lengths before using them).

/// Little-endian reader over a byte slice.
pub struct Rd<'a>(pub &'a [u8]);

impl<'a> Rd<'a> {
    /// Next `N` bytes (zeroes if fewer remain; callers check the length first).
    pub fn arr<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((a, rest)) => {
                self.0 = rest;
                *a
            }
            None => {
                self.0 = &[];
                [0; N]
            }
        }
    }
    /// Next byte.
    pub fn u8(&mut self) -> u8 {
        let [b] = self.arr::<1>();
        b
    }
    /// Next little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.arr())
    }
    /// Next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.arr())
    }
    /// Next little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.arr())
    }
}

/// Little-endian writer over a mutable byte slice.
pub struct Wr<'a>(pub &'a mut [u8]);

impl Wr<'_> {
    /// Write `N` bytes (dropped if fewer remain; callers check the length first).
    pub fn arr<const N: usize>(&mut self, v: [u8; N]) {
        let buf = core::mem::take(&mut self.0);
        match buf.split_first_chunk_mut::<N>() {
            Some((a, rest)) => {
                *a = v;
                self.0 = rest;
            }
            None => self.0 = &mut [],
        }
    }
    /// Write a byte.
    pub fn u8(&mut self, v: u8) {
        self.arr([v]);
    }
    /// Write a little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.arr(v.to_le_bytes());
    }
    /// Write a little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.arr(v.to_le_bytes());
    }
    /// Write a little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.arr(v.to_le_bytes());
    }
}

/// Check that the bytes present match the magic, so garbage is rejected after its first bytes.
fn check_magic(buf: &[u8], magic: &[u8; 4]) -> Result<(), WireError> {
    if buf.iter().zip(magic.iter()).all(|(a, b)| a == b) {
        Ok(())
    } else {
        Err(WireError::BadMagic)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

/// Raw request header (for callers that send the page from its own buffer, e.g. the kernel's zero-copy send).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RequestHeader {
    /// Operation ([`op`]).
    pub op: u8,
    /// Flags, 0 in version 1.
    pub flags: u16,
    /// Tag.
    pub tag: u64,
    /// Capability.
    pub cap: Capability,
    /// Page id (HELLO: client id).
    pub page: u64,
    /// DROP: page count; HELLO: min version | max version << 16.
    pub count: u32,
    /// Payload length (STORE: 4096, else 0).
    pub len: u32,
    /// CRC-32C of the payload (0 without payload).
    pub csum: u32,
}

impl RequestHeader {
    /// Write the header into `out`; returns [`REQUEST_HEADER_LEN`].
    pub fn write(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let dst = out
            .get_mut(..REQUEST_HEADER_LEN)
            .ok_or(WireError::BufferTooSmall {
                needed: REQUEST_HEADER_LEN,
            })?;
        let mut w = Wr(dst);
        w.arr(REQUEST_MAGIC);
        w.u8(VERSION);
        w.u8(self.op);
        w.u16(self.flags);
        w.u64(self.tag);
        w.arr(self.cap.0);
        w.u64(self.page);
        w.u32(self.count);
        w.u32(self.len);
        w.u32(self.csum);
        w.u32(0);
        Ok(REQUEST_HEADER_LEN)
    }

    /// Parse and check the generic parts of a request header (magic, version, flags, reserved, length bound).
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        check_magic(buf, &REQUEST_MAGIC)?;
        let Some(h) = buf.get(..REQUEST_HEADER_LEN) else {
            return Err(WireError::Incomplete {
                needed: REQUEST_HEADER_LEN.saturating_sub(buf.len()),
            });
        };
        let mut r = Rd(h);
        let _magic: [u8; 4] = r.arr();
        let version = r.u8();
        let op = r.u8();
        let flags = r.u16();
        let tag = r.u64();
        let cap = Capability(r.arr());
        let page = r.u64();
        let count = r.u32();
        let len = r.u32();
        let csum = r.u32();
        let reserved = r.u32();
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        if flags != 0 {
            return Err(WireError::BadFlags(flags));
        }
        if reserved != 0 {
            return Err(WireError::BadField);
        }
        if len as usize > PAGE_SIZE {
            return Err(WireError::Oversized(len));
        }
        Ok(RequestHeader {
            op,
            flags,
            tag,
            cap,
            page,
            count,
            len,
            csum,
        })
    }
}

impl Request<'_> {
    /// The header this request is sent with.
    pub fn header(&self) -> RequestHeader {
        let mut h = RequestHeader {
            tag: self.tag,
            cap: self.cap,
            ..RequestHeader::default()
        };
        match self.body {
            RequestBody::Hello {
                client_id,
                min_version,
                max_version,
            } => {
                h.op = op::HELLO;
                h.page = client_id;
                h.count = u32::from(min_version) | (u32::from(max_version) << 16);
            }
            RequestBody::Store { page, crc, .. } => {
                h.op = op::STORE;
                h.page = page;
                h.len = PAGE_SIZE as u32;
                h.csum = crc;
            }
            RequestBody::Fetch { page } => {
                h.op = op::FETCH;
                h.page = page;
            }
            RequestBody::Drop { first, count } => {
                h.op = op::DROP;
                h.page = first;
                h.count = count;
            }
            RequestBody::Ping => h.op = op::PING,
        }
        h
    }

    /// Length of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        match self.body {
            RequestBody::Store { .. } => MAX_REQUEST_LEN,
            _ => REQUEST_HEADER_LEN,
        }
    }

    /// Encode the whole frame into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = self.encoded_len();
        let dst = out
            .get_mut(..n)
            .ok_or(WireError::BufferTooSmall { needed: n })?;
        self.header().write(dst)?;
        if let RequestBody::Store { data, .. } = self.body {
            if let Some(p) = dst.get_mut(REQUEST_HEADER_LEN..) {
                if p.len() == PAGE_SIZE {
                    p.copy_from_slice(data);
                }
            }
        }
        Ok(n)
    }
}

impl RequestHeader {
    /// Check the operation-specific rules that do not need the payload; returns the payload length to expect
    /// (4096 for STORE, else 0). Lets a caller that reads header and page separately reject a bad header early.
    pub fn payload_len(&self) -> Result<usize, WireError> {
        let want = match self.op {
            op::STORE => PAGE_SIZE as u32,
            op::HELLO | op::FETCH | op::DROP | op::PING => 0,
            other => return Err(WireError::BadOp(other)),
        };
        if self.len != want {
            return Err(WireError::BadLength(self.len));
        }
        let field_ok = match self.op {
            op::STORE => self.count == 0,
            op::FETCH => self.count == 0 && self.csum == 0,
            op::PING => self.count == 0 && self.page == 0 && self.csum == 0,
            _ => self.csum == 0,
        };
        if !field_ok {
            return Err(WireError::BadField);
        }
        Ok(want as usize)
    }

    /// Build the request from this header and its payload (exactly [`RequestHeader::payload_len`] bytes), checking
    /// every rule, including the payload checksum.
    pub fn request<'a>(&self, payload: &'a [u8]) -> Result<Request<'a>, WireError> {
        let want = self.payload_len()?;
        if payload.len() != want {
            return Err(WireError::BadLength(
                u32::try_from(payload.len()).unwrap_or(u32::MAX),
            ));
        }
        let body = match self.op {
            op::HELLO => {
                let min_version = (self.count & 0xffff) as u16;
                let max_version = (self.count >> 16) as u16;
                if min_version == 0 || min_version > max_version {
                    return Err(WireError::BadField);
                }
                RequestBody::Hello {
                    client_id: self.page,
                    min_version,
                    max_version,
                }
            }
            op::STORE => {
                let data =
                    <&Page>::try_from(payload).map_err(|_| WireError::BadLength(self.len))?;
                if crc32c(data) != self.csum {
                    return Err(WireError::BadChecksum);
                }
                RequestBody::Store {
                    page: self.page,
                    crc: self.csum,
                    data,
                }
            }
            op::FETCH => RequestBody::Fetch { page: self.page },
            op::DROP => {
                if self.count == 0 || self.page.checked_add(u64::from(self.count)).is_none() {
                    return Err(WireError::BadRange);
                }
                RequestBody::Drop {
                    first: self.page,
                    count: self.count,
                }
            }
            op::PING => RequestBody::Ping,
            other => return Err(WireError::BadOp(other)),
        };
        Ok(Request {
            tag: self.tag,
            cap: self.cap,
            body,
        })
    }
}

/// Decode one request from the front of `buf`; returns it and the number of bytes it used.
pub fn decode_request(buf: &[u8]) -> Result<(Request<'_>, usize), WireError> {
    let h = RequestHeader::parse(buf)?;
    let total = REQUEST_HEADER_LEN.saturating_add(h.payload_len()?);
    let Some(payload) = buf.get(REQUEST_HEADER_LEN..total) else {
        return Err(WireError::Incomplete {
            needed: total.saturating_sub(buf.len()),
        });
    };
    Ok((h.request(payload)?, total))
}

// ---------------------------------------------------------------------------------------------------------------
// Replies

/// Raw reply header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReplyHeader {
    /// Status ([`status`]).
    pub status: u8,
    /// Flags, 0 in version 1.
    pub flags: u16,
    /// Tag of the request.
    pub tag: u64,
    /// Status-specific value.
    pub value: u64,
    /// ERROR: errno; WELCOME: negotiated version.
    pub code: u32,
    /// Payload length (DATA: 4096, else 0).
    pub len: u32,
    /// CRC-32C of the payload (0 without payload).
    pub csum: u32,
}

impl ReplyHeader {
    /// Write the header into `out`; returns [`REPLY_HEADER_LEN`].
    pub fn write(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let dst = out
            .get_mut(..REPLY_HEADER_LEN)
            .ok_or(WireError::BufferTooSmall {
                needed: REPLY_HEADER_LEN,
            })?;
        let mut w = Wr(dst);
        w.arr(REPLY_MAGIC);
        w.u8(VERSION);
        w.u8(self.status);
        w.u16(self.flags);
        w.u64(self.tag);
        w.u64(self.value);
        w.u32(self.code);
        w.u32(self.len);
        w.u32(self.csum);
        w.u32(0);
        Ok(REPLY_HEADER_LEN)
    }

    /// Parse and check the generic parts of a reply header.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        check_magic(buf, &REPLY_MAGIC)?;
        let Some(h) = buf.get(..REPLY_HEADER_LEN) else {
            return Err(WireError::Incomplete {
                needed: REPLY_HEADER_LEN.saturating_sub(buf.len()),
            });
        };
        let mut r = Rd(h);
        let _magic: [u8; 4] = r.arr();
        let version = r.u8();
        let status = r.u8();
        let flags = r.u16();
        let tag = r.u64();
        let value = r.u64();
        let code = r.u32();
        let len = r.u32();
        let csum = r.u32();
        let reserved = r.u32();
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        if flags != 0 {
            return Err(WireError::BadFlags(flags));
        }
        if reserved != 0 {
            return Err(WireError::BadField);
        }
        if len as usize > PAGE_SIZE {
            return Err(WireError::Oversized(len));
        }
        Ok(ReplyHeader {
            status,
            flags,
            tag,
            value,
            code,
            len,
            csum,
        })
    }
}

impl Reply<'_> {
    /// The header this reply is sent with.
    pub fn header(&self) -> ReplyHeader {
        let mut h = ReplyHeader {
            tag: self.tag,
            ..ReplyHeader::default()
        };
        match self.body {
            ReplyBody::Welcome { version, max_pages } => {
                h.status = status::WELCOME;
                h.code = u32::from(version);
                h.value = max_pages;
            }
            ReplyBody::Ok { value } => {
                h.status = status::OK;
                h.value = value;
            }
            ReplyBody::Data { page, crc, .. } => {
                h.status = status::DATA;
                h.value = page;
                h.len = PAGE_SIZE as u32;
                h.csum = crc;
            }
            ReplyBody::NotFound => h.status = status::NOT_FOUND,
            ReplyBody::Full => h.status = status::FULL,
            ReplyBody::Denied => h.status = status::DENIED,
            ReplyBody::Error { code } => {
                h.status = status::ERROR;
                h.code = code;
            }
        }
        h
    }

    /// Length of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        match self.body {
            ReplyBody::Data { .. } => MAX_REPLY_LEN,
            _ => REPLY_HEADER_LEN,
        }
    }

    /// Encode the whole frame into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = self.encoded_len();
        let dst = out
            .get_mut(..n)
            .ok_or(WireError::BufferTooSmall { needed: n })?;
        self.header().write(dst)?;
        if let ReplyBody::Data { data, .. } = self.body {
            if let Some(p) = dst.get_mut(REPLY_HEADER_LEN..) {
                if p.len() == PAGE_SIZE {
                    p.copy_from_slice(data);
                }
            }
        }
        Ok(n)
    }
}

impl ReplyHeader {
    /// Check the status-specific rules that do not need the payload; returns the payload length to expect
    /// (4096 for DATA, else 0).
    pub fn payload_len(&self) -> Result<usize, WireError> {
        let want = match self.status {
            status::DATA => PAGE_SIZE as u32,
            status::OK
            | status::NOT_FOUND
            | status::FULL
            | status::DENIED
            | status::ERROR
            | status::WELCOME => 0,
            other => return Err(WireError::BadStatus(other)),
        };
        if self.len != want {
            return Err(WireError::BadLength(self.len));
        }
        let field_ok = match self.status {
            status::DATA => self.code == 0,
            status::OK => self.code == 0 && self.csum == 0,
            status::NOT_FOUND | status::FULL | status::DENIED => {
                self.code == 0 && self.value == 0 && self.csum == 0
            }
            status::ERROR => self.value == 0 && self.csum == 0,
            _ => self.csum == 0 && u16::try_from(self.code).is_ok_and(|v| v != 0),
        };
        if !field_ok {
            return Err(WireError::BadField);
        }
        Ok(want as usize)
    }

    /// Build the reply from this header and its payload (exactly [`ReplyHeader::payload_len`] bytes), checking every
    /// rule, including the payload checksum. The kernel reads the 40 header bytes, then the page straight into its
    /// destination, and calls this.
    pub fn reply<'a>(&self, payload: &'a [u8]) -> Result<Reply<'a>, WireError> {
        let want = self.payload_len()?;
        if payload.len() != want {
            return Err(WireError::BadLength(
                u32::try_from(payload.len()).unwrap_or(u32::MAX),
            ));
        }
        let body = match self.status {
            status::DATA => {
                let data =
                    <&Page>::try_from(payload).map_err(|_| WireError::BadLength(self.len))?;
                if crc32c(data) != self.csum {
                    return Err(WireError::BadChecksum);
                }
                ReplyBody::Data {
                    page: self.value,
                    crc: self.csum,
                    data,
                }
            }
            status::OK => ReplyBody::Ok { value: self.value },
            status::NOT_FOUND => ReplyBody::NotFound,
            status::FULL => ReplyBody::Full,
            status::DENIED => ReplyBody::Denied,
            status::ERROR => ReplyBody::Error { code: self.code },
            status::WELCOME => {
                let version = u16::try_from(self.code).map_err(|_| WireError::BadField)?;
                ReplyBody::Welcome {
                    version,
                    max_pages: self.value,
                }
            }
            other => return Err(WireError::BadStatus(other)),
        };
        Ok(Reply {
            tag: self.tag,
            body,
        })
    }
}

/// Decode one reply from the front of `buf`; returns it and the number of bytes it used.
pub fn decode_reply(buf: &[u8]) -> Result<(Reply<'_>, usize), WireError> {
    let h = ReplyHeader::parse(buf)?;
    let total = REPLY_HEADER_LEN.saturating_add(h.payload_len()?);
    let Some(payload) = buf.get(REPLY_HEADER_LEN..total) else {
        return Err(WireError::Incomplete {
            needed: total.saturating_sub(buf.len()),
        });
    };
    Ok((h.reply(payload)?, total))
}

/// Choose the version to speak with a peer offering `min..=max`; `None` if there is no common version.
pub fn negotiate(min: u16, max: u16) -> Option<u16> {
    let hi = max.min(MAX_VERSION);
    let lo = min.max(MIN_VERSION);
    if lo <= hi {
        Some(hi)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u8) -> Page {
        let mut p = [0u8; PAGE_SIZE];
        for (i, b) in p.iter_mut().enumerate() {
            *b = (i as u8) ^ seed;
        }
        p
    }

    #[test]
    fn store_layout_is_as_documented() {
        let data = page(7);
        let req = Request {
            tag: 0x0102_0304_0506_0708,
            cap: Capability([0xAA; 16]),
            body: RequestBody::store(9, &data),
        };
        let mut buf = [0u8; MAX_REQUEST_LEN];
        assert_eq!(req.encode(&mut buf).unwrap(), MAX_REQUEST_LEN);
        assert_eq!(&buf[0..4], b"CSWQ");
        assert_eq!(buf[4], 1);
        assert_eq!(buf[5], op::STORE);
        assert_eq!(&buf[6..8], &[0, 0]);
        assert_eq!(&buf[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&buf[16..32], &[0xAA; 16]);
        assert_eq!(&buf[32..40], &9u64.to_le_bytes());
        assert_eq!(&buf[40..44], &[0; 4]);
        assert_eq!(&buf[44..48], &4096u32.to_le_bytes());
        assert_eq!(&buf[48..52], &crc32c(&data).to_le_bytes());
        assert_eq!(&buf[52..56], &[0; 4]);
        assert_eq!(&buf[56..], &data[..]);
        let (back, used) = decode_request(&buf).unwrap();
        assert_eq!(used, MAX_REQUEST_LEN);
        assert_eq!(back, req);
    }

    #[test]
    fn streaming_reports_missing_bytes() {
        let data = page(1);
        let req = Request {
            tag: 5,
            cap: Capability([1; 16]),
            body: RequestBody::store(3, &data),
        };
        let mut buf = [0u8; MAX_REQUEST_LEN];
        req.encode(&mut buf).unwrap();
        assert_eq!(
            decode_request(&buf[..10]),
            Err(WireError::Incomplete {
                needed: REQUEST_HEADER_LEN - 10
            })
        );
        assert_eq!(
            decode_request(&buf[..100]),
            Err(WireError::Incomplete {
                needed: MAX_REQUEST_LEN - 100
            })
        );
        assert_eq!(
            decode_request(&buf[..0]),
            Err(WireError::Incomplete {
                needed: REQUEST_HEADER_LEN
            })
        );
    }

    #[test]
    fn rejects_bad_frames() {
        let mut buf = [0u8; REQUEST_HEADER_LEN];
        let req = Request {
            tag: 1,
            cap: Capability::default(),
            body: RequestBody::Fetch { page: 4 },
        };
        req.encode(&mut buf).unwrap();
        // garbage is rejected at the first byte already
        assert_eq!(decode_request(b"GET / HTTP/1.0"), Err(WireError::BadMagic));
        assert_eq!(decode_request(b"X"), Err(WireError::BadMagic));
        let mut b = buf;
        b[4] = 2;
        assert_eq!(decode_request(&b), Err(WireError::BadVersion(2)));
        let mut b = buf;
        b[5] = 99;
        assert_eq!(decode_request(&b), Err(WireError::BadOp(99)));
        let mut b = buf;
        b[44..48].copy_from_slice(&(1u32 << 20).to_le_bytes());
        assert_eq!(decode_request(&b), Err(WireError::Oversized(1 << 20)));
        assert_eq!(WireError::Oversized(1).errno(), 7);
        let mut b = buf;
        b[44..48].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(decode_request(&b), Err(WireError::BadLength(4096)));
        let mut b = buf;
        b[6] = 1;
        assert_eq!(decode_request(&b), Err(WireError::BadFlags(1)));
        let mut b = buf;
        b[53] = 1;
        assert_eq!(decode_request(&b), Err(WireError::BadField));
        // corrupted page
        let data = page(3);
        let mut s = [0u8; MAX_REQUEST_LEN];
        Request {
            tag: 1,
            cap: Capability::default(),
            body: RequestBody::store(1, &data),
        }
        .encode(&mut s)
        .unwrap();
        s[100] ^= 1;
        assert_eq!(decode_request(&s), Err(WireError::BadChecksum));
    }

    #[test]
    fn drop_range_checks() {
        let mut buf = [0u8; REQUEST_HEADER_LEN];
        let mk = |first, count| Request {
            tag: 1,
            cap: Capability::default(),
            body: RequestBody::Drop { first, count },
        };
        mk(10, 0).encode(&mut buf).unwrap();
        assert_eq!(decode_request(&buf), Err(WireError::BadRange));
        mk(u64::MAX, 2).encode(&mut buf).unwrap();
        assert_eq!(decode_request(&buf), Err(WireError::BadRange));
        mk(u64::MAX - 2, 2).encode(&mut buf).unwrap();
        assert_eq!(
            decode_request(&buf).unwrap().0.body,
            RequestBody::Drop {
                first: u64::MAX - 2,
                count: 2
            }
        );
    }

    #[test]
    fn reply_roundtrip_and_negotiation() {
        let data = page(9);
        let replies = [
            Reply {
                tag: 1,
                body: ReplyBody::Welcome {
                    version: 1,
                    max_pages: 1000,
                },
            },
            Reply {
                tag: 2,
                body: ReplyBody::Ok { value: 3 },
            },
            Reply {
                tag: 3,
                body: ReplyBody::Data {
                    page: 77,
                    crc: crc32c(&data),
                    data: &data,
                },
            },
            Reply {
                tag: 4,
                body: ReplyBody::NotFound,
            },
            Reply {
                tag: 5,
                body: ReplyBody::Full,
            },
            Reply {
                tag: 6,
                body: ReplyBody::Denied,
            },
            Reply {
                tag: 7,
                body: ReplyBody::Error { code: 71 },
            },
        ];
        let mut buf = [0u8; MAX_REPLY_LEN];
        for r in replies {
            let n = r.encode(&mut buf).unwrap();
            assert_eq!(decode_reply(&buf[..n]).unwrap(), (r, n));
            assert!(matches!(
                decode_reply(&buf[..n - 1]),
                Err(WireError::Incomplete { needed: 1 })
            ));
        }
        // a DATA reply whose stored checksum does not match is refused by the client
        Reply {
            tag: 3,
            body: ReplyBody::Data {
                page: 77,
                crc: 1,
                data: &data,
            },
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(decode_reply(&buf), Err(WireError::BadChecksum));
        assert_eq!(negotiate(1, 5), Some(1));
        assert_eq!(negotiate(2, 5), None);
        let mut small = [0u8; 10];
        assert_eq!(
            replies[1].encode(&mut small),
            Err(WireError::BufferTooSmall {
                needed: REPLY_HEADER_LEN
            })
        );
    }

    #[test]
    fn header_and_payload_decoded_separately() {
        // the kernel's way: header into a small buffer, the page straight into its destination
        let data = page(5);
        let mut buf = [0u8; MAX_REPLY_LEN];
        let r = Reply {
            tag: 9,
            body: ReplyBody::Data {
                page: 3,
                crc: crc32c(&data),
                data: &data,
            },
        };
        r.encode(&mut buf).unwrap();
        let h = ReplyHeader::parse(&buf[..REPLY_HEADER_LEN]).unwrap();
        assert_eq!(h.payload_len(), Ok(PAGE_SIZE));
        assert_eq!(h.reply(&buf[REPLY_HEADER_LEN..]).unwrap(), r);
        assert_eq!(
            h.reply(&buf[REPLY_HEADER_LEN..100]),
            Err(WireError::BadLength(100 - REPLY_HEADER_LEN as u32))
        );
        let mut other = data;
        other[0] ^= 1;
        assert_eq!(h.reply(&other), Err(WireError::BadChecksum));
        let mut q = [0u8; MAX_REQUEST_LEN];
        let req = Request {
            tag: 4,
            cap: Capability([3; 16]),
            body: RequestBody::store(8, &data),
        };
        req.encode(&mut q).unwrap();
        let h = RequestHeader::parse(&q[..REQUEST_HEADER_LEN]).unwrap();
        assert_eq!(h.payload_len(), Ok(PAGE_SIZE));
        assert_eq!(h.request(&q[REQUEST_HEADER_LEN..]).unwrap(), req);
        assert_eq!(h.request(&[]), Err(WireError::BadLength(0)));
    }

    #[test]
    fn capability_debug_hides_secret() {
        extern crate std;
        let s = std::format!("{:?}", Capability([0x42; 16]));
        assert!(!s.contains("42") && !s.contains("66"), "{s}");
        assert!(Capability([1; 16]).ct_eq(&Capability([1; 16])));
        let mut other = [1u8; 16];
        other[15] = 2;
        assert!(!Capability([1; 16]).ct_eq(&Capability(other)));
    }
}
