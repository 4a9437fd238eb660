//! A small blocking client for the repository protocol: used by the integration tests, by `coopswap-client`
//! (check/bench for the lab) and as a reference for the kernel client's behaviour.
//!
//! Requests can be pipelined: [`Client::send`] only buffers, [`Client::flush`] writes everything buffered in one
//! write, [`Client::recv`] returns the next reply, whichever request it answers; callers match by tag.

use coopswap_proto::wire::{
    decode_reply, Capability, Page, ReplyBody, Request, RequestBody, WireError, MAX_VERSION,
    MIN_VERSION,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A reply, owning its page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// HELLO accepted.
    Welcome {
        /// Negotiated version.
        version: u16,
        /// Most pages this client may hold.
        max_pages: u64,
    },
    /// OK with its value.
    Ok(u64),
    /// FETCH hit (checksum already verified by the decoder).
    Data {
        /// Page id echoed by the server.
        page: u64,
        /// CRC-32C of the page.
        crc: u32,
        /// The page.
        data: Box<Page>,
    },
    /// FETCH miss.
    NotFound,
    /// STORE refused: full.
    Full,
    /// Wrong capability.
    Denied,
    /// ERROR with errno.
    Error(u32),
}

impl From<ReplyBody<'_>> for Answer {
    fn from(b: ReplyBody<'_>) -> Self {
        match b {
            ReplyBody::Welcome { version, max_pages } => Answer::Welcome { version, max_pages },
            ReplyBody::Ok { value } => Answer::Ok(value),
            ReplyBody::Data { page, crc, data } => Answer::Data {
                page,
                crc,
                data: Box::new(*data),
            },
            ReplyBody::NotFound => Answer::NotFound,
            ReplyBody::Full => Answer::Full,
            ReplyBody::Denied => Answer::Denied,
            ReplyBody::Error { code } => Answer::Error(code),
        }
    }
}

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that is not a valid reply.
    #[error("bad reply from server: {0:?}")]
    Protocol(WireError),
    /// The server closed the connection.
    #[error("connection closed by server")]
    Closed,
    /// HELLO was not answered with WELCOME.
    #[error("HELLO refused: {0:?}")]
    Refused(Answer),
    /// A reply carried a tag other than the one awaited.
    #[error("reply for tag {got} while waiting for {want}")]
    WrongTag {
        /// Awaited tag.
        want: u64,
        /// Received tag.
        got: u64,
    },
}

/// A connection to one repository.
pub struct Client {
    stream: TcpStream,
    cap: Capability,
    next_tag: u64,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Negotiated version (0 before HELLO).
    pub version: u16,
    /// Most pages this client may hold (0 before HELLO).
    pub max_pages: u64,
}

impl Client {
    /// Connect without HELLO.
    pub fn connect_raw(
        addr: SocketAddr,
        cap: Capability,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            stream,
            cap,
            next_tag: 1,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            version: 0,
            max_pages: 0,
        })
    }

    /// Connect and bind the connection to `client_id` with HELLO.
    pub fn connect(
        addr: SocketAddr,
        client_id: u64,
        cap: Capability,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let mut c = Self::connect_raw(addr, cap, timeout)?;
        match c.hello(client_id)? {
            Answer::Welcome { version, max_pages } => {
                c.version = version;
                c.max_pages = max_pages;
                Ok(c)
            }
            other => Err(ClientError::Refused(other)),
        }
    }

    /// Send HELLO and return the answer.
    pub fn hello(&mut self, client_id: u64) -> Result<Answer, ClientError> {
        self.call(RequestBody::Hello {
            client_id,
            min_version: MIN_VERSION,
            max_version: MAX_VERSION,
        })
    }

    /// A fresh tag.
    pub fn next_tag(&mut self) -> u64 {
        let t = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        t
    }

    /// Buffer a request with this client's capability.
    pub fn send(&mut self, tag: u64, body: RequestBody<'_>) {
        let cap = self.cap;
        self.send_with_cap(tag, cap, body);
    }

    /// Buffer a request with an explicit capability (tests of DENIED).
    pub fn send_with_cap(&mut self, tag: u64, cap: Capability, body: RequestBody<'_>) {
        let req = Request { tag, cap, body };
        let start = self.outbuf.len();
        self.outbuf.resize(start + req.encoded_len(), 0);
        if let Some(dst) = self.outbuf.get_mut(start..) {
            if req.encode(dst).is_err() {
                self.outbuf.truncate(start);
            }
        }
    }

    /// Buffer raw bytes (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.outbuf.extend_from_slice(bytes);
    }

    /// Write everything buffered.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.stream.write_all(&self.outbuf)?;
        self.outbuf.clear();
        Ok(())
    }

    /// Receive the next reply: (tag, answer).
    pub fn recv(&mut self) -> Result<(u64, Answer), ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match decode_reply(&self.inbuf) {
                Ok((r, used)) => {
                    let out = (r.tag, Answer::from(r.body));
                    self.inbuf.drain(..used);
                    return Ok(out);
                }
                Err(WireError::Incomplete { .. }) => {}
                Err(e) => return Err(ClientError::Protocol(e)),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send one request and wait for its reply.
    pub fn call(&mut self, body: RequestBody<'_>) -> Result<Answer, ClientError> {
        let tag = self.next_tag();
        self.send(tag, body);
        self.flush()?;
        let (got, a) = self.recv()?;
        if got != tag {
            return Err(ClientError::WrongTag { want: tag, got });
        }
        Ok(a)
    }

    /// STORE a page.
    pub fn store(&mut self, page: u64, data: &Page) -> Result<Answer, ClientError> {
        self.call(RequestBody::store(page, data))
    }

    /// FETCH a page.
    pub fn fetch(&mut self, page: u64) -> Result<Answer, ClientError> {
        self.call(RequestBody::Fetch { page })
    }

    /// DROP a range of pages.
    pub fn drop_pages(&mut self, first: u64, count: u32) -> Result<Answer, ClientError> {
        self.call(RequestBody::Drop { first, count })
    }

    /// PING.
    pub fn ping(&mut self) -> Result<Answer, ClientError> {
        self.call(RequestBody::Ping)
    }

    /// Whether the server has closed the connection (waits up to `timeout` for EOF).
    pub fn is_closed_by_peer(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut b = [0u8; 4096];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue, // e.g. the ERROR reply sent before closing
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    }
}

/// Deterministic page content for tests and checks: differs for every (seed, page).
pub fn pattern_page(seed: u64, page: u64) -> Box<Page> {
    let mut p = Box::new([0u8; coopswap_proto::wire::PAGE_SIZE]);
    let mut x = coopswap_proto::placement::mix64(seed ^ page.rotate_left(17)) | 1;
    for chunk in p.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    p
}
