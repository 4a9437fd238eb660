//! The endpoint/relay table of one endpoint manager, and the co-located collapse decision (§5.1.2, §5.2.3).
//!
//! An *entry* is either an **endpoint** (bound to a network interface) or an extender **relay** (no interface:
//! encapsulated frames arriving on its local address are re-sent to its remote address).  Entries are keyed by
//! `(connector id, local address)`: received frames are demultiplexed by the address they arrived on plus the id in
//! their header.  Several entries may share an id when this host holds both ends of a connector, or both
//! directions of a relay; several entries may share a local address (one UDP socket) with different ids.
//!
//! **Collapse rule.**  With collapse enabled, an endpoint E is `Collapsed { peer }` exactly when another endpoint P
//! of the same connector id exists on this host with `P.local == E.remote`: frames E would have encapsulated to P
//! are handed to P directly.  This is exactly the delivery encapsulation would have produced, minus the
//! encapsulation, so it is decided per direction and stays correct half-way through a migration.  Repointing E
//! anywhere else makes it `Encapsulating` again, with no manual step.  Relays are never collapsed.
//!
//! The table is allocation-free: it works over caller-provided storage (an array on the host, a vmalloc'ed slice
//! in the kernel) through [`Storage`].  Slot indices are stable for an entry's lifetime, so the kernel can keep
//! per-slot state (net_device, per-CPU counters) in parallel arrays.  After `create`/`repoint`/`destroy` of id N,
//! only entries of N can change mode; after `set_collapse`, any entry can.

use core::fmt;
use core::net::SocketAddr;

use super::addr::Family;
use super::cmd::{Create, Field, ParseError};
use super::counters::Counters;
use super::errno;
use super::id::ConnectorId;
use super::mtu::endpoint_mtu;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An endpoint with a network interface.
    Endpoint,
    /// An extender relay (Fig. 5.4).
    Relay,
}

impl Kind {
    /// `endpoint` or `relay`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Endpoint => "endpoint",
            Kind::Relay => "relay",
        }
    }
}

/// How an entry forwards what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Encapsulates in UDP to `remote`.
    Encapsulating,
    /// Hands frames directly to the endpoint in slot `peer` (same connector, this host).
    Collapsed {
        /// Slot index of the peer endpoint.
        peer: usize,
    },
    /// Extender relay: re-encapsulates received frames to `remote`.
    Relay,
}

impl Mode {
    /// `encapsulating`, `collapsed` or `relay`.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Encapsulating => "encapsulating",
            Mode::Collapsed { .. } => "collapsed",
            Mode::Relay => "relay",
        }
    }
}

/// One endpoint or relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    id: ConnectorId,
    kind: Kind,
    local: SocketAddr,
    remote: SocketAddr,
    mode: Mode,
    path_mtu: u32,
    mtu: u32,
    ifname: IfName,
    /// Live counters (the kernel may instead keep per-CPU copies and sum them for rendering).
    pub counters: Counters,
}

/// Longest network interface name (Linux `IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

/// The name of an endpoint's network interface (empty: none, e.g. a relay, or not created yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfName {
    bytes: [u8; IFNAME_MAX],
    len: u8,
}

impl IfName {
    /// No name.
    pub const NONE: IfName = IfName {
        bytes: [0; IFNAME_MAX],
        len: 0,
    };

    /// `name` if it is a valid Linux interface name: 1..=15 bytes of printable ASCII other than space, `/` and
    /// `:`, and not `.` or `..`.
    pub fn new(name: &str) -> Option<IfName> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= IFNAME_MAX
            && name != "."
            && name != ".."
            && b.iter().all(|&c| c.is_ascii_graphic() && c != b'/' && c != b':');
        if !ok {
            return None;
        }
        let mut bytes = [0u8; IFNAME_MAX];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(IfName {
            bytes,
            len: u8::try_from(b.len()).ok()?,
        })
    }

    /// The name (empty for [`IfName::NONE`]).
    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(b).unwrap_or("")
    }

    /// Whether there is no name.
    pub fn is_none(&self) -> bool {
        self.len == 0
    }
}

impl Entry {
    /// Connector id.
    pub const fn id(&self) -> ConnectorId {
        self.id
    }
    /// Endpoint or relay.
    pub const fn kind(&self) -> Kind {
        self.kind
    }
    /// Receive address (AdrA / AdrIn).
    pub const fn local(&self) -> SocketAddr {
        self.local
    }
    /// Send address (AdrB / AdrOut / the last AdrC).
    pub const fn remote(&self) -> SocketAddr {
        self.remote
    }
    /// Current forwarding mode.
    pub const fn mode(&self) -> Mode {
        self.mode
    }
    /// Outer address family.
    pub const fn family(&self) -> Family {
        Family::of(&self.local)
    }
    /// Path MTU towards `remote` last given to the table (0 for relays).
    pub const fn path_mtu(&self) -> u32 {
        self.path_mtu
    }
    /// The MTU the endpoint interface must have (0 for relays).  Kept at the encapsulating value while collapsed,
    /// so that un-collapsing never has to shrink the MTU under a running flow.
    pub const fn mtu(&self) -> u32 {
        self.mtu
    }
    /// Name of the endpoint's network interface, [`IfName::NONE`] if it has none.
    pub const fn ifname(&self) -> IfName {
        self.ifname
    }
}

/// A table slot.
pub type Slot = Option<Entry>;
/// An empty slot, for initialising storage: `[EMPTY_SLOT; 256]`.
pub const EMPTY_SLOT: Slot = None;

/// Backing store of a [`Table`].
pub trait Storage {
    /// All slots.
    fn slots(&self) -> &[Slot];
    /// All slots, mutably.
    fn slots_mut(&mut self) -> &mut [Slot];
}

impl<const N: usize> Storage for [Slot; N] {
    fn slots(&self) -> &[Slot] {
        self
    }
    fn slots_mut(&mut self) -> &mut [Slot] {
        self
    }
}

impl Storage for &mut [Slot] {
    fn slots(&self) -> &[Slot] {
        self
    }
    fn slots_mut(&mut self) -> &mut [Slot] {
        self
    }
}

/// Why a table operation failed.  A failed operation changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// An entry with this id and local address exists.
    Exists,
    /// No entry with this id (and local address).
    NotFound,
    /// Several entries have this id; the command must name the local address.
    Ambiguous {
        /// How many.
        entries: usize,
    },
    /// No free slot.
    Full,
    /// The command's addresses are invalid.
    Invalid(ParseError),
    /// The path MTU leaves no usable endpoint MTU.
    PathMtu {
        /// The offending path MTU.
        path_mtu: u32,
    },
}

impl TableError {
    /// Positive errno.
    pub const fn errno(&self) -> i32 {
        match self {
            TableError::Exists => errno::EEXIST,
            TableError::NotFound => errno::ENOENT,
            TableError::Ambiguous { .. } => errno::EINVAL,
            TableError::Full => errno::ENOSPC,
            TableError::Invalid(e) => e.errno(),
            TableError::PathMtu { .. } => errno::EINVAL,
        }
    }
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Exists => f.write_str("an entry with this id and local address exists"),
            TableError::NotFound => f.write_str("no such entry"),
            TableError::Ambiguous { entries } => {
                write!(f, "{entries} entries have this id; name the local address")
            }
            TableError::Full => f.write_str("endpoint table full"),
            TableError::Invalid(e) => e.fmt(f),
            TableError::PathMtu { path_mtu } => {
                write!(f, "path MTU {path_mtu} too small or out of range")
            }
        }
    }
}

/// The table.
pub struct Table<S: Storage> {
    store: S,
    collapse: bool,
    /// Manager-wide counters (frames no entry could be charged for).
    pub manager: Counters,
}

impl<S: Storage> Table<S> {
    /// A table over `store`, which is cleared; collapse enabled.
    pub fn new(mut store: S) -> Table<S> {
        for slot in store.slots_mut() {
            *slot = None;
        }
        Table {
            store,
            collapse: true,
            manager: Counters::ZERO,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.store.slots().len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.store.slots().iter().filter(|s| s.is_some()).count()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.store.slots().iter().all(Option::is_none)
    }

    /// The entry in slot `idx`.
    pub fn get(&self, idx: usize) -> Option<&Entry> {
        self.store.slots().get(idx).and_then(Option::as_ref)
    }

    /// All entries with their slot index, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.store
            .slots()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|e| (i, e)))
    }

    /// Whether a relay (extender) entry receives on `local`: its datagrams are forwarded as they arrived, so the
    /// socket there must not merge them (GRO).
    pub fn relays_on(&self, local: &SocketAddr) -> bool {
        self.iter()
            .any(|(_, e)| e.kind == Kind::Relay && e.local == *local)
    }

    /// Entries of one connector id.
    pub fn entries_of(&self, id: ConnectorId) -> impl Iterator<Item = (usize, &Entry)> {
        self.iter().filter(move |(_, e)| e.id == id)
    }

    /// The entry for a received frame: arrived on `local` with `id` in its header.
    pub fn find(&self, id: ConnectorId, local: &SocketAddr) -> Option<usize> {
        self.iter()
            .find(|(_, e)| e.id == id && e.local == *local)
            .map(|(i, _)| i)
    }

    /// The entry a /proc/vw command names: the one at `local` if given, else the id's only entry.
    pub fn select(&self, id: ConnectorId, local: Option<&SocketAddr>) -> Result<usize, TableError> {
        if let Some(local) = local {
            return self.find(id, local).ok_or(TableError::NotFound);
        }
        let mut found = None;
        let mut entries = 0usize;
        for (i, _) in self.entries_of(id) {
            found = Some(i);
            entries = entries.saturating_add(1);
        }
        match (found, entries) {
            (Some(i), 1) => Ok(i),
            (None, _) => Err(TableError::NotFound),
            (_, entries) => Err(TableError::Ambiguous { entries }),
        }
    }

    /// Whether co-located collapse is enabled.
    pub fn collapse_enabled(&self) -> bool {
        self.collapse
    }

    /// Enables or disables collapse and recomputes every mode.
    pub fn set_collapse(&mut self, on: bool) {
        self.collapse = on;
        for i in 0..self.capacity() {
            self.recompute_slot(i);
        }
    }

    /// Adds an entry; `path_mtu` is the path MTU towards `cmd.remote` (ignored for relays).  Returns its slot.
    pub fn create(&mut self, cmd: &Create, path_mtu: u32) -> Result<usize, TableError> {
        let cmd =
            Create::new(cmd.id, cmd.kind, cmd.local, cmd.remote).map_err(TableError::Invalid)?;
        if self.find(cmd.id, &cmd.local).is_some() {
            return Err(TableError::Exists);
        }
        let (path_mtu, mtu) = match cmd.kind {
            Kind::Relay => (0, 0),
            Kind::Endpoint => {
                let mtu = endpoint_mtu(path_mtu, Family::of(&cmd.local))
                    .ok_or(TableError::PathMtu { path_mtu })?;
                (path_mtu, mtu)
            }
        };
        let idx = self
            .store
            .slots()
            .iter()
            .position(Option::is_none)
            .ok_or(TableError::Full)?;
        let mode = if cmd.kind == Kind::Relay {
            Mode::Relay
        } else {
            Mode::Encapsulating
        };
        let entry = Entry {
            id: cmd.id,
            kind: cmd.kind,
            local: cmd.local,
            remote: cmd.remote,
            mode,
            path_mtu,
            mtu,
            ifname: IfName::NONE,
            counters: Counters::ZERO,
        };
        let slot = self
            .store
            .slots_mut()
            .get_mut(idx)
            .ok_or(TableError::Full)?;
        *slot = Some(entry);
        self.recompute_id(cmd.id);
        Ok(idx)
    }

    /// Points the send side of an entry at `remote` (Fig. 5.9 `echo <AdrC> > /proc/vw/<N>`).  Returns its slot.
    pub fn repoint(
        &mut self,
        id: ConnectorId,
        local: Option<&SocketAddr>,
        remote: SocketAddr,
    ) -> Result<usize, TableError> {
        let idx = self.select(id, local)?;
        let entry = self.get(idx).ok_or(TableError::NotFound)?;
        Create::new(id, entry.kind, entry.local, remote).map_err(|e| {
            // The entry's own local address is valid; report everything against the new remote.
            TableError::Invalid(match e {
                ParseError::Addr { err, .. } => ParseError::Addr {
                    field: Field::Remote,
                    err,
                },
                other => other,
            })
        })?;
        if let Some(Some(e)) = self.store.slots_mut().get_mut(idx) {
            e.remote = remote;
        }
        self.recompute_id(id);
        Ok(idx)
    }

    /// Removes an entry; returns its former slot and the entry.
    pub fn destroy(
        &mut self,
        id: ConnectorId,
        local: Option<&SocketAddr>,
    ) -> Result<(usize, Entry), TableError> {
        let idx = self.select(id, local)?;
        let entry = self
            .store
            .slots_mut()
            .get_mut(idx)
            .and_then(Option::take)
            .ok_or(TableError::NotFound)?;
        self.recompute_id(id);
        Ok((idx, entry))
    }

    /// Records a new path MTU for slot `idx` and returns the endpoint MTU the interface must take.
    pub fn set_path_mtu(&mut self, idx: usize, path_mtu: u32) -> Result<u32, TableError> {
        let e = self
            .store
            .slots_mut()
            .get_mut(idx)
            .and_then(Option::as_mut)
            .ok_or(TableError::NotFound)?;
        if e.kind == Kind::Relay {
            return Ok(0);
        }
        let mtu = endpoint_mtu(path_mtu, e.family()).ok_or(TableError::PathMtu { path_mtu })?;
        e.path_mtu = path_mtu;
        e.mtu = mtu;
        Ok(mtu)
    }

    /// Records the name of the network interface of the entry in slot `idx`; false if the slot is empty.
    pub fn set_ifname(&mut self, idx: usize, name: IfName) -> bool {
        match self.store.slots_mut().get_mut(idx).and_then(Option::as_mut) {
            Some(e) => {
                e.ifname = name;
                true
            }
            None => false,
        }
    }

    /// Counters of slot `idx`.
    pub fn counters_mut(&mut self, idx: usize) -> Option<&mut Counters> {
        self.store
            .slots_mut()
            .get_mut(idx)
            .and_then(Option::as_mut)
            .map(|e| &mut e.counters)
    }

    /// Zeroes every counter (sysfs statistics reset).
    pub fn reset_counters(&mut self) {
        self.manager = Counters::ZERO;
        for e in self.store.slots_mut().iter_mut().flatten() {
            e.counters = Counters::ZERO;
        }
    }

    /// The mode slot `idx` should have given the rest of the table.
    fn mode_for(&self, idx: usize, e: &Entry) -> Mode {
        if e.kind == Kind::Relay {
            return Mode::Relay;
        }
        if self.collapse {
            let peer = self.iter().find(|(j, p)| {
                *j != idx && p.kind == Kind::Endpoint && p.id == e.id && p.local == e.remote
            });
            if let Some((peer, _)) = peer {
                return Mode::Collapsed { peer };
            }
        }
        Mode::Encapsulating
    }

    fn recompute_slot(&mut self, idx: usize) {
        let mode = match self.get(idx) {
            Some(e) => self.mode_for(idx, e),
            None => return,
        };
        if let Some(Some(e)) = self.store.slots_mut().get_mut(idx) {
            e.mode = mode;
        }
    }

    fn recompute_id(&mut self, id: ConnectorId) {
        for i in 0..self.capacity() {
            if self.get(i).is_some_and(|e| e.id == id) {
                self.recompute_slot(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules_and_set() {
        assert_eq!(IfName::new("vw7").map(|n| n.as_str() == "vw7"), Some(true));
        assert_eq!(IfName::new("vw4294967295-99").map(|n| n.as_str().len()), Some(15));
        for bad in ["", "vw4294967295-100", "a b", "a/b", "a:b", ".", "..", "v\u{e9}"] {
            assert!(IfName::new(bad).is_none(), "{bad:?}");
        }
        assert!(IfName::NONE.is_none());
        let mut t = Table::new([EMPTY_SLOT; 2]);
        assert!(!t.set_ifname(0, IfName::new("vw1").unwrap()));
        let c = super::super::cmd::parse_create(b"1 10.0.0.1 10.0.0.2", 4789).unwrap();
        let i = t.create(&c, 1500).unwrap();
        assert!(t.get(i).unwrap().ifname().is_none());
        assert!(t.set_ifname(i, IfName::new("vw1").unwrap()));
        assert_eq!(t.get(i).unwrap().ifname().as_str(), "vw1");
    }
    use core::net::{Ipv4Addr, SocketAddrV4};

    fn a(last: u8, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
    }

    fn cid(n: u32) -> ConnectorId {
        ConnectorId::new(n).unwrap()
    }

    fn ep(n: u32, local: SocketAddr, remote: SocketAddr) -> Create {
        Create {
            id: cid(n),
            kind: Kind::Endpoint,
            local,
            remote,
        }
    }

    fn table() -> Table<[Slot; 8]> {
        Table::new([EMPTY_SLOT; 8])
    }

    #[test]
    fn relays_on_a_socket_address() {
        let mut t = table();
        t.create(&ep(7, a(1, 1), a(2, 1)), 1500).unwrap();
        assert!(!t.relays_on(&a(1, 1)), "an endpoint is not a relay");
        let relay = Create { kind: Kind::Relay, ..ep(9, a(1, 2), a(3, 2)) };
        t.create(&relay, 1500).unwrap();
        assert!(t.relays_on(&a(1, 2)) && !t.relays_on(&a(1, 1)) && !t.relays_on(&a(3, 2)));
        t.destroy(cid(9), Some(&a(1, 2))).unwrap();
        assert!(!t.relays_on(&a(1, 2)));
    }

    #[test]
    fn create_find_destroy() {
        let mut t = table();
        assert!(t.is_empty());
        let i = t.create(&ep(7, a(1, 1), a(2, 1)), 1500).unwrap();
        assert_eq!(t.len(), 1);
        let e = t.get(i).unwrap();
        assert_eq!(
            (e.mode(), e.mtu(), e.path_mtu(), e.kind()),
            (Mode::Encapsulating, 1450, 1500, Kind::Endpoint)
        );
        assert_eq!(t.find(cid(7), &a(1, 1)), Some(i));
        assert_eq!(t.find(cid(7), &a(2, 1)), None);
        assert_eq!(t.find(cid(8), &a(1, 1)), None);
        let (j, gone) = t.destroy(cid(7), None).unwrap();
        assert_eq!((j, gone.remote()), (i, a(2, 1)));
        assert!(t.is_empty());
        assert_eq!(t.destroy(cid(7), None), Err(TableError::NotFound));
    }

    #[test]
    fn duplicate_and_shared_socket() {
        let mut t = table();
        t.create(&ep(7, a(1, 1), a(2, 1)), 1500).unwrap();
        assert_eq!(
            t.create(&ep(7, a(1, 1), a(3, 1)), 1500),
            Err(TableError::Exists)
        );
        let relay = Create {
            id: cid(7),
            kind: Kind::Relay,
            local: a(1, 1),
            remote: a(3, 1),
        };
        assert_eq!(t.create(&relay, 0), Err(TableError::Exists));
        // Same local address, other id: shares the socket.
        assert!(t.create(&ep(8, a(1, 1), a(2, 1)), 1500).is_ok());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn full_and_errors_change_nothing() {
        let mut t: Table<[Slot; 2]> = Table::new([EMPTY_SLOT; 2]);
        t.create(&ep(1, a(1, 1), a(2, 1)), 1500).unwrap();
        t.create(&ep(2, a(1, 1), a(2, 1)), 1500).unwrap();
        assert_eq!(
            t.create(&ep(3, a(1, 1), a(2, 1)), 1500),
            Err(TableError::Full)
        );
        assert_eq!(
            t.create(&ep(3, a(1, 1), a(2, 1)), 1500)
                .map_err(|e| e.errno()),
            Err(errno::ENOSPC)
        );
        let mut t = table();
        assert_eq!(
            t.create(&ep(1, a(1, 1), a(2, 1)), 100),
            Err(TableError::PathMtu { path_mtu: 100 })
        );
        assert_eq!(
            t.create(&ep(1, a(1, 1), a(1, 1)), 1500),
            Err(TableError::Invalid(ParseError::SameAddress))
        );
        assert_eq!(
            t.create(&ep(1, a(1, 0), a(2, 1)), 1500)
                .map_err(|e| e.errno()),
            Err(errno::EINVAL)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn collapse_both_local_then_repoint_away() {
        let mut t = table();
        // Both ends of connector 5 on this host: 10.0.0.1:1 <-> 10.0.0.1:2.
        let x = t.create(&ep(5, a(1, 1), a(1, 2)), 1500).unwrap();
        assert_eq!(t.get(x).unwrap().mode(), Mode::Encapsulating);
        let y = t.create(&ep(5, a(1, 2), a(1, 1)), 1500).unwrap();
        assert_eq!(t.get(x).unwrap().mode(), Mode::Collapsed { peer: y });
        assert_eq!(t.get(y).unwrap().mode(), Mode::Collapsed { peer: x });
        // Ambiguous without a selector.
        assert_eq!(
            t.repoint(cid(5), None, a(9, 1)),
            Err(TableError::Ambiguous { entries: 2 })
        );
        // The other end moves to host 9: y now encapsulates; x still reaches y locally.
        t.repoint(cid(5), Some(&a(1, 2)), a(9, 1)).unwrap();
        assert_eq!(t.get(y).unwrap().mode(), Mode::Encapsulating);
        assert_eq!(t.get(x).unwrap().mode(), Mode::Collapsed { peer: y });
        // y destroyed (its VM left): x encapsulates again.
        t.destroy(cid(5), Some(&a(1, 2))).unwrap();
        assert_eq!(t.get(x).unwrap().mode(), Mode::Encapsulating);
        assert_eq!(t.get(x).unwrap().mtu(), 1450);
    }

    #[test]
    fn collapse_needs_same_id_and_switch() {
        let mut t = table();
        let x = t.create(&ep(5, a(1, 1), a(1, 2)), 1500).unwrap();
        let y = t.create(&ep(6, a(1, 2), a(1, 1)), 1500).unwrap();
        assert_eq!(t.get(x).unwrap().mode(), Mode::Encapsulating);
        assert_eq!(t.get(y).unwrap().mode(), Mode::Encapsulating);
        let z = t.create(&ep(5, a(1, 2), a(1, 1)), 1500).unwrap();
        assert_eq!(t.get(x).unwrap().mode(), Mode::Collapsed { peer: z });
        t.set_collapse(false);
        assert!(!t.collapse_enabled());
        assert_eq!(t.get(x).unwrap().mode(), Mode::Encapsulating);
        assert_eq!(t.get(z).unwrap().mode(), Mode::Encapsulating);
        t.set_collapse(true);
        assert_eq!(t.get(z).unwrap().mode(), Mode::Collapsed { peer: x });
    }

    #[test]
    fn relays_never_collapse() {
        let mut t = table();
        let r = t
            .create(
                &Create {
                    id: cid(5),
                    kind: Kind::Relay,
                    local: a(1, 2),
                    remote: a(3, 1),
                },
                0,
            )
            .unwrap();
        let x = t.create(&ep(5, a(1, 1), a(1, 2)), 1500).unwrap();
        assert_eq!(t.get(r).unwrap().mode(), Mode::Relay);
        assert_eq!(t.get(r).unwrap().mtu(), 0);
        assert_eq!(t.get(x).unwrap().mode(), Mode::Encapsulating);
        assert_eq!(t.set_path_mtu(r, 1), Ok(0));
    }

    #[test]
    fn repoint_errors() {
        let mut t = table();
        let x = t.create(&ep(5, a(1, 1), a(2, 1)), 1500).unwrap();
        assert_eq!(t.repoint(cid(6), None, a(3, 1)), Err(TableError::NotFound));
        assert_eq!(
            t.repoint(cid(5), Some(&a(1, 9)), a(3, 1)),
            Err(TableError::NotFound)
        );
        assert_eq!(
            t.repoint(cid(5), None, a(1, 1)),
            Err(TableError::Invalid(ParseError::SameAddress))
        );
        let v6 = SocketAddr::new(core::net::Ipv6Addr::LOCALHOST.into(), 1);
        assert_eq!(
            t.repoint(cid(5), None, v6),
            Err(TableError::Invalid(ParseError::FamilyMismatch))
        );
        let mcast = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 1));
        assert_eq!(
            t.repoint(cid(5), None, mcast),
            Err(TableError::Invalid(ParseError::Addr {
                field: Field::Remote,
                err: super::super::addr::AddrError::Multicast
            }))
        );
        assert_eq!(t.get(x).unwrap().remote(), a(2, 1));
        assert_eq!(t.repoint(cid(5), None, a(3, 1)), Ok(x));
        assert_eq!(t.get(x).unwrap().remote(), a(3, 1));
    }

    #[test]
    fn path_mtu_and_counters() {
        let mut t = table();
        let x = t.create(&ep(5, a(1, 1), a(2, 1)), 1500).unwrap();
        assert_eq!(t.set_path_mtu(x, 9000), Ok(8950));
        assert_eq!(
            t.set_path_mtu(x, 50),
            Err(TableError::PathMtu { path_mtu: 50 })
        );
        assert_eq!(t.get(x).unwrap().mtu(), 8950);
        assert_eq!(t.set_path_mtu(7, 1500), Err(TableError::NotFound));
        t.counters_mut(x).unwrap().rx(100);
        t.manager
            .drop_frame(super::super::counters::DropReason::BadHeader);
        assert_eq!(t.get(x).unwrap().counters.rx_bytes, 100);
        t.reset_counters();
        assert_eq!(t.get(x).unwrap().counters, Counters::ZERO);
        assert_eq!(t.manager, Counters::ZERO);
        assert!(t.counters_mut(3).is_none());
    }

    /// Every error's message fits one log line: non-empty, no newline, at most 100 bytes.
    #[test]
    fn messages_fit_one_line() {
        use super::super::addr::AddrError as A;
        use super::super::header::HeaderError as H;
        use super::super::id::IdError as I;
        use super::super::status::BufWriter;
        use core::fmt::Write;
        fn check(e: &dyn fmt::Display) {
            let mut buf = [0u8; 128];
            let mut w = BufWriter::new(&mut buf);
            assert!(write!(w, "{e}").is_ok(), "message longer than 128 bytes");
            let text = w.as_bytes();
            assert!(!text.is_empty() && text.len() <= 100 && !text.contains(&b'\n'));
        }
        let addr = [
            A::Empty,
            A::TrailingGarbage,
            A::BareIpv6,
            A::BadIpv4,
            A::BadIpv6,
            A::BadPort,
            A::PortZero,
            A::BadScope,
            A::ScopeRequired,
            A::ScopeNotAllowed,
            A::FlowInfo,
            A::Unspecified,
            A::Multicast,
            A::Broadcast,
            A::V4Mapped,
        ];
        for a in addr {
            check(&a);
            check(&ParseError::Addr {
                field: Field::Local,
                err: a,
            });
            check(&TableError::Invalid(ParseError::Addr {
                field: Field::Remote,
                err: a,
            }));
        }
        for i in [
            I::Empty,
            I::NotDecimal,
            I::LeadingZero,
            I::Zero,
            I::TooLarge,
        ] {
            check(&i);
            check(&ParseError::Id(i));
        }
        let usage = super::super::cmd::CREATE_USAGE;
        for p in [
            ParseError::TooLong { len: usize::MAX },
            ParseError::Empty,
            ParseError::NotUtf8,
            ParseError::ControlChar,
            ParseError::NonAscii,
            ParseError::FieldCount {
                got: usize::MAX,
                usage,
            },
            ParseError::UnknownKeyword,
            ParseError::FamilyMismatch,
            ParseError::SameAddress,
        ] {
            check(&p);
        }
        for h in [
            H::Truncated,
            H::NoIdFlag,
            H::UnknownFlags,
            H::ReservedBits,
            H::NonCanonical,
            H::ZeroId,
            H::RuntFrame,
            H::NoRoom,
        ] {
            check(&h);
        }
        for t in [
            TableError::Exists,
            TableError::NotFound,
            TableError::Ambiguous {
                entries: usize::MAX,
            },
            TableError::Full,
            TableError::PathMtu { path_mtu: u32::MAX },
        ] {
            check(&t);
        }
    }

    #[test]
    fn slice_storage_and_errnos() {
        let mut slots = [EMPTY_SLOT; 4];
        let mut t = Table::new(&mut slots[..]);
        assert_eq!(t.capacity(), 4);
        t.create(&ep(1, a(1, 1), a(2, 1)), 1500).unwrap();
        assert_eq!(TableError::Exists.errno(), errno::EEXIST);
        assert_eq!(TableError::NotFound.errno(), errno::ENOENT);
        assert_eq!(TableError::Ambiguous { entries: 2 }.errno(), errno::EINVAL);
        assert_eq!(
            TableError::Invalid(ParseError::TooLong { len: 300 }).errno(),
            errno::E2BIG
        );
    }
}
