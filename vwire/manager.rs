// SPDX-License-Identifier: GPL-2.0

//! The endpoint manager: the endpoint table and the kernel objects behind its entries (one network interface per
//! endpoint, one UDP tunnel socket per local address, one /proc/vw/<N> file per connector id), and the control
//! operations of Figure 5.9 over them.
//!
//! Locking. `ctl` (a mutex) serialises the control operations, which sleep (socket and interface creation and
//! removal) and owns those kernel objects. `data` (an IRQ-safe spinlock) holds what the data path reads per frame:
//! the table with its counters, the receive index and counted references to the interfaces and sockets of each
//! slot. Order: RTNL, then `ctl`, then `data`. Every operation that registers, unregisters or reconfigures an
//! interface takes RTNL first (`ip link add/del` arrive holding it), so `ctl` is never held while waiting for RTNL.
//! The data path takes only `data`, and never across a transmit or delivery. A slot's references are removed from
//! `data` before its interface or socket goes. /proc files are dropped with no lock held: removing one waits for its
//! readers and writers, which lock; so `ip link del` (RTNL held) leaves the connector's file, and the next
//! /proc/vw/create or destroy write (or rmmod) removes files whose connector has no entry left.

use core::fmt::Write;
use core::net::SocketAddr;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex, SpinLockIrq};

use crate::overcast::fmt::Show;
use crate::overcast::net::{DelQueue, Link, LinkHandler, LinkParams, NetDev, NetDevRef, NewDev, Rtnl, RtnlGuard};
use crate::overcast::procfs::{ProcDir, ProcFile};
use crate::overcast::udp::{self, DstCache, UdpSock, UdpSockRef};
use crate::proc::EndpointHandler;
use crate::{addr, cmd, index, mtu, status, table};

/// Endpoints and relays one manager holds.
pub(crate) const CAPACITY: usize = 256;
/// UDP port used when an address gives none, until the operator changes it (the IANA VXLAN port, so a kernel VXLAN
/// device interoperates).
pub(crate) const DEFAULT_PORT: u16 = mtu::DEFAULT_PORT;
/// Path MTU assumed towards a peer the routing table has no route to yet (§5.1.2: 1500 on the paper's clouds).
const DEFAULT_PATH_MTU: u32 = 1500;

/// The table's slots, in a vmalloc-able vector (the table itself never allocates).
pub(crate) struct Slots(pub(crate) KVec<table::Slot>);

impl table::Storage for Slots {
    fn slots(&self) -> &[table::Slot] {
        &self.0
    }
    fn slots_mut(&mut self) -> &mut [table::Slot] {
        &mut self.0
    }
}

/// The receive index's buckets (twice the table's capacity).
pub(crate) struct Buckets(KVec<u32>);

impl index::BucketStorage for Buckets {
    fn buckets(&self) -> &[u32] {
        &self.0
    }
    fn buckets_mut(&mut self) -> &mut [u32] {
        &mut self.0
    }
}

/// The data path's references for one slot.
#[derive(Default)]
pub(crate) struct SlotIo {
    /// The endpoint's interface (none for relays).
    pub(crate) dev: Option<NetDevRef>,
    /// The socket of the entry's local address: frames are sent from it.
    pub(crate) sock: Option<UdpSockRef>,
    /// The route to the entry's remote address (a new cache when it is repointed; one of an old address is unused).
    pub(crate) route: Option<Arc<DstCache>>,
}

/// What the data path reads and counts, under `Manager::data`.
pub(crate) struct Data {
    pub(crate) table: table::Table<Slots>,
    pub(crate) index: index::RxIndex<Buckets>,
    /// By slot.
    pub(crate) io: KVec<SlotIo>,
    /// Local address of each socket, by socket tag.
    pub(crate) sock_addrs: KVec<Option<SocketAddr>>,
    /// UDP port of an address written without one (`/sys/kernel/config/vwire/default_port`); existing entries
    /// keep the port they were made with.
    pub(crate) default_port: u16,
}

impl Data {
    fn rebuild_index(&mut self) {
        // Cannot fail: the buckets are twice the capacity. On failure every lookup misses (frames are dropped as
        // unknown), never a wrong delivery.
        if self.index.rebuild(&self.table).is_err() {
            pr_err!("receive index rebuild failed; received frames are dropped until the next change\n");
        }
    }

    /// Charges a dropped frame to `slot`, or to the manager.
    pub(crate) fn count_drop(&mut self, slot: Option<usize>, reason: crate::counters::DropReason) {
        match slot.and_then(|s| self.table.counters_mut(s)) {
            Some(c) => c.drop_frame(reason),
            None => self.table.manager.drop_frame(reason),
        }
    }
}

/// A UDP socket shared by every entry with its local address.
struct SockEntry {
    local: SocketAddr,
    sock: UdpSock<Manager>,
    users: usize,
}

/// A /proc/vw/<N> file and the connector it shows.
pub(crate) struct EndpointFile {
    id: u32,
    _file: ProcFile<EndpointHandler>,
}

/// What the control operations own, under `Manager::ctl`.
pub(crate) struct Ctl {
    files: KVec<EndpointFile>,
    /// By socket tag.
    socks: KVec<Option<SockEntry>>,
    /// Interfaces by slot.
    devs: KVec<Option<DevEntry>>,
    /// Set by [`Manager::teardown`]: the module is going away, a create racing with it must not make anything.
    closing: bool,
    /// The `vwire` rtnetlink kind, once registered: interfaces made through /proc/vw are of it too, so `ip -d link
    /// show` and `ip link del` treat every endpoint alike. Taken out by [`Manager::teardown`] (which breaks the
    /// reference cycle Manager → Link → VwLink → Manager).
    link: Option<Arc<Link<VwLink>>>,
}

/// An endpoint's interface.
struct DevEntry {
    name: table::IfName,
    dev: NetDev<Manager>,
}

#[pin_data]
pub(crate) struct Manager {
    #[pin]
    pub(crate) ctl: Mutex<Ctl>,
    #[pin]
    pub(crate) data: SpinLockIrq<Data>,
    pub(crate) dir: ProcDir,
}

/// Maps an errno from vwire/core to a kernel error.
pub(crate) fn errno(e: i32) -> Error {
    Error::from_errno(-e)
}

/// Text of a write, for log lines: printable ASCII only, newline trimmed.
pub(crate) struct Shown<'a>(pub(crate) &'a [u8]);

impl kernel::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0.iter().take(96) {
            if b == b'\n' {
                continue;
            }
            f.write_char(if (0x20..0x7f).contains(&b) { b as char } else { '?' })?;
        }
        Ok(())
    }
}

fn vec_of<T>(n: usize, f: impl Fn() -> T) -> Result<KVec<T>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(f(), GFP_KERNEL)?;
    }
    Ok(v)
}

/// The path MTU towards `remote` from the routing table (1500 when there is no route yet), at most 65535.
fn path_mtu(local: &SocketAddr, remote: &SocketAddr) -> u32 {
    udp::path_mtu(local, remote).map_or(DEFAULT_PATH_MTU, |m| m.min(mtu::MAX_PATH_MTU))
}

/// The largest MTU an endpoint of `family` can be given.
fn max_mtu(family: addr::Family) -> u32 {
    mtu::endpoint_mtu(mtu::MAX_PATH_MTU, family).unwrap_or(mtu::MIN_ENDPOINT_MTU)
}

impl Manager {
    /// A manager with `CAPACITY` empty slots, its /proc files in `dir`.
    pub(crate) fn new(dir: ProcDir) -> Result<Arc<Self>> {
        let data = Data {
            table: table::Table::new(Slots(vec_of(CAPACITY, || table::EMPTY_SLOT)?)),
            index: index::RxIndex::new(Buckets(vec_of(2 * CAPACITY, || index::EMPTY_BUCKET)?)),
            io: vec_of(CAPACITY, SlotIo::default)?,
            sock_addrs: vec_of(CAPACITY, || None)?,
            default_port: DEFAULT_PORT,
        };
        let ctl = Ctl {
            files: KVec::new(),
            socks: vec_of(CAPACITY, || None)?,
            devs: vec_of(CAPACITY, || None)?,
            closing: false,
            link: None,
        };
        Arc::pin_init(
            pin_init!(Manager {
                ctl <- kernel::new_mutex!(ctl),
                data <- kernel::new_spinlock_irq!(data),
                dir,
            }),
            GFP_KERNEL,
        )
    }

    /// `echo "<N> <AdrA> <AdrB>" > /proc/vw/create` (and `relay <N> <AdrIn> <AdrOut>`).
    pub(crate) fn create(self: &Arc<Self>, input: &[u8]) -> Result {
        self.reap_files();
        let c = cmd::parse_create(input, self.default_port()).map_err(|e| {
            pr_err!("create \"{}\": {}; expected {}\n", Shown(input), Show(&e), cmd::CREATE_USAGE);
            errno(e.errno())
        })?;
        let rtnl = RtnlGuard::lock();
        self.create_entry(&rtnl, &c, None)
    }

    /// Makes entry `c`: table entry, socket, interface (`new`: the one `ip link add` allocated; else `vw<N>`) and
    /// /proc/vw/<N>. A failure undoes everything, so a refused create changes nothing.
    fn create_entry(self: &Arc<Self>, rtnl: &Rtnl, c: &cmd::Create, new: Option<NewDev<'_>>) -> Result {
        let id = c.id.get();
        let mut name = [0u8; 16];
        let name = endpoint_file_name(&mut name, id)?;
        let pmtu = path_mtu(&c.local, &c.remote);
        let mut ctl = self.ctl.lock();
        if ctl.closing {
            return Err(ENODEV);
        }
        // Room first, so that nothing can fail after the file was made.
        ctl.files.reserve(1, GFP_KERNEL)?;
        let slot = self.data.lock().table.create(c, pmtu).map_err(|e| {
            pr_err!("create {} {} {}: {}\n", id, Show(&c.local), Show(&c.remote), Show(&e));
            errno(e.errno())
        })?;
        // From here on, a failure undoes everything, so a refused create changes nothing.
        if let Err(e) = self.attach(rtnl, &mut ctl, slot, c, new) {
            self.undo_create(rtnl, &mut ctl, slot, c);
            return Err(e);
        }
        if !ctl.files.iter().any(|f| f.id == id) {
            let file = Arc::new(EndpointHandler { id: c.id, mgr: self.clone() }, GFP_KERNEL)
                .map_err(Error::from)
                .and_then(|h| ProcFile::new(&self.dir, name, 0o644, h));
            match file {
                // Cannot fail: room was reserved above.
                Ok(f) => ctl.files.push(EndpointFile { id, _file: f }, GFP_KERNEL)?,
                Err(e) => {
                    self.undo_create(rtnl, &mut ctl, slot, c);
                    pr_err!("create {}: cannot make /proc/vw/{} ({:?}); nothing was created\n", id, id, e);
                    return Err(e);
                }
            }
        }
        let d = self.data.lock();
        let (ifname, mtu) = d.table.get(slot).map_or((table::IfName::NONE, 0), |e| (e.ifname(), e.mtu()));
        drop(d);
        if ifname.is_none() {
            pr_info!("created relay {} {} -> {}\n", id, Show(&c.local), Show(&c.remote));
        } else {
            pr_info!(
                "created connector {} {} -> {}: interface {} mtu {}\n",
                id,
                Show(&c.local),
                Show(&c.remote),
                ifname.as_str(),
                mtu
            );
        }
        Ok(())
    }

    /// Removes the /proc/vw/<N> files of connectors that have no entry left (deleted with `ip link del`, which
    /// cannot remove them itself). Called with no lock held.
    fn reap_files(&self) {
        let dead = {
            let mut ctl = self.ctl.lock();
            let mut dead = KVec::new();
            // Room for all first: a file must never be dropped under the lock.
            if dead.reserve(ctl.files.len(), GFP_KERNEL).is_err() {
                return;
            }
            let mut i = 0;
            while i < ctl.files.len() {
                let id = ctl.files.get(i).map_or(0, |f| f.id);
                let live = crate::id::ConnectorId::new(id)
                    .is_some_and(|cid| self.data.lock().table.entries_of(cid).next().is_some());
                if live {
                    i += 1;
                    continue;
                }
                let Ok(f) = ctl.files.remove(i) else { break };
                if let Err(kernel::alloc::kvec::PushError(f)) = dead.push_within_capacity(f) {
                    // Cannot happen (room reserved); keep it rather than drop it here.
                    let _ = ctl.files.push_within_capacity(f);
                    break;
                }
            }
            dead
        };
        drop(dead);
    }

    /// Gives the new entry in `slot` its socket and (for an endpoint) its interface, and publishes them to the
    /// data path. On error, what was attached stays recorded for [`Manager::undo_create`].
    fn attach(
        self: &Arc<Self>,
        rtnl: &Rtnl,
        ctl: &mut Ctl,
        slot: usize,
        c: &cmd::Create,
        new: Option<NewDev<'_>>,
    ) -> Result {
        let tag = self.get_sock(ctl, &c.local)?;
        let sock = ctl.socks.get(tag).and_then(Option::as_ref).map(|s| s.sock.handle());
        let mut dev = None;
        if c.kind == table::Kind::Endpoint {
            let mtu = self.data.lock().table.get(slot).map_or(0, |e| e.mtu());
            let max = max_mtu(addr::Family::of(&c.local));
            let (nd, ifname) = match new {
                Some(new) => {
                    let nd = NetDev::adopt(new, mtu, max, self.clone(), slot).inspect_err(|e| {
                        pr_err!("ip link add ... type vwire id {}: cannot register the interface ({:?})\n", c.id.get(), e);
                    })?;
                    let mut buf = [0u8; 16];
                    match table::IfName::new(nd.name(rtnl, &mut buf)) {
                        Some(n) => (nd, n),
                        None => {
                            pr_err!("ip link add ... type vwire id {}: unusable interface name\n", c.id.get());
                            nd.unregister(rtnl);
                            return Err(EINVAL);
                        }
                    }
                }
                None => {
                    let ifname = pick_ifname(ctl, c.id.get())?;
                    let mut cname = [0u8; 16];
                    let cname = cstr_of(&mut cname, ifname.as_str())?;
                    let nd = match ctl.link.as_ref() {
                        Some(link) => link.register_netdev(rtnl, cname, mtu, max, self.clone(), slot),
                        None => NetDev::register(rtnl, cname, mtu, max, self.clone(), slot),
                    };
                    let nd = nd.inspect_err(|e| {
                        pr_err!(
                            "create {}: cannot register interface {} ({:?}); if another device has that name, rename \
                             or remove it\n",
                            c.id.get(),
                            ifname.as_str(),
                            e
                        );
                    })?;
                    (nd, ifname)
                }
            };
            dev = Some(nd.handle());
            if let Some(d) = ctl.devs.get_mut(slot) {
                *d = Some(DevEntry { name: ifname, dev: nd });
            }
            self.data.lock().table.set_ifname(slot, ifname);
        }
        let route = Some(Arc::new(DstCache::new(c.remote)?, GFP_KERNEL)?);
        let mut d = self.data.lock();
        if let Some(io) = d.io.get_mut(slot) {
            *io = SlotIo { dev, sock, route };
        }
        d.rebuild_index();
        Ok(())
    }

    /// Undoes a create that failed after the table entry was made.
    fn undo_create(&self, rtnl: &Rtnl, ctl: &mut Ctl, slot: usize, c: &cmd::Create) {
        let _ = self.data.lock().table.destroy(c.id, Some(&c.local));
        self.detach(rtnl, ctl, slot, &c.local, None);
    }

    /// Removes the data path's references of `slot`, then its interface (unregistered now, or on `q`: an `ip link
    /// del`), then its use of the socket at `local`. The table entry must already be gone.
    fn detach(&self, rtnl: &Rtnl, ctl: &mut Ctl, slot: usize, local: &SocketAddr, q: Option<&DelQueue<'_>>) {
        let io = {
            let mut d = self.data.lock();
            d.rebuild_index();
            d.io.get_mut(slot).map(core::mem::take)
        };
        // The references go before the objects: the interface is freed only after the last one.
        drop(io);
        if let Some(d) = ctl.devs.get_mut(slot).and_then(Option::take) {
            match q {
                Some(q) => d.dev.unregister_queued(q),
                None => d.dev.unregister(rtnl),
            }
        }
        self.put_sock(ctl, local);
    }

    /// The tag of the socket bound to `local`, opened if no entry uses it yet.
    fn get_sock(self: &Arc<Self>, ctl: &mut Ctl, local: &SocketAddr) -> Result<usize> {
        if let Some(tag) = ctl.socks.iter().position(|s| s.as_ref().is_some_and(|s| s.local == *local)) {
            if let Some(Some(s)) = ctl.socks.get_mut(tag) {
                s.users = s.users.saturating_add(1);
            }
            self.refresh_gro(ctl, tag);
            return Ok(tag);
        }
        let tag = ctl.socks.iter().position(Option::is_none).ok_or(ENOSPC)?;
        let sock = UdpSock::open(local, self.clone(), tag).inspect_err(|e| {
            if *e == EADDRINUSE {
                pr_err!(
                    "cannot bind UDP {}: the port is in use by another socket on this address (a VXLAN device or \
                     another program?); choose another port\n",
                    Show(local)
                );
            } else {
                pr_err!("cannot open a UDP socket on {} ({:?})\n", Show(local), e);
            }
        })?;
        if let Some(slot) = ctl.socks.get_mut(tag) {
            *slot = Some(SockEntry { local: *local, sock, users: 1 });
        }
        if let Some(a) = self.data.lock().sock_addrs.get_mut(tag) {
            *a = Some(*local);
        }
        self.refresh_gro(ctl, tag);
        Ok(tag)
    }

    /// Receive aggregation on the socket `tag`, as the kernel's VXLAN does (merged inner TCP segments reach the
    /// endpoint as one large frame), unless a relay receives there: relayed datagrams leave as they arrived.
    fn refresh_gro(&self, ctl: &Ctl, tag: usize) {
        if let Some(Some(s)) = ctl.socks.get(tag) {
            let relay = self.data.lock().table.relays_on(&s.local);
            s.sock.set_gro(if relay { None } else { Some(crate::header::HEADER_LEN as u32) });
        }
    }

    /// Drops one use of the socket bound to `local`; closes it after the last.
    fn put_sock(&self, ctl: &mut Ctl, local: &SocketAddr) {
        let Some(tag) = ctl.socks.iter().position(|s| s.as_ref().is_some_and(|s| s.local == *local)) else {
            return;
        };
        let last = match ctl.socks.get_mut(tag) {
            Some(Some(s)) => {
                s.users = s.users.saturating_sub(1);
                s.users == 0
            }
            _ => false,
        };
        if last {
            if let Some(a) = self.data.lock().sock_addrs.get_mut(tag) {
                *a = None;
            }
            let closed = ctl.socks.get_mut(tag).and_then(Option::take);
            drop(closed);
        } else {
            self.refresh_gro(ctl, tag);
        }
    }

    /// `echo "<N>" > /proc/vw/destroy` (or `<N> <AdrA>`).
    pub(crate) fn destroy(&self, input: &[u8]) -> Result {
        self.reap_files();
        let d = cmd::parse_destroy(input, self.default_port()).map_err(|e| {
            pr_err!("destroy \"{}\": {}; expected {}\n", Shown(input), Show(&e), cmd::DESTROY_USAGE);
            errno(e.errno())
        })?;
        let removed = {
            let rtnl = RtnlGuard::lock();
            let mut ctl = self.ctl.lock();
            let (slot, entry) = self.data.lock().table.destroy(d.id, d.local.as_ref()).map_err(|e| {
                pr_err!("destroy \"{}\": {}\n", Shown(input), Show(&e));
                errno(e.errno())
            })?;
            self.detach(&rtnl, &mut ctl, slot, &entry.local(), None);
            let id = d.id.get();
            let others = self.data.lock().table.entries_of(d.id).next().is_some();
            if others {
                None
            } else {
                ctl.files.iter().position(|f| f.id == id).and_then(|i| ctl.files.remove(i).ok())
            }
        };
        // Dropped outside the locks: removing the file waits for its readers and writers, which lock.
        drop(removed);
        pr_info!("destroyed connector {}\n", d.id.get());
        Ok(())
    }

    /// `echo "<AdrC>" > /proc/vw/<N>` (or `<AdrA> <AdrC>`): the send side now goes to AdrC, atomically for the
    /// data path; the interface's MTU follows the path to AdrC.
    pub(crate) fn repoint(&self, id: crate::id::ConnectorId, input: &[u8]) -> Result {
        let r = cmd::parse_repoint(input, self.default_port()).map_err(|e| {
            pr_err!("repoint {} \"{}\": {}; expected {}\n", id.get(), Shown(input), Show(&e), cmd::REPOINT_USAGE);
            errno(e.errno())
        })?;
        let rtnl = RtnlGuard::lock();
        self.repoint_with(&rtnl, id, &r, input)
    }

    /// A parsed repoint (`input`: its text, for log lines), RTNL held: /proc/vw/<N> and `ip link set … type vwire`.
    fn repoint_with(&self, rtnl: &Rtnl, id: crate::id::ConnectorId, r: &cmd::Repoint, input: &[u8]) -> Result {
        let ctl = self.ctl.lock();
        let local = {
            let d = self.data.lock();
            let slot = d.table.select(id, r.local.as_ref());
            slot.ok().and_then(|s| d.table.get(s)).map(|e| e.local())
        };
        let pmtu = local.map(|l| path_mtu(&l, &r.remote));
        let route = Arc::new(DstCache::new(r.remote)?, GFP_KERNEL)?;
        let (slot, new_mtu, old_route) = {
            let mut d = self.data.lock();
            let slot = d.table.repoint(id, r.local.as_ref(), r.remote).map_err(|e| {
                pr_err!("repoint {} \"{}\": {}\n", id.get(), Shown(input), Show(&e));
                errno(e.errno())
            })?;
            // The old route goes after the lock (a frame in flight may still hold it: then it is freed after it).
            let old_route = d.io.get_mut(slot).and_then(|io| io.route.replace(route));
            let old = d.table.get(slot).map_or(0, |e| e.mtu());
            let new = pmtu.and_then(|p| d.table.set_path_mtu(slot, p).ok()).unwrap_or(old);
            (slot, (new != old && new != 0).then_some(new), old_route)
        };
        drop(old_route);
        if let (Some(mtu), Some(Some(d))) = (new_mtu, ctl.devs.get(slot)) {
            if let Err(e) = d.dev.set_mtu(rtnl, mtu) {
                pr_err!("repoint {}: cannot set the interface MTU to {} ({:?})\n", id.get(), mtu, e);
            }
        }
        drop(ctl);
        pr_info!("connector {} now sends to {}\n", id.get(), Show(&r.remote));
        Ok(())
    }

    /// `echo "collapse on|off" / "reset-counters" > /proc/vw/manager`.
    pub(crate) fn control(&self, input: &[u8]) -> Result {
        let text = core::str::from_utf8(input).map_err(|_| EINVAL)?.trim();
        match text {
            "collapse on" => self.set_collapse(true),
            "collapse off" => self.set_collapse(false),
            "reset-counters" => self.reset_counters(),
            _ => {
                pr_err!(
                    "manager \"{}\": unknown control; expected 'collapse on|off' or 'reset-counters'\n",
                    Shown(input)
                );
                return Err(EINVAL);
            }
        }
        Ok(())
    }

    /// Enables or disables co-located collapse (§5.2.3) for every connector; entries switch mode at once.
    pub(crate) fn set_collapse(&self, on: bool) {
        let _ctl = self.ctl.lock();
        let mut d = self.data.lock();
        if d.table.collapse_enabled() != on {
            d.table.set_collapse(on);
            drop(d);
            pr_info!("co-located collapse {}\n", if on { "enabled" } else { "disabled" });
        }
    }

    /// Whether co-located collapse is enabled.
    pub(crate) fn collapse_enabled(&self) -> bool {
        self.data.lock().table.collapse_enabled()
    }

    /// Zeroes every entry's counters and the manager-wide ones.
    pub(crate) fn reset_counters(&self) {
        let _ctl = self.ctl.lock();
        self.data.lock().table.reset_counters();
        pr_info!("counters reset\n");
    }

    /// The UDP port of an address written without one.
    pub(crate) fn default_port(&self) -> u16 {
        self.data.lock().default_port
    }

    /// Sets the UDP port of addresses written without one from an operator's text (`1..=65535`). Existing
    /// entries are not changed.
    pub(crate) fn set_default_port(&self, input: &[u8]) -> Result {
        let port = addr::parse_port_setting(input).map_err(|e| {
            pr_err!("default_port \"{}\": {}; expected a decimal port 1-65535\n", Shown(input), Show(&e));
            EINVAL
        })?;
        self.data.lock().default_port = port;
        pr_info!("default port now {}; addresses written without a port use it from now on\n", port);
        Ok(())
    }

    /// From now on, interfaces made through /proc/vw are of the `vwire` kind (`ip -d link show`, `ip link del`).
    pub(crate) fn set_link(&self, link: Arc<Link<VwLink>>) {
        self.ctl.lock().link = Some(link);
    }

    /// Removes every endpoint's interface, socket and /proc file (module unload); breaks the references from
    /// handlers, interfaces and sockets back to the manager.
    pub(crate) fn teardown(&self) {
        let (files, link) = {
            let rtnl = RtnlGuard::lock();
            let mut ctl = self.ctl.lock();
            ctl.closing = true;
            for slot in 0..CAPACITY {
                let io = self.data.lock().io.get_mut(slot).map(core::mem::take);
                drop(io);
            }
            for slot in 0..CAPACITY {
                if let Some(d) = ctl.devs.get_mut(slot).and_then(Option::take) {
                    d.dev.unregister(&rtnl);
                }
            }
            for tag in 0..CAPACITY {
                if let Some(a) = self.data.lock().sock_addrs.get_mut(tag) {
                    *a = None;
                }
                let sock = ctl.socks.get_mut(tag).and_then(Option::take);
                drop(sock);
            }
            (core::mem::replace(&mut ctl.files, KVec::new()), ctl.link.take())
        };
        drop(files);
        // Without RTNL: the module's own reference unregisters the kind after this.
        drop(link);
    }
}

/// `vw<N>` for the first endpoint of N on this host, `vw<N>-<k>` for a further one (the other end of a collapsed
/// connector), k = 1, 2, ...
fn pick_ifname(ctl: &Ctl, id: u32) -> Result<table::IfName> {
    for k in 0..CAPACITY {
        let mut buf = [0u8; 16];
        let mut w = status::BufWriter::new(&mut buf);
        if k == 0 {
            write!(w, "vw{}", id).map_err(|_| EINVAL)?;
        } else {
            write!(w, "vw{}-{}", id, k).map_err(|_| EINVAL)?;
        }
        let len = w.len();
        let text = core::str::from_utf8(buf.get(..len).ok_or(EINVAL)?).map_err(|_| EINVAL)?;
        let Some(name) = table::IfName::new(text) else {
            break;
        };
        if !ctl.names().any(|n| n == name) {
            return Ok(name);
        }
    }
    pr_err!("create {}: no free interface name vw{}[-k] of at most 15 characters\n", id, id);
    Err(ENOSPC)
}

impl Ctl {
    /// Names of the interfaces this manager made.
    fn names(&self) -> impl Iterator<Item = table::IfName> + '_ {
        self.devs.iter().flatten().map(|d| d.name)
    }
}

/// `buf` as a NUL-terminated copy of `text`.
fn cstr_of<'a>(buf: &'a mut [u8; 16], text: &str) -> Result<&'a CStr> {
    let b = text.as_bytes();
    buf.get_mut(..b.len()).ok_or(EINVAL)?.copy_from_slice(b);
    *buf.get_mut(b.len()).ok_or(EINVAL)? = 0;
    CStr::from_bytes_with_nul(buf.get(..=b.len()).ok_or(EINVAL)?).map_err(|_| EINVAL)
}

fn endpoint_file_name(buf: &mut [u8; 16], id: u32) -> Result<&CStr> {
    let mut w = status::BufWriter::new(&mut buf[..15]);
    write!(w, "{}", id).map_err(|_| EINVAL)?;
    let len = w.len();
    CStr::from_bytes_with_nul(buf.get(..=len).ok_or(EINVAL)?).map_err(|_| EINVAL)
}

/// `ip link add NAME type vwire id N local ADDR remote ADDR` / `ip link del NAME` / `ip -d link show`: the same
/// entries as /proc/vw/create and destroy make (one implementation: `Manager::create_entry`), through rtnetlink.
pub(crate) struct VwLink(pub(crate) Arc<Manager>);

impl LinkHandler for VwLink {
    fn newlink(&self, rtnl: &Rtnl, dev: NewDev<'_>, p: &LinkParams) -> Result {
        let mgr = &self.0;
        // The same text /proc/vw/create takes, through the same parser (addresses, default port, checks).
        let mut buf = [0u8; 2 * crate::overcast::net::LINK_ADDR_MAX + 16];
        let mut w = status::BufWriter::new(&mut buf);
        write!(w, "{} {} {}", p.id, p.local(), p.remote()).map_err(|_| EINVAL)?;
        let len = w.len();
        let text = buf.get(..len).ok_or(EINVAL)?;
        let c = cmd::parse_create(text, mgr.default_port()).map_err(|e| {
            pr_err!(
                "ip link add ... type vwire id {} local {} remote {}: {}\n",
                p.id,
                p.local(),
                p.remote(),
                Show(&e)
            );
            errno(e.errno())
        })?;
        if c.kind != table::Kind::Endpoint {
            return Err(EINVAL);
        }
        mgr.create_entry(rtnl, &c, Some(dev))
    }

    fn dellink(&self, rtnl: &Rtnl, slot: usize, q: &DelQueue<'_>) {
        let mgr = &self.0;
        let mut ctl = mgr.ctl.lock();
        let entry = mgr.data.lock().table.get(slot).map(|e| (e.id(), e.local()));
        match entry {
            Some((id, local)) => {
                let _ = mgr.data.lock().table.destroy(id, Some(&local));
                mgr.detach(rtnl, &mut ctl, slot, &local, Some(q));
                pr_info!("destroyed connector {} endpoint on {} (ip link del)\n", id.get(), Show(&local));
            }
            // Cannot happen (every interface of the kind has its entry); unregister it anyway.
            None => {
                if let Some(d) = ctl.devs.get_mut(slot).and_then(Option::take) {
                    d.dev.unregister_queued(q);
                }
            }
        }
    }

    fn changelink(&self, rtnl: &Rtnl, slot: usize, p: &LinkParams) -> Result {
        let mgr = &self.0;
        let port = mgr.default_port();
        let (id, local) = mgr.data.lock().table.get(slot).map(|e| (e.id(), e.local())).ok_or(ENODEV)?;
        // id and local may be given only to confirm: they name the endpoint, a repoint cannot change them.
        if p.id != 0 && p.id != id.get() {
            pr_err!("ip link set ... type vwire id {}: the interface is connector {}; only remote can change\n", p.id, id.get());
            return Err(EINVAL);
        }
        let mut buf = [0u8; 2 * crate::overcast::net::LINK_ADDR_MAX + 16];
        let mut w = status::BufWriter::new(&mut buf);
        if !p.local().is_empty() {
            let given = addr::parse_addr(p.local(), port).map_err(|e| {
                pr_err!("ip link set ... type vwire local {}: {}\n", p.local(), Show(&e));
                EINVAL
            })?;
            if given != local {
                pr_err!("ip link set ... type vwire local {}: the interface receives on {}; only remote can change\n", p.local(), Show(&local));
                return Err(EINVAL);
            }
        }
        // The text /proc/vw/<N> takes (`AdrA AdrC`, selecting this entry), through the same parser and repoint.
        write!(w, "{} {}", local, p.remote()).map_err(|_| EINVAL)?;
        let len = w.len();
        let text = buf.get(..len).ok_or(EINVAL)?;
        let r = cmd::parse_repoint(text, port).map_err(|e| {
            pr_err!("ip link set ... type vwire remote {}: {}\n", p.remote(), Show(&e));
            errno(e.errno())
        })?;
        mgr.repoint_with(rtnl, id, &r, text)
    }

    fn fill(&self, slot: usize, out: &mut LinkParams) -> Result {
        let d = self.0.data.lock();
        let e = d.table.get(slot).ok_or(ENOENT)?;
        let mut lb = [0u8; crate::overcast::net::LINK_ADDR_MAX];
        let mut rb = [0u8; crate::overcast::net::LINK_ADDR_MAX];
        let mut lw = status::BufWriter::new(&mut lb);
        write!(lw, "{}", e.local()).map_err(|_| EOVERFLOW)?;
        let ll = lw.len();
        let mut rw = status::BufWriter::new(&mut rb);
        write!(rw, "{}", e.remote()).map_err(|_| EOVERFLOW)?;
        let rl = rw.len();
        let local = core::str::from_utf8(lb.get(..ll).ok_or(EOVERFLOW)?).map_err(|_| EINVAL)?;
        let remote = core::str::from_utf8(rb.get(..rl).ok_or(EOVERFLOW)?).map_err(|_| EINVAL)?;
        out.set(e.id().get(), local, remote)
    }
}
