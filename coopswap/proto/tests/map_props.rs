//! Property tests of the page map: export/import round trip, corruption detection, placement eligibility, and a
//! model check of the write-through record (a read is never planned from a copy that lacks the latest content).

use coopswap_proto::mapfile::*;
use coopswap_proto::pagemap::*;
use coopswap_proto::placement::*;
use coopswap_proto::wire::Capability;
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Default, Debug, PartialEq)]
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

fn map_strategy() -> impl Strategy<Value = (MapHeader, Vec<RepoEntry>, Vec<PageRecord>)> {
    let repos = prop::collection::vec(
        (
            any::<bool>(),
            any::<[u8; 16]>(),
            1u16..,
            any::<[u8; 16]>(),
            any::<u64>(),
            any::<u64>(),
            0u16..16,
        ),
        0..6,
    );
    let pages = prop::collection::btree_map(
        0u64..10_000,
        (any::<u64>(), any::<u16>(), 0u16..8, any::<u32>()),
        0..200,
    );
    (repos, pages, any::<u64>()).prop_map(|(repos, pages, seed)| {
        let repos: Vec<RepoEntry> = repos
            .into_iter()
            .enumerate()
            .map(|(i, (v6, mut ip, port, cap, client_id, repo_id, flags))| {
                if !v6 {
                    ip[4..].fill(0);
                }
                RepoEntry {
                    index: i as u16,
                    flags: RepoFlags(flags),
                    addr: RepoAddr {
                        family: if v6 { 6 } else { 4 },
                        ip,
                        port,
                    },
                    cap: Capability(cap),
                    client_id,
                    repo_id,
                }
            })
            .collect();
        let n = repos.len() as u16;
        let records: Vec<PageRecord> = pages
            .into_iter()
            .map(|(page, (local, repo, bits, crc))| {
                let mut flags = PageFlags::WRITTEN;
                let repo = if n > 0 && repo % 3 != 0 {
                    repo % n
                } else {
                    NO_REPO
                };
                if bits & 1 != 0 && repo != NO_REPO {
                    flags |= PageFlags::REMOTE_VALID;
                }
                let local = if bits & 2 != 0 {
                    local % 10_000
                } else {
                    NO_LOCAL
                };
                if bits & 4 != 0 && local != NO_LOCAL {
                    flags |= PageFlags::LOCAL_VALID;
                }
                PageRecord {
                    page,
                    local,
                    repo,
                    flags: PageFlags(flags),
                    crc,
                    seq: 0,
                }
            })
            .collect();
        let h = MapHeader {
            device_pages: 10_000,
            repo_count: n,
            record_count: records.len() as u64,
            seed,
        };
        (h, repos, records)
    })
}

fn export(h: &MapHeader, repos: &[RepoEntry], records: &[PageRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut hb = [0u8; HEADER_LEN];
    let mut ex = MapExporter::new(h, &mut hb).unwrap();
    out.extend_from_slice(&hb);
    for e in repos {
        let mut b = [0u8; REPO_ENTRY_LEN];
        ex.repo(e, &mut b).unwrap();
        out.extend_from_slice(&b);
    }
    for r in records {
        let mut b = [0u8; RECORD_LEN];
        ex.record(r, &mut b).unwrap();
        out.extend_from_slice(&b);
    }
    let mut t = [0u8; TRAILER_LEN];
    ex.finish(&mut t).unwrap();
    out.extend_from_slice(&t);
    out
}

fn import(bytes: &[u8], chunk: usize) -> (Result<(), MapError>, Collect) {
    let mut imp = MapImporter::new();
    let mut sink = Collect::default();
    for c in bytes.chunks(chunk.max(1)) {
        if let Err(e) = imp.feed(c, &mut sink) {
            let ImportError::Map(e) = e else {
                unreachable!()
            };
            return (Err(e), sink);
        }
    }
    (imp.finish(), sink)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn export_import_roundtrip((h, repos, records) in map_strategy(), chunk in 1usize..200) {
        let bytes = export(&h, &repos, &records);
        prop_assert_eq!(bytes.len(), HEADER_LEN + repos.len() * REPO_ENTRY_LEN + records.len() * RECORD_LEN + TRAILER_LEN);
        let (res, sink) = import(&bytes, chunk);
        prop_assert_eq!(res, Ok(()));
        prop_assert_eq!(sink, Collect { header: Some(h), repos, records });
    }

    #[test]
    fn any_single_bit_flip_is_rejected((h, repos, records) in map_strategy(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = export(&h, &repos, &records);
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let (res, _) = import(&bytes, 64);
        prop_assert!(res.is_err(), "flip at {} bit {} accepted", i, bit);
    }

    #[test]
    fn truncation_is_rejected((h, repos, records) in map_strategy(), cut in any::<prop::sample::Index>()) {
        let bytes = export(&h, &repos, &records);
        let n = cut.index(bytes.len());
        let (res, _) = import(&bytes[..n], 17);
        prop_assert!(res.is_err());
    }

    #[test]
    fn importer_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let _ = import(&bytes, chunk);
        // garbage behind a valid header too
        let mut hb = [0u8; HEADER_LEN];
        MapExporter::new(&MapHeader { device_pages: 100, repo_count: 1, record_count: 3, seed: 0 }, &mut hb).unwrap();
        let mut s = hb.to_vec();
        s.extend_from_slice(&bytes);
        prop_assert!(import(&s, chunk).0.is_err());
    }

    #[test]
    fn placement_only_picks_eligible(
        flags in prop::collection::vec(0u16..16, 0..70),
        ids in prop::collection::vec(any::<u64>(), 70),
        page in any::<u64>(), seed in any::<u64>(), avoid in any::<u64>(),
    ) {
        let repos: Vec<RepoInfo> = flags.iter().zip(ids.iter()).map(|(&f, &id)| RepoInfo::new(id, f)).collect();
        let eligible = |i: usize| i < MAX_REPOS && repos[i].can_store() && avoid & (1u64 << i) == 0;
        match place(seed, page, &repos, avoid) {
            Some(i) => {
                let i = usize::from(i);
                prop_assert!(eligible(i));
                prop_assert_eq!(repos[i].flags.0 & (RepoFlags::FULL | RepoFlags::DEAD | RepoFlags::DRAINING), 0);
                // and it is the best-scoring eligible one
                for j in (0..repos.len()).filter(|&j| eligible(j)) {
                    prop_assert!(score(seed, page, repos[j].id) <= score(seed, page, repos[i].id));
                }
            }
            None => prop_assert!(!(0..repos.len()).any(eligible)),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Model check of one page record under write-through with reordered, failing and stale completions.

#[derive(Debug, Clone)]
enum Op {
    Write { repo: Option<u16>, local: bool },
    Complete { target: usize, outcome: u8 },
    Discard,
    RepoGone(u16),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::option::of(0u16..3), any::<bool>()).prop_map(|(repo, local)| Op::Write { repo, local }),
        6 => (0usize..4, 0u8..4).prop_map(|(target, outcome)| Op::Complete { target, outcome }),
        1 => Just(Op::Discard),
        1 => (0u16..3).prop_map(Op::RepoGone),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u32,
    version: u32,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn record_never_plans_a_stale_read(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let repos = [RepoInfo::new(1, RepoFlags::UP), RepoInfo::new(2, RepoFlags::UP), RepoInfo::new(3, RepoFlags::UP)];
        let mut rec = PageRecord::new(9);
        // content held by each target (repos 0..3, local = 3), as a version number; FIFO queues of issued I/O
        let mut content: [Option<u32>; 4] = [None; 4];
        let mut queues: [VecDeque<Pending>; 4] = Default::default();
        let mut latest: Option<u32> = None; // None = never written or discarded
        let mut version = 0u32;
        for op in ops {
            match op {
                Op::Write { repo, local } => {
                    version += 1;
                    let w = rec.begin_write(version, repo, if local { Some(9) } else { None });
                    latest = Some(version);
                    if let Some(r) = w.store_to { queues[usize::from(r)].push_back(Pending { seq: w.seq, version }); }
                    if w.local_to.is_some() { queues[3].push_back(Pending { seq: w.seq, version }); }
                }
                Op::Complete { target, outcome } => {
                    if let Some(p) = queues[target].pop_front() {
                        if target == 3 {
                            let ok = outcome != 0;
                            if ok { content[3] = Some(p.version); }
                            rec.complete_local(p.seq, ok);
                        } else {
                            // 0: FULL (not stored); 1: failed before storing; 2: failed after storing; 3: stored
                            if outcome >= 2 { content[target] = Some(p.version); }
                            let o = match outcome { 0 => StoreOutcome::Full, 3 => StoreOutcome::Stored, _ => StoreOutcome::Failed };
                            rec.complete_remote(p.seq, o);
                        }
                    }
                }
                Op::Discard => {
                    rec.discard();
                    latest = None;
                }
                Op::RepoGone(r) => {
                    let r = usize::from(r);
                    content[r] = None;
                    // the connection dies: everything queued there completes as failed
                    while let Some(p) = queues[r].pop_front() { rec.complete_remote(p.seq, StoreOutcome::Failed); }
                    rec.repo_gone(r as u16);
                }
            }
            let pending_current = queues.iter().any(|q| q.iter().any(|p| p.seq == rec.seq));
            match rec.read_plan(&repos) {
                ReadPlan::Unmapped => prop_assert_eq!(latest, None),
                ReadPlan::Remote { repo, crc, fallback } => {
                    prop_assert_eq!(content[usize::from(repo)], latest);
                    prop_assert_eq!(Some(crc), latest);
                    if fallback.is_some() { prop_assert_eq!(content[3], latest); }
                }
                ReadPlan::Local { .. } => prop_assert_eq!(content[3], latest),
                ReadPlan::Wait => prop_assert!(pending_current),
                ReadPlan::Lost => prop_assert!(!pending_current && latest.is_some()),
            }
        }
    }
}
