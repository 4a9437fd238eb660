//! Export/import of a device's page map, so a VM's swap state moves with the VM (§6.2.4: "Both the data structure
//! and the swap pages on disk must be migrated with a VM").
//!
//! Stream (all integers little endian): one header, `repo_count` repository entries (entry `i` has index `i`),
//! `record_count` page records in strictly increasing page order, and a trailer holding the CRC-32C of every byte
//! before it. Only settled records can be exported: the device must be quiesced (no I/O in flight) first, as in the
//! stop-and-copy phase of a live migration. Byte tables: Documentation/coopswap-protocol.md.
//!
//! Both directions are streaming and allocation-free: the exporter turns one item at a time into a fixed-size byte
//! array, the importer accepts input in chunks of any size and hands each item to a [`MapSink`] as soon as it is
//! complete. The sink must treat what it receives as tentative until [`MapImporter::finish`] succeeds (the checksum
//! is only known at the end), e.g. build a fresh XArray and swap it in only then.

use super::crc32c::crc32c_append;
use super::pagemap::{PageFlags, PageRecord, NO_LOCAL, NO_REPO};
use super::placement::{RepoFlags, MAX_REPOS};
use super::wire::{Capability, Rd, Wr, PAGE_SIZE};

/// Magic at the start of an export.
pub const MAP_MAGIC: [u8; 8] = *b"CSWPMAP\0";
/// Magic at the end of an export.
pub const MAP_END_MAGIC: [u8; 4] = *b"CSWE";
/// Format version.
pub const MAP_VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 48;
/// Repository entry length.
pub const REPO_ENTRY_LEN: usize = 56;
/// Page record length.
pub const RECORD_LEN: usize = 24;
/// Trailer length.
pub const TRAILER_LEN: usize = 8;

/// Export header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapHeader {
    /// Device size in pages; every record's page is below it.
    pub device_pages: u64,
    /// Number of repository entries that follow.
    pub repo_count: u16,
    /// Number of page records that follow.
    pub record_count: u64,
    /// Placement seed of the device.
    pub seed: u64,
}

/// Network address of a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoAddr {
    /// 4 (IPv4, first 4 bytes of `ip`, the rest zero) or 6 (IPv6).
    pub family: u8,
    /// Address bytes in network order.
    pub ip: [u8; 16],
    /// TCP port, not 0.
    pub port: u16,
}

impl RepoAddr {
    /// Parses `A.B.C.D:PORT` or `[IPV6]:PORT` (port 1 … 65535), as written to a device's `repos` file. `None` for
    /// anything else (a host name, a missing or zero port, an IPv6 address without brackets, a scope id).
    pub fn parse(s: &str) -> Option<Self> {
        let sa: core::net::SocketAddr = s.parse().ok()?;
        // A scope id (`%eth0`) would need an interface to connect through: not supported.
        let scoped = matches!(sa, core::net::SocketAddr::V6(v6) if v6.scope_id() != 0);
        if sa.port() == 0 || scoped {
            return None;
        }
        Some(Self::from(sa))
    }

    /// The address as a socket address.
    pub fn socket_addr(&self) -> core::net::SocketAddr {
        let ip = self.ip;
        if self.family == 6 {
            core::net::SocketAddr::new(core::net::IpAddr::V6(core::net::Ipv6Addr::from(ip)), self.port)
        } else {
            let v4 = [ip[0], ip[1], ip[2], ip[3]];
            core::net::SocketAddr::new(core::net::IpAddr::V4(core::net::Ipv4Addr::from(v4)), self.port)
        }
    }

    /// The repository's stable id for placement: a hash of address and port, the same on every host. For IPv4 it is
    /// the id earlier versions used (placement of existing maps does not change).
    pub fn id(&self) -> u64 {
        let ip = self.ip;
        if self.family == 6 {
            let hi = u64::from_be_bytes([ip[0], ip[1], ip[2], ip[3], ip[4], ip[5], ip[6], ip[7]]);
            let lo = u64::from_be_bytes([ip[8], ip[9], ip[10], ip[11], ip[12], ip[13], ip[14], ip[15]]);
            super::placement::mix64(super::placement::mix64(hi ^ u64::from(self.port)) ^ lo)
        } else {
            let v4 = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
            super::placement::mix64((u64::from(v4) << 16) | u64::from(self.port))
        }
    }
}

impl From<core::net::SocketAddr> for RepoAddr {
    fn from(sa: core::net::SocketAddr) -> Self {
        let mut ip = [0u8; 16];
        match sa.ip() {
            core::net::IpAddr::V4(v4) => {
                if let Some(d) = ip.get_mut(..4) {
                    d.copy_from_slice(&v4.octets());
                }
                RepoAddr { family: 4, ip, port: sa.port() }
            }
            core::net::IpAddr::V6(v6) => RepoAddr { family: 6, ip: v6.octets(), port: sa.port() },
        }
    }
}

impl core::fmt::Display for RepoAddr {
    /// `A.B.C.D:PORT` or `[IPV6]:PORT`, the syntax [`RepoAddr::parse`] reads.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.socket_addr(), f)
    }
}

/// A repository of the device: where it is and how the device authenticates to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoEntry {
    /// Index in the device's repository table (records refer to it).
    pub index: u16,
    /// State at export time (informational; the importing host probes again).
    pub flags: RepoFlags,
    /// Address.
    pub addr: RepoAddr,
    /// Capability token.
    pub cap: Capability,
    /// Client id sent in HELLO.
    pub client_id: u64,
    /// Stable repository id used by placement.
    pub repo_id: u64,
}

/// Export/import failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The stream ended early.
    Truncated,
    /// Not a page-map stream.
    BadMagic,
    /// Unsupported format version.
    BadVersion(u16),
    /// Header fields (lengths, page size, counts, reserved) invalid.
    BadHeader,
    /// Repository entry invalid (index out of sequence, bad family/port, unknown flags).
    BadRepo(u16),
    /// Page record invalid (page out of range, unknown or in-flight flags, dangling repository or local slot).
    BadRecord(u64),
    /// Page records not in strictly increasing page order (or duplicated).
    Unordered(u64),
    /// More or fewer items than the header announced.
    CountMismatch,
    /// Trailer checksum mismatch.
    BadChecksum,
    /// Bytes after the trailer.
    TrailingData,
    /// Export of a record with I/O in flight: quiesce the device first.
    InFlight(u64),
}

impl MapError {
    /// errno for the kernel's sysfs/configfs handler.
    pub fn errno(&self) -> i32 {
        match self {
            MapError::InFlight(_) => 16, // EBUSY
            _ => 22,                     // EINVAL
        }
    }
}

fn write_header(h: &MapHeader, out: &mut [u8; HEADER_LEN]) {
    let mut w = Wr(out);
    w.arr(MAP_MAGIC);
    w.u16(MAP_VERSION);
    w.u16(HEADER_LEN as u16);
    w.u16(REPO_ENTRY_LEN as u16);
    w.u16(RECORD_LEN as u16);
    w.u32(PAGE_SIZE as u32);
    w.u16(h.repo_count);
    w.u16(0);
    w.u64(h.device_pages);
    w.u64(h.record_count);
    w.u64(h.seed);
}

fn parse_header(b: &[u8; HEADER_LEN]) -> Result<MapHeader, MapError> {
    let mut r = Rd(b);
    if r.arr::<8>() != MAP_MAGIC {
        return Err(MapError::BadMagic);
    }
    let version = r.u16();
    if version != MAP_VERSION {
        return Err(MapError::BadVersion(version));
    }
    let (hl, rl, cl, ps) = (r.u16(), r.u16(), r.u16(), r.u32());
    let repo_count = r.u16();
    let reserved = r.u16();
    let h = MapHeader {
        repo_count,
        device_pages: r.u64(),
        record_count: r.u64(),
        seed: r.u64(),
    };
    if usize::from(hl) != HEADER_LEN
        || usize::from(rl) != REPO_ENTRY_LEN
        || usize::from(cl) != RECORD_LEN
        || ps as usize != PAGE_SIZE
        || reserved != 0
        || usize::from(repo_count) > MAX_REPOS
        || h.record_count > h.device_pages
    {
        return Err(MapError::BadHeader);
    }
    Ok(h)
}

fn check_header(h: &MapHeader) -> Result<(), MapError> {
    if usize::from(h.repo_count) > MAX_REPOS || h.record_count > h.device_pages {
        return Err(MapError::BadHeader);
    }
    Ok(())
}

fn check_repo(e: &RepoEntry, expect_index: u16) -> Result<(), MapError> {
    let bad = e.index != expect_index
        || e.flags.0 & !RepoFlags::ALL != 0
        || e.addr.port == 0
        || match e.addr.family {
            4 => e.addr.ip.iter().skip(4).any(|&b| b != 0),
            6 => false,
            _ => true,
        };
    if bad {
        Err(MapError::BadRepo(expect_index))
    } else {
        Ok(())
    }
}

fn write_repo(e: &RepoEntry, out: &mut [u8; REPO_ENTRY_LEN]) {
    let mut w = Wr(out);
    w.u16(e.index);
    w.u16(e.flags.0);
    w.u16(e.addr.port);
    w.u8(e.addr.family);
    w.u8(0);
    w.arr(e.addr.ip);
    w.arr(e.cap.0);
    w.u64(e.client_id);
    w.u64(e.repo_id);
}

fn parse_repo(b: &[u8; REPO_ENTRY_LEN], expect_index: u16) -> Result<RepoEntry, MapError> {
    let mut r = Rd(b);
    let index = r.u16();
    let flags = RepoFlags(r.u16());
    let port = r.u16();
    let family = r.u8();
    let reserved = r.u8();
    let e = RepoEntry {
        index,
        flags,
        addr: RepoAddr {
            family,
            ip: r.arr(),
            port,
        },
        cap: Capability(r.arr()),
        client_id: r.u64(),
        repo_id: r.u64(),
    };
    if reserved != 0 {
        return Err(MapError::BadRepo(expect_index));
    }
    check_repo(&e, expect_index)?;
    Ok(e)
}

/// Check a record against the header and the previous page; used by both directions.
fn check_record(h: &MapHeader, r: &PageRecord, last: Option<u64>) -> Result<(), MapError> {
    if last.is_some_and(|l| r.page <= l) {
        return Err(MapError::Unordered(r.page));
    }
    let f = r.flags;
    let bad = r.page >= h.device_pages
        || f.0 & !PageFlags::SETTLED != 0
        || !f.has(PageFlags::WRITTEN)
        || (r.repo != NO_REPO && r.repo >= h.repo_count)
        || (f.has(PageFlags::REMOTE_VALID) && r.repo == NO_REPO)
        || (f.has(PageFlags::LOCAL_VALID) && r.local == NO_LOCAL);
    if bad {
        Err(MapError::BadRecord(r.page))
    } else {
        Ok(())
    }
}

fn write_record(r: &PageRecord, out: &mut [u8; RECORD_LEN]) {
    let mut w = Wr(out);
    w.u64(r.page);
    w.u64(r.local);
    w.u16(r.repo);
    w.u16(r.flags.0);
    w.u32(r.crc);
}

fn parse_record(b: &[u8; RECORD_LEN]) -> PageRecord {
    let mut rd = Rd(b);
    let page = rd.u64();
    let local = rd.u64();
    let repo = rd.u16();
    let flags = PageFlags(rd.u16());
    let crc = rd.u32();
    PageRecord {
        page,
        local,
        repo,
        flags,
        crc,
        seq: 0,
    }
}

/// Streaming exporter. Call [`MapExporter::new`], then [`MapExporter::repo`] `repo_count` times, then
/// [`MapExporter::record`] `record_count` times (increasing page order), then [`MapExporter::finish`]; write the bytes
/// each call produces, in order.
#[derive(Debug)]
pub struct MapExporter {
    header: MapHeader,
    crc: u32,
    repos: u16,
    records: u64,
    last: Option<u64>,
}

impl MapExporter {
    /// Start an export; writes the header into `out`.
    pub fn new(header: &MapHeader, out: &mut [u8; HEADER_LEN]) -> Result<Self, MapError> {
        check_header(header)?;
        write_header(header, out);
        Ok(MapExporter {
            header: *header,
            crc: crc32c_append(0, out),
            repos: 0,
            records: 0,
            last: None,
        })
    }

    /// Export the next repository entry (its `index` must be the number of entries exported so far).
    pub fn repo(&mut self, e: &RepoEntry, out: &mut [u8; REPO_ENTRY_LEN]) -> Result<(), MapError> {
        if self.repos >= self.header.repo_count || self.records != 0 {
            return Err(MapError::CountMismatch);
        }
        check_repo(e, self.repos)?;
        write_repo(e, out);
        self.crc = crc32c_append(self.crc, out);
        self.repos = self.repos.saturating_add(1);
        Ok(())
    }

    /// Export the next page record. Records with I/O in flight are refused ([`MapError::InFlight`]).
    pub fn record(&mut self, r: &PageRecord, out: &mut [u8; RECORD_LEN]) -> Result<(), MapError> {
        if self.repos != self.header.repo_count || self.records >= self.header.record_count {
            return Err(MapError::CountMismatch);
        }
        if r.in_flight() {
            return Err(MapError::InFlight(r.page));
        }
        check_record(&self.header, r, self.last)?;
        write_record(r, out);
        self.crc = crc32c_append(self.crc, out);
        self.records = self.records.saturating_add(1);
        self.last = Some(r.page);
        Ok(())
    }

    /// End the export; writes the trailer into `out`.
    pub fn finish(self, out: &mut [u8; TRAILER_LEN]) -> Result<(), MapError> {
        if self.repos != self.header.repo_count || self.records != self.header.record_count {
            return Err(MapError::CountMismatch);
        }
        let mut w = Wr(out);
        w.u32(self.crc);
        w.arr(MAP_END_MAGIC);
        Ok(())
    }
}

/// Receiver of imported items.
pub trait MapSink {
    /// Error of the sink (e.g. out of memory).
    type Error;
    /// The header, first.
    fn header(&mut self, h: &MapHeader) -> Result<(), Self::Error>;
    /// Each repository entry, in index order.
    fn repo(&mut self, e: &RepoEntry) -> Result<(), Self::Error>;
    /// Each page record, in page order (`seq` is 0).
    fn record(&mut self, r: &PageRecord) -> Result<(), Self::Error>;
}

/// Import failure: the stream is bad, or the sink refused an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportError<E> {
    /// Malformed stream.
    Map(MapError),
    /// The sink returned an error.
    Sink(E),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Header,
    Repos,
    Records,
    Trailer,
    Done,
    Failed(MapError),
}

/// Streaming importer; feed it the bytes of an export in chunks of any size, then call [`MapImporter::finish`].
#[derive(Debug)]
pub struct MapImporter {
    stage: Stage,
    buf: [u8; REPO_ENTRY_LEN],
    have: usize,
    crc: u32,
    header: MapHeader,
    repos: u16,
    records: u64,
    last: Option<u64>,
}

impl Default for MapImporter {
    fn default() -> Self {
        Self::new()
    }
}

impl MapImporter {
    /// A new importer expecting a header.
    pub const fn new() -> Self {
        MapImporter {
            stage: Stage::Header,
            buf: [0; REPO_ENTRY_LEN],
            have: 0,
            crc: 0,
            header: MapHeader {
                device_pages: 0,
                repo_count: 0,
                record_count: 0,
                seed: 0,
            },
            repos: 0,
            records: 0,
            last: None,
        }
    }

    fn unit_len(&self) -> usize {
        match self.stage {
            Stage::Header => HEADER_LEN,
            Stage::Repos => REPO_ENTRY_LEN,
            Stage::Records => RECORD_LEN,
            Stage::Trailer => TRAILER_LEN,
            Stage::Done | Stage::Failed(_) => 0,
        }
    }

    /// Stage after the header or a repository entry.
    fn after_repos(&self) -> Stage {
        if self.repos < self.header.repo_count {
            Stage::Repos
        } else if self.records < self.header.record_count {
            Stage::Records
        } else {
            Stage::Trailer
        }
    }

    /// Feed the next chunk of the stream.
    pub fn feed<S: MapSink>(
        &mut self,
        mut data: &[u8],
        sink: &mut S,
    ) -> Result<(), ImportError<S::Error>> {
        while !data.is_empty() {
            match self.stage {
                Stage::Failed(e) => return Err(ImportError::Map(e)),
                Stage::Done => return Err(self.fail(MapError::TrailingData)),
                _ => {}
            }
            let need = self.unit_len();
            let take = need.saturating_sub(self.have).min(data.len());
            let end = self.have.saturating_add(take);
            if let (Some(dst), Some(src)) = (self.buf.get_mut(self.have..end), data.get(..take)) {
                // Element-wise: the lengths are equal, but `copy_from_slice` would keep a length-mismatch panic path
                // in the kernel build (objtool flags its noreturn call).
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s;
                }
            }
            self.have = end;
            data = data.get(take..).unwrap_or(&[]);
            if self.have == need {
                self.have = 0;
                self.unit(sink)?;
            }
        }
        Ok(())
    }

    fn fail<E>(&mut self, e: MapError) -> ImportError<E> {
        self.stage = Stage::Failed(e);
        ImportError::Map(e)
    }

    /// Process one complete unit in `self.buf`.
    fn unit<S: MapSink>(&mut self, sink: &mut S) -> Result<(), ImportError<S::Error>> {
        let mut hb = [0u8; HEADER_LEN];
        let mut eb = [0u8; REPO_ENTRY_LEN];
        let mut rb = [0u8; RECORD_LEN];
        let mut tb = [0u8; TRAILER_LEN];
        match self.stage {
            Stage::Header => {
                fill(&mut hb, &self.buf);
                let h = parse_header(&hb).map_err(|e| self.fail(e))?;
                self.crc = crc32c_append(0, &hb);
                self.header = h;
                sink.header(&h).map_err(ImportError::Sink)?;
                self.stage = self.after_repos();
            }
            Stage::Repos => {
                fill(&mut eb, &self.buf);
                let e = parse_repo(&eb, self.repos).map_err(|e| self.fail(e))?;
                self.crc = crc32c_append(self.crc, &eb);
                sink.repo(&e).map_err(ImportError::Sink)?;
                self.repos = self.repos.saturating_add(1);
                self.stage = self.after_repos();
            }
            Stage::Records => {
                fill(&mut rb, &self.buf);
                let r = parse_record(&rb);
                check_record(&self.header, &r, self.last).map_err(|e| self.fail(e))?;
                self.crc = crc32c_append(self.crc, &rb);
                sink.record(&r).map_err(ImportError::Sink)?;
                self.records = self.records.saturating_add(1);
                self.last = Some(r.page);
                self.stage = self.after_repos();
            }
            Stage::Trailer => {
                fill(&mut tb, &self.buf);
                let mut rd = Rd(&tb);
                let crc = rd.u32();
                if rd.arr::<4>() != MAP_END_MAGIC {
                    return Err(self.fail(MapError::BadMagic));
                }
                if crc != self.crc {
                    return Err(self.fail(MapError::BadChecksum));
                }
                self.stage = Stage::Done;
            }
            Stage::Done | Stage::Failed(_) => {}
        }
        Ok(())
    }

    /// Whether the whole stream was received and verified.
    pub fn finish(&self) -> Result<(), MapError> {
        match self.stage {
            Stage::Done => Ok(()),
            Stage::Failed(e) => Err(e),
            _ => Err(MapError::Truncated),
        }
    }
}

/// Copy the first `N` bytes of `src` into `dst`.
fn fill<const N: usize>(dst: &mut [u8; N], src: &[u8]) {
    if let Some(s) = src.get(..N) {
        dst.copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[derive(Default)]
    struct Collect {
        header: Option<MapHeader>,
        repos: Vec<RepoEntry>,
        records: Vec<PageRecord>,
    }

    impl MapSink for Collect {
        type Error = ();
        fn header(&mut self, h: &MapHeader) -> Result<(), ()> {
            self.header = Some(*h);
            Ok(())
        }
        fn repo(&mut self, e: &RepoEntry) -> Result<(), ()> {
            self.repos.push(*e);
            Ok(())
        }
        fn record(&mut self, r: &PageRecord) -> Result<(), ()> {
            self.records.push(*r);
            Ok(())
        }
    }

    fn sample() -> (MapHeader, Vec<RepoEntry>, Vec<PageRecord>) {
        let repos = std::vec![RepoEntry {
            index: 0,
            flags: RepoFlags(RepoFlags::UP),
            addr: RepoAddr {
                family: 4,
                ip: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                port: 7400
            },
            cap: Capability([5; 16]),
            client_id: 3,
            repo_id: 77,
        }];
        let records = std::vec![
            PageRecord {
                page: 1,
                local: 1,
                repo: 0,
                flags: PageFlags(
                    PageFlags::WRITTEN | PageFlags::REMOTE_VALID | PageFlags::LOCAL_VALID
                ),
                crc: 9,
                seq: 0
            },
            PageRecord {
                page: 8,
                local: 8,
                repo: NO_REPO,
                flags: PageFlags(PageFlags::WRITTEN | PageFlags::LOCAL_VALID),
                crc: 1,
                seq: 0
            },
        ];
        (
            MapHeader {
                device_pages: 16,
                repo_count: 1,
                record_count: 2,
                seed: 42,
            },
            repos,
            records,
        )
    }

    fn export(
        h: &MapHeader,
        repos: &[RepoEntry],
        records: &[PageRecord],
    ) -> Result<Vec<u8>, MapError> {
        let mut out = Vec::new();
        let mut hb = [0u8; HEADER_LEN];
        let mut ex = MapExporter::new(h, &mut hb)?;
        out.extend_from_slice(&hb);
        for e in repos {
            let mut b = [0u8; REPO_ENTRY_LEN];
            ex.repo(e, &mut b)?;
            out.extend_from_slice(&b);
        }
        for r in records {
            let mut b = [0u8; RECORD_LEN];
            ex.record(r, &mut b)?;
            out.extend_from_slice(&b);
        }
        let mut t = [0u8; TRAILER_LEN];
        ex.finish(&mut t)?;
        out.extend_from_slice(&t);
        Ok(out)
    }

    #[test]
    fn roundtrip_byte_by_byte() {
        let (h, repos, records) = sample();
        let bytes = export(&h, &repos, &records).unwrap();
        assert_eq!(
            bytes.len(),
            HEADER_LEN + REPO_ENTRY_LEN + 2 * RECORD_LEN + TRAILER_LEN
        );
        assert_eq!(&bytes[..8], b"CSWPMAP\0");
        let mut imp = MapImporter::new();
        let mut sink = Collect::default();
        for b in &bytes {
            imp.feed(core::slice::from_ref(b), &mut sink).unwrap();
        }
        imp.finish().unwrap();
        assert_eq!(sink.header, Some(h));
        assert_eq!(sink.repos, repos);
        assert_eq!(sink.records, records);
        // anything after the trailer is refused
        assert_eq!(
            imp.feed(&[0], &mut sink),
            Err(ImportError::Map(MapError::TrailingData))
        );
    }

    #[test]
    fn corruption_and_truncation_detected() {
        let (h, repos, records) = sample();
        let bytes = export(&h, &repos, &records).unwrap();
        let mut imp = MapImporter::new();
        imp.feed(&bytes[..bytes.len() - 1], &mut Collect::default())
            .unwrap();
        assert_eq!(imp.finish(), Err(MapError::Truncated));
        // flip the crc field of the first record (passes record checks, fails the checksum)
        let mut bad = bytes.clone();
        bad[HEADER_LEN + REPO_ENTRY_LEN + 20] ^= 0x40;
        let mut imp = MapImporter::new();
        assert_eq!(
            imp.feed(&bad, &mut Collect::default()),
            Err(ImportError::Map(MapError::BadChecksum))
        );
        assert_eq!(imp.finish(), Err(MapError::BadChecksum));
    }

    #[test]
    fn exporter_refuses_bad_input() {
        let (h, repos, mut records) = sample();
        records[1].flags.0 |= PageFlags::LOCAL_INFLIGHT;
        assert_eq!(export(&h, &repos, &records), Err(MapError::InFlight(8)));
        let (h, repos, mut records) = sample();
        records.swap(0, 1);
        assert_eq!(export(&h, &repos, &records), Err(MapError::Unordered(1)));
        let (h, repos, mut records) = sample();
        records[0].repo = 1;
        assert_eq!(export(&h, &repos, &records), Err(MapError::BadRecord(1)));
        let (h, repos, records) = sample();
        assert_eq!(
            export(&h, &repos, &records[..1]),
            Err(MapError::CountMismatch)
        );
        let (mut h, repos, records) = sample();
        h.device_pages = 8;
        assert_eq!(export(&h, &repos, &records), Err(MapError::BadRecord(8)));
    }

    #[test]
    fn repository_addresses() {
        extern crate std;
        use std::string::ToString;
        let a = RepoAddr::parse("10.1.2.3:7400").unwrap();
        assert_eq!((a.family, &a.ip[..4], a.port), (4, &[10u8, 1, 2, 3][..], 7400));
        assert_eq!(a.to_string(), "10.1.2.3:7400");
        let b = RepoAddr::parse("[fd00::2]:9400").unwrap();
        assert_eq!((b.family, b.port), (6, 9400));
        assert_eq!(b.to_string(), "[fd00::2]:9400");
        assert_eq!(RepoAddr::parse(&b.to_string()), Some(b));
        for bad in ["", "10.1.2.3", "10.1.2.3:0", "10.1.2.3:65536", "fd00::2:9400", "[fd00::2]", "[fd00::2]:0",
            "host:7400", "10.1.2:7400", "10.1.2.3:74x", " 10.1.2.3:7400", "[fe80::1%2]:7400", "1.2.3.256:1"] {
            assert_eq!(RepoAddr::parse(bad), None, "{bad}");
        }
        // Ids: stable, and different for different addresses, ports and families.
        assert_eq!(a.id(), RepoAddr::parse("10.1.2.3:7400").unwrap().id());
        assert_eq!(a.id(), crate::placement::mix64((0x0a01_0203u64 << 16) | 7400));
        assert_ne!(a.id(), RepoAddr::parse("10.1.2.3:7401").unwrap().id());
        assert_ne!(b.id(), RepoAddr::parse("[fd00::3]:9400").unwrap().id());
        assert_ne!(b.id(), RepoAddr::parse("[fd00::2]:9401").unwrap().id());
        assert_ne!(RepoAddr::parse("[::ffff:10.1.2.3]:7400").unwrap().id(), a.id());
    }
}
