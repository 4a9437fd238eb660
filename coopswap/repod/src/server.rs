//! The repository server: a TCP listener, one thread per connection, one shared page store.
//!
//! Per connection: read whatever arrived, decode every complete frame in it, execute the requests **in arrival order**
//! and send all their replies with one write (so a batch of pipelined requests costs one read and one write). Clients
//! must still match replies by tag: the protocol allows any order. Any malformed input (bad magic/version/op, bad
//! length, oversized, bad checksum, a frame cut off by EOF) closes the connection after a best-effort ERROR reply with
//! tag 0, and is counted; other connections are not affected. A connection must send a valid HELLO within
//! `hello_timeout_ms`; after it, every request's capability must match the client bound by that HELLO.

use crate::config::{ClientConfig, Config};
use crate::metrics::{self, Counters, StoreGauges};
use crate::store::{LockedMem, PageStore, StoreError};
use coopswap_proto::wire::{
    decode_request, errno, negotiate, Page, Reply, ReplyBody, Request, RequestBody, WireError,
    MAX_REQUEST_LEN, PAGE_SIZE,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// State shared by all threads.
pub struct Shared {
    /// Configuration at start; its `clients` are replaced by [`Shared::reload`] (see `clients`).
    cfg: Config,
    clients: RwLock<Arc<Vec<ClientConfig>>>,
    /// Bumped by every reload, so connections refresh their cached client.
    generation: AtomicU64,
    store: Mutex<PageStore>,
    /// Counters (public for tests and the metrics endpoint).
    pub counters: Counters,
    stop: AtomicBool,
    active: AtomicUsize,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, PageStore> {
        // The store has no panicking paths; if a thread died holding the lock the data is still consistent.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gauges of the store.
    pub fn gauges(&self) -> StoreGauges {
        let s = self.store();
        StoreGauges {
            capacity_pages: s.capacity(),
            used_pages: s.used_pages(),
            locked: s.locked(),
        }
    }

    /// Prometheus text of all counters and gauges.
    pub fn metrics_text(&self) -> String {
        self.counters.render(self.gauges())
    }

    /// The clients currently allowed.
    pub fn clients(&self) -> Arc<Vec<ClientConfig>> {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Apply the `[[client]]` list of a re-read configuration (SIGHUP): new clients may connect at once; removed
    /// clients' pages are freed and their open connections get DENIED from their next request on; changed tokens or
    /// quotas apply to the next request. Other settings need a restart and are only reported.
    pub fn reload(&self, new: &Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        let old_cfg = &self.cfg;
        let static_changes = [
            ("listen", old_cfg.listen != new.listen),
            (
                "metrics_listen",
                old_cfg.metrics_listen != new.metrics_listen,
            ),
            ("capacity", old_cfg.capacity_pages != new.capacity_pages),
            ("memlock", old_cfg.memlock != new.memlock),
            (
                "max_connections",
                old_cfg.max_connections != new.max_connections,
            ),
            (
                "hello_timeout_ms",
                old_cfg.hello_timeout_ms != new.hello_timeout_ms,
            ),
        ];
        report.need_restart = static_changes
            .iter()
            .filter(|(_, c)| *c)
            .map(|(n, _)| *n)
            .collect();
        let mut guard = self.clients.write().unwrap_or_else(|p| p.into_inner());
        let old = guard.clone();
        for c in &new.clients {
            match old.iter().find(|o| o.id == c.id) {
                None => report.added.push(c.id),
                Some(o)
                    if !o.token.ct_eq(&c.token)
                        || o.max_pages != c.max_pages
                        || o.name != c.name =>
                {
                    report.changed.push(c.id)
                }
                Some(_) => {}
            }
        }
        for o in old.iter() {
            if !new.clients.iter().any(|c| c.id == o.id) {
                report.removed.push(o.id);
            }
        }
        *guard = Arc::new(new.clients.clone());
        self.generation.fetch_add(1, Ordering::SeqCst);
        drop(guard);
        let mut store = self.store();
        for id in &report.removed {
            report.freed_pages += store.drop_client(*id);
        }
        report
    }
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Client ids added.
    pub added: Vec<u64>,
    /// Client ids removed (their pages were freed).
    pub removed: Vec<u64>,
    /// Client ids whose token, quota or name changed.
    pub changed: Vec<u64>,
    /// Pages freed because their client was removed.
    pub freed_pages: u64,
    /// Settings that differ but only take effect after a restart.
    pub need_restart: Vec<&'static str>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shared: Arc<Shared>,
}

/// A running server (see [`Server::spawn`]).
pub struct ServerHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Allocate (and lock) the page memory and bind the listeners.
    pub fn bind(cfg: Config) -> anyhow::Result<Server> {
        let mem = LockedMem::new(cfg.capacity_pages, cfg.memlock)?;
        let listener = TcpListener::bind(cfg.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let metrics = match cfg.metrics_listen {
            Some(a) => Some(
                TcpListener::bind(a).map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?,
            ),
            None => None,
        };
        let store = PageStore::new(mem);
        log::info!(
            "repository: {} pages ({} MiB), memory {}, {} client(s)",
            store.capacity(),
            (store.capacity() * PAGE_SIZE as u64) >> 20,
            if store.locked() {
                "locked"
            } else {
                "NOT locked"
            },
            cfg.clients.len()
        );
        let shared = Arc::new(Shared {
            clients: RwLock::new(Arc::new(cfg.clients.clone())),
            generation: AtomicU64::new(0),
            cfg,
            store: Mutex::new(store),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
        });
        Ok(Server {
            listener,
            metrics,
            shared,
        })
    }

    /// Address of the repository listener (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Start the accept loop (and the metrics endpoint) on background threads.
    pub fn spawn(self) -> std::io::Result<ServerHandle> {
        let addr = self.listener.local_addr()?;
        let metrics_addr = match &self.metrics {
            Some(m) => Some(m.local_addr()?),
            None => None,
        };
        let mut threads = Vec::new();
        if let Some(m) = self.metrics {
            let s1 = self.shared.clone();
            let s2 = self.shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("metrics".into())
                    .spawn(move || {
                        metrics::serve(
                            m,
                            Arc::new(move || s1.metrics_text()),
                            Arc::new(move || s2.stop.load(Ordering::SeqCst)),
                        )
                    })?,
            );
        }
        let shared = self.shared.clone();
        let listener = self.listener;
        threads.push(
            std::thread::Builder::new()
                .name("accept".into())
                .spawn(move || accept_loop(&shared, listener))?,
        );
        log::info!(
            "listening on {addr}{}",
            metrics_addr
                .map(|m| format!(", metrics on http://{m}/metrics"))
                .unwrap_or_default()
        );
        Ok(ServerHandle {
            shared: self.shared,
            addr,
            metrics_addr,
            threads,
        })
    }
}

impl ServerHandle {
    /// Repository address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
    /// Shared state (counters, metrics text).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
    /// Stop accepting connections and wait for the listener threads (open connections end when their peers close).
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(m) = self.metrics_addr {
            let _ = TcpStream::connect_timeout(&m, Duration::from_secs(1));
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
    /// Block until the accept loop ends (i.e. forever, in the daemon).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10)); // e.g. EMFILE: do not spin
                continue;
            }
        };
        Counters::inc(&shared.counters.connections);
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.cfg.max_connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            Counters::inc(&shared.counters.refused_connections);
            let mut b = Vec::new();
            push_reply(&mut b, 0, ReplyBody::Error { code: errno::EBUSY });
            let _ = stream.write_all(&b);
            log::warn!(
                "refusing connection: max_connections ({}) reached",
                shared.cfg.max_connections
            );
            continue;
        }
        shared
            .counters
            .clients_connected
            .fetch_add(1, Ordering::Relaxed);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "?".into());
                Connection::new(&s, peer).run(stream);
                // Free the slot before the gauge drops, so whoever sees the gauge at 0 also finds the slot free.
                s.active.fetch_sub(1, Ordering::SeqCst);
                s.counters.clients_connected.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            log::error!("cannot start connection thread: {e}");
            shared
                .counters
                .clients_connected
                .fetch_sub(1, Ordering::Relaxed);
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Append an encoded reply to `out`.
fn push_reply(out: &mut Vec<u8>, tag: u64, body: ReplyBody<'_>) {
    let r = Reply { tag, body };
    let start = out.len();
    out.resize(start + r.encoded_len(), 0);
    if let Some(dst) = out.get_mut(start..) {
        if r.encode(dst).is_err() {
            out.truncate(start);
        }
    }
}

/// TCP keepalive (probe after 30 s idle, every 10 s, give up after 3), so that the connection of a client whose host
/// died is closed and its slot and thread are freed. Best effort.
fn set_keepalive(stream: &TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(30))
        .with_interval(std::time::Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        log::warn!("cannot enable TCP keepalive on a client connection ({e}); a dead client's slot is freed only when its connection fails");
    }
}

/// What a connection needs of its client on every request.
#[derive(Clone, Copy, Debug)]
struct Bound {
    id: u64,
    token: coopswap_proto::wire::Capability,
    max_pages: u64,
}

struct Connection<'a> {
    shared: &'a Shared,
    peer: String,
    /// Id of the client bound by HELLO.
    bound: Option<u64>,
    /// The bound client's settings as of reload generation `.0`.
    cache: Option<(u64, Bound)>,
    page: Box<Page>,
    out: Vec<u8>,
    denied_logged: bool,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, peer: String) -> Self {
        Connection {
            shared,
            peer,
            bound: None,
            cache: None,
            page: Box::new([0u8; PAGE_SIZE]),
            out: Vec::with_capacity(64 * 1024),
            denied_logged: false,
        }
    }

    fn run(mut self, mut stream: TcpStream) {
        let c = &self.shared.counters;
        let _ = stream.set_nodelay(true);
        set_keepalive(&stream);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(
            self.shared.cfg.hello_timeout_ms,
        )));
        let mut inbuf: Vec<u8> = Vec::with_capacity(2 * MAX_REQUEST_LEN);
        let mut chunk = vec![0u8; 64 * 1024];
        // Bytes received on this connection, and bytes of it framed into requests (for the malformed-input log).
        let (mut received, mut framed, mut frames) = (0u64, 0u64, 0u64);
        log::debug!("{}: connected", self.peer);
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) => {
                    if !inbuf.is_empty() {
                        Counters::inc(&c.malformed);
                        log::warn!(
                            "{}: connection closed inside a frame ({} bytes)",
                            self.peer,
                            inbuf.len()
                        );
                    }
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                        && self.bound.is_none() =>
                {
                    Counters::inc(&c.hello_timeouts);
                    log::warn!(
                        "{}: no HELLO within {} ms, closing",
                        self.peer,
                        self.shared.cfg.hello_timeout_ms
                    );
                    break;
                }
                Err(e) => {
                    log::debug!("{}: read: {e}", self.peer);
                    break;
                }
            };
            c.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            inbuf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            received += n as u64;
            let was_bound = self.bound.is_some();
            let mut used = 0;
            let mut fatal = None;
            while let Some(rest) = inbuf.get(used..) {
                match decode_request(rest) {
                    Ok((req, len)) => {
                        used += len;
                        framed += len as u64;
                        frames += 1;
                        self.execute(&req);
                    }
                    Err(WireError::Incomplete { .. }) => break,
                    Err(e) => {
                        fatal = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = fatal {
                Counters::inc(&c.malformed);
                // What the operator (or a developer) needs to tell a framing error from corrupted bytes: where in
                // the stream it happened and the bytes that could not be framed.
                let bad = inbuf.get(used..).unwrap_or_default();
                let head: String = bad.iter().take(64).map(|b| format!("{b:02x}")).collect();
                log::warn!(
                    "{}: malformed request ({e:?}), closing connection; {frames} requests ({framed} bytes) framed of \
                     {received} received, {} unframed bytes, first 64: {head}",
                    self.peer,
                    bad.len()
                );
                inbuf.drain(..used);
                self.reply(0, ReplyBody::Error { code: e.errno() });
                let _ = self.flush(&mut stream);
                let _ = stream.shutdown(Shutdown::Both);
                break;
            }
            inbuf.drain(..used);
            if self.flush(&mut stream).is_err() {
                break;
            }
            if !was_bound && self.bound.is_some() {
                let _ = stream.set_read_timeout(None);
            }
        }
        log::debug!("{}: disconnected", self.peer);
    }

    fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = stream.write_all(&self.out);
        if r.is_ok() {
            self.shared
                .counters
                .bytes_out
                .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        }
        self.out.clear();
        r
    }

    fn reply(&mut self, tag: u64, body: ReplyBody<'_>) {
        push_reply(&mut self.out, tag, body);
    }

    fn execute(&mut self, req: &Request<'_>) {
        let shared = self.shared;
        let c = &shared.counters;
        if let RequestBody::Hello {
            client_id,
            min_version,
            max_version,
        } = req.body
        {
            return self.hello(req, client_id, min_version, max_version);
        }
        let Some(bound_id) = self.bound else {
            Counters::inc(&c.errors);
            return self.reply(
                req.tag,
                ReplyBody::Error {
                    code: errno::EPROTO,
                },
            );
        };
        let client = self.bound_client(bound_id);
        let Some(client) = client.filter(|cl| cl.token.ct_eq(&req.cap)) else {
            Counters::inc(&c.denied);
            if !self.denied_logged {
                log::warn!(
                    "{}: request with wrong capability for client {bound_id}{}",
                    self.peer,
                    if client.is_none() {
                        " (client removed by reload)"
                    } else {
                        ""
                    }
                );
                self.denied_logged = true;
            }
            return self.reply(req.tag, ReplyBody::Denied);
        };
        match req.body {
            RequestBody::Store { page, crc, data } => {
                let r = shared
                    .store()
                    .store(client.id, page, data, crc, client.max_pages);
                match r {
                    Ok(()) => {
                        Counters::inc(&c.stores);
                        self.reply(req.tag, ReplyBody::Ok { value: 0 })
                    }
                    Err(StoreError::Full) => {
                        Counters::inc(&c.full);
                        self.reply(req.tag, ReplyBody::Full)
                    }
                }
            }
            RequestBody::Fetch { page } => {
                let crc = shared.store().fetch(client.id, page, &mut self.page);
                match crc {
                    Some(crc) => {
                        Counters::inc(&c.fetches);
                        push_reply(
                            &mut self.out,
                            req.tag,
                            ReplyBody::Data {
                                page,
                                crc,
                                data: &self.page,
                            },
                        );
                    }
                    None => {
                        Counters::inc(&c.fetch_misses);
                        self.reply(req.tag, ReplyBody::NotFound)
                    }
                }
            }
            RequestBody::Drop { first, count } => {
                let n = shared.store().drop_range(client.id, first, count);
                Counters::inc(&c.drops);
                c.dropped_pages.fetch_add(n, Ordering::Relaxed);
                self.reply(req.tag, ReplyBody::Ok { value: n })
            }
            RequestBody::Ping => {
                Counters::inc(&c.pings);
                let room = shared.store().room_for(client.id, client.max_pages);
                self.reply(req.tag, ReplyBody::Ok { value: room })
            }
            RequestBody::Hello { .. } => {}
        }
    }

    /// Settings of the bound client, refreshed after a reload; None if a reload removed it.
    fn bound_client(&mut self, id: u64) -> Option<Bound> {
        let generation = self.shared.generation.load(Ordering::SeqCst);
        if let Some((g, b)) = self.cache {
            if g == generation && b.id == id {
                return Some(b);
            }
        }
        let clients = self.shared.clients();
        let b = clients.iter().find(|c| c.id == id).map(|c| Bound {
            id: c.id,
            token: c.token,
            max_pages: c.max_pages,
        })?;
        self.cache = Some((generation, b));
        Some(b)
    }

    fn hello(&mut self, req: &Request<'_>, client_id: u64, min: u16, max: u16) {
        let shared = self.shared;
        let c = &shared.counters;
        let clients = shared.clients();
        let found = clients
            .iter()
            .find(|cl| cl.id == client_id && cl.token.ct_eq(&req.cap));
        let Some(client) = found else {
            Counters::inc(&c.denied);
            log::warn!(
                "{}: HELLO for client {client_id} denied (unknown client or wrong token)",
                self.peer
            );
            return self.reply(req.tag, ReplyBody::Denied);
        };
        if self.bound.is_some_and(|b| b != client.id) {
            Counters::inc(&c.errors);
            log::warn!("{}: second HELLO for a different client refused", self.peer);
            return self.reply(
                req.tag,
                ReplyBody::Error {
                    code: errno::EPROTO,
                },
            );
        }
        let Some(version) = negotiate(min, max) else {
            Counters::inc(&c.errors);
            log::warn!(
                "{}: no common protocol version (client speaks {min}..={max})",
                self.peer
            );
            return self.reply(
                req.tag,
                ReplyBody::Error {
                    code: errno::EPROTO,
                },
            );
        };
        if self.bound.is_none() {
            log::info!(
                "{}: client {} ({}) connected, protocol v{version}",
                self.peer,
                client.id,
                client.name
            );
        }
        self.bound = Some(client.id);
        self.cache = None;
        Counters::inc(&c.hellos);
        self.reply(
            req.tag,
            ReplyBody::Welcome {
                version,
                max_pages: client.max_pages,
            },
        )
    }
}
