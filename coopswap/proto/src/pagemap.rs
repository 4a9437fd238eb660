//! The page map of §6.2.4: one record per swap page that has been written, saying which repository holds it, where
//! the local write-through copy is, and what is known about both copies.
//!
//! The dissertation keeps "a per-VM hash table, indexed by the sector number of the virtual swap device. Each entry
//! includes the address of the page repository the page is stored at, a capability to access the page, and the
//! location of the page on disk." Here the repository (address + capability) is an index into the device's repository
//! table (see [`super::placement`] and [`super::mapfile`]), so a record is small and fixed-size. The kernel keeps the
//! records in an XArray keyed by page index (sector / 8); this module only has the record and its transitions.
//!
//! Write-through (§6.2.4): every write goes to the local store *and* (if a repository was placed) to the network.
//! Reads prefer the repository, fall back to the local copy. A write bumps the record's sequence number, so a
//! completion that arrives for an older write of the same page is recognised as stale and ignored, and a page is never
//! served from a copy that does not hold its latest content. The CRC-32C of the latest content is kept, so a page
//! returned by a repository is checked against what was written.

use super::placement::RepoInfo;

/// `repo` value of a record with no repository.
pub const NO_REPO: u16 = u16::MAX;
/// `local` value of a record with no local copy.
pub const NO_LOCAL: u64 = u64::MAX;

/// State bits of a page record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageFlags(pub u16);

impl PageFlags {
    /// The repository acknowledged the current content.
    pub const REMOTE_VALID: u16 = 1 << 0;
    /// The local store holds the current content (write completed).
    pub const LOCAL_VALID: u16 = 1 << 1;
    /// A STORE of the current content is in flight.
    pub const REMOTE_INFLIGHT: u16 = 1 << 2;
    /// A local write of the current content is in flight.
    pub const LOCAL_INFLIGHT: u16 = 1 << 3;
    /// The page has been written (and not discarded since). Set even when no copy could be made, so such a page reads
    /// as an I/O error, never as zeroes.
    pub const WRITTEN: u16 = 1 << 4;
    /// All defined bits.
    pub const ALL: u16 = Self::REMOTE_VALID
        | Self::LOCAL_VALID
        | Self::REMOTE_INFLIGHT
        | Self::LOCAL_INFLIGHT
        | Self::WRITTEN;
    /// Bits that may appear in an exported map (no I/O in flight).
    pub const SETTLED: u16 = Self::REMOTE_VALID | Self::LOCAL_VALID | Self::WRITTEN;

    /// Whether all bits of `bits` are set.
    pub fn has(self, bits: u16) -> bool {
        self.0 & bits == bits
    }
    /// Whether any bit of `bits` is set.
    pub fn any(self, bits: u16) -> bool {
        self.0 & bits != 0
    }
    fn set(&mut self, bits: u16) {
        self.0 |= bits;
    }
    fn clear(&mut self, bits: u16) {
        self.0 &= !bits;
    }
}

/// One page of a cooperative-swap device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRecord {
    /// Page index on the device (sector / 8).
    pub page: u64,
    /// Slot of the write-through copy in the local store, or [`NO_LOCAL`].
    pub local: u64,
    /// Index of the repository in the device's repository table, or [`NO_REPO`]. With `REMOTE_VALID` clear, the
    /// repository may still hold an older copy that has to be dropped there.
    pub repo: u16,
    /// State bits.
    pub flags: PageFlags,
    /// CRC-32C of the page's current content.
    pub crc: u32,
    /// Write sequence number; completions carry it so stale ones are ignored. Not exported.
    pub seq: u32,
}

/// What a new write has to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePlan {
    /// Sequence number to pass to the completion functions.
    pub seq: u32,
    /// Send a STORE to this repository (None: page stays local only).
    pub store_to: Option<u16>,
    /// Write the local copy to this slot (None: no local store configured).
    pub local_to: Option<u64>,
    /// A repository that may hold an older copy of this page and should get a DROP (space reclaim only: the old copy
    /// is never read again, since the record no longer points to it).
    pub drop_stale: Option<u16>,
}

/// Result of a STORE as seen by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// OK reply.
    Stored,
    /// FULL reply: keep the page local; mark the repository full.
    Full,
    /// DENIED, ERROR, timeout or connection loss.
    Failed,
}

/// Where a read must be served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPlan {
    /// Never written (or discarded): return zeroes.
    Unmapped,
    /// FETCH from this repository, expect this CRC; on any failure or mismatch read `fallback` (if any).
    Remote {
        /// Repository index.
        repo: u16,
        /// Expected CRC-32C.
        crc: u32,
        /// Local slot holding the same content, if already written.
        fallback: Option<u64>,
    },
    /// Read the local copy.
    Local {
        /// Local slot.
        slot: u64,
    },
    /// A write of this page is still in flight and no copy holds its content yet: wait for a completion and retry.
    Wait,
    /// No copy holds the content and nothing is in flight: the page is lost (every write failed). Return an I/O
    /// error, never wrong data.
    Lost,
}

impl PageRecord {
    /// A record for a page that was never written.
    pub const fn new(page: u64) -> Self {
        PageRecord {
            page,
            local: NO_LOCAL,
            repo: NO_REPO,
            flags: PageFlags(0),
            crc: 0,
            seq: 0,
        }
    }

    /// Whether the record describes no content (fresh or discarded) and can be removed from the map.
    pub fn is_unmapped(&self) -> bool {
        !self.flags.has(PageFlags::WRITTEN)
    }

    /// Whether some I/O for this page is in flight.
    pub fn in_flight(&self) -> bool {
        self.flags
            .any(PageFlags::REMOTE_INFLIGHT | PageFlags::LOCAL_INFLIGHT)
    }

    /// Start a write of new content with checksum `crc`, placed on `repo` (from [`super::placement::place`]; `None`
    /// when no repository can take it) and written through to local `slot` (`None`: no local store). With both
    /// `None` the write has nowhere to go: the caller fails it, and the page reads as [`ReadPlan::Lost`].
    pub fn begin_write(&mut self, crc: u32, repo: Option<u16>, slot: Option<u64>) -> WritePlan {
        self.seq = self.seq.wrapping_add(1);
        let new_repo = repo.unwrap_or(NO_REPO);
        let drop_stale = if self.repo != NO_REPO && self.repo != new_repo {
            Some(self.repo)
        } else {
            None
        };
        self.repo = new_repo;
        self.local = slot.unwrap_or(NO_LOCAL);
        self.crc = crc;
        self.flags = PageFlags(PageFlags::WRITTEN);
        if repo.is_some() {
            self.flags.set(PageFlags::REMOTE_INFLIGHT);
        }
        if slot.is_some() {
            self.flags.set(PageFlags::LOCAL_INFLIGHT);
        }
        WritePlan {
            seq: self.seq,
            store_to: repo,
            local_to: slot,
            drop_stale,
        }
    }

    /// The STORE of write `seq` finished. Returns false if the completion is stale (a newer write or a discard
    /// happened since) and was ignored.
    pub fn complete_remote(&mut self, seq: u32, outcome: StoreOutcome) -> bool {
        if seq != self.seq || !self.flags.has(PageFlags::REMOTE_INFLIGHT) {
            return false;
        }
        self.flags.clear(PageFlags::REMOTE_INFLIGHT);
        if outcome == StoreOutcome::Stored {
            self.flags.set(PageFlags::REMOTE_VALID);
        }
        // On failure `repo` stays set (without REMOTE_VALID): the repository may hold an older copy to drop later.
        true
    }

    /// The local write of write `seq` finished. Returns false if stale.
    pub fn complete_local(&mut self, seq: u32, ok: bool) -> bool {
        if seq != self.seq || !self.flags.has(PageFlags::LOCAL_INFLIGHT) {
            return false;
        }
        self.flags.clear(PageFlags::LOCAL_INFLIGHT);
        if ok {
            self.flags.set(PageFlags::LOCAL_VALID);
        }
        true
    }

    /// Decide where to read the page from, given the device's repository table.
    pub fn read_plan(&self, repos: &[RepoInfo]) -> ReadPlan {
        if self.is_unmapped() {
            return ReadPlan::Unmapped;
        }
        let fallback = if self.flags.has(PageFlags::LOCAL_VALID) {
            Some(self.local)
        } else {
            None
        };
        let remote_ok = self.flags.has(PageFlags::REMOTE_VALID)
            && repos
                .get(usize::from(self.repo))
                .is_some_and(|r| r.can_read());
        if remote_ok {
            return ReadPlan::Remote {
                repo: self.repo,
                crc: self.crc,
                fallback,
            };
        }
        if let Some(slot) = fallback {
            return ReadPlan::Local { slot };
        }
        if self.in_flight() {
            return ReadPlan::Wait;
        }
        if self.flags.has(PageFlags::REMOTE_VALID) {
            // Only copy is on a repository that is down right now: wait for it (or for it to be declared dead).
            return ReadPlan::Wait;
        }
        ReadPlan::Lost
    }

    /// Whether a page fetched from a repository is the current content.
    pub fn verify_fetched(&self, repo: u16, crc: u32) -> bool {
        self.flags.has(PageFlags::REMOTE_VALID) && self.repo == repo && self.crc == crc
    }

    /// A fetch returned NOT_FOUND or wrong content: the repository copy is no longer trusted.
    pub fn remote_copy_bad(&mut self) {
        self.flags.clear(PageFlags::REMOTE_VALID);
    }

    /// Discard (trim) of this page. Returns the repository that should get a DROP. The record is unmapped afterwards;
    /// completions of earlier writes become stale.
    pub fn discard(&mut self) -> Option<u16> {
        let repo = if self.repo != NO_REPO {
            Some(self.repo)
        } else {
            None
        };
        let seq = self.seq.wrapping_add(1);
        *self = PageRecord::new(self.page);
        self.seq = seq;
        repo
    }

    /// Repository `repo` was removed or declared dead: forget the remote copy. Returns false if the page now has no
    /// copy at all and no write in flight (only possible if its local write failed too).
    pub fn repo_gone(&mut self, repo: u16) -> bool {
        if self.repo == repo {
            self.repo = NO_REPO;
            self.flags
                .clear(PageFlags::REMOTE_VALID | PageFlags::REMOTE_INFLIGHT);
        }
        self.is_unmapped()
            || self
                .flags
                .any(PageFlags::LOCAL_VALID | PageFlags::LOCAL_INFLIGHT | PageFlags::REMOTE_VALID)
    }

    /// Whether the page has to be moved off its repository (it is draining or dead): the caller reads the page (from
    /// local or the repository), then rewrites it with [`PageRecord::begin_write`] to a newly placed repository.
    pub fn needs_move(&self, repos: &[RepoInfo]) -> bool {
        self.repo != NO_REPO
            && self.flags.has(PageFlags::REMOTE_VALID)
            && repos
                .get(usize::from(self.repo))
                .is_none_or(|r| !r.can_store())
    }
}

#[cfg(test)]
mod tests {
    use super::super::placement::{RepoFlags, RepoInfo};
    use super::*;

    fn repos() -> [RepoInfo; 2] {
        [
            RepoInfo::new(10, RepoFlags::UP),
            RepoInfo::new(11, RepoFlags::UP),
        ]
    }

    #[test]
    fn write_through_then_reads() {
        let r = repos();
        let mut rec = PageRecord::new(5);
        assert_eq!(rec.read_plan(&r), ReadPlan::Unmapped);
        let w = rec.begin_write(0xabc, Some(1), Some(5));
        assert_eq!(
            w,
            WritePlan {
                seq: 1,
                store_to: Some(1),
                local_to: Some(5),
                drop_stale: None
            }
        );
        assert_eq!(rec.read_plan(&r), ReadPlan::Wait);
        assert!(rec.complete_local(w.seq, true));
        assert_eq!(rec.read_plan(&r), ReadPlan::Local { slot: 5 });
        assert!(rec.complete_remote(w.seq, StoreOutcome::Stored));
        assert_eq!(
            rec.read_plan(&r),
            ReadPlan::Remote {
                repo: 1,
                crc: 0xabc,
                fallback: Some(5)
            }
        );
        assert!(rec.verify_fetched(1, 0xabc));
        assert!(!rec.verify_fetched(1, 0xabd));
        assert!(!rec.verify_fetched(0, 0xabc));
    }

    #[test]
    fn stale_completion_never_validates_new_content() {
        let r = repos();
        let mut rec = PageRecord::new(1);
        let w1 = rec.begin_write(1, Some(0), Some(1));
        let w2 = rec.begin_write(2, Some(1), Some(1));
        assert_eq!(w2.drop_stale, Some(0));
        // completions of the first write arrive late: ignored
        assert!(!rec.complete_remote(w1.seq, StoreOutcome::Stored));
        assert!(!rec.complete_local(w1.seq, true));
        assert_eq!(rec.read_plan(&r), ReadPlan::Wait);
        assert!(rec.complete_remote(w2.seq, StoreOutcome::Stored));
        assert_eq!(
            rec.read_plan(&r),
            ReadPlan::Remote {
                repo: 1,
                crc: 2,
                fallback: None
            }
        );
        // double completion is ignored
        assert!(!rec.complete_remote(w2.seq, StoreOutcome::Stored));
    }

    #[test]
    fn full_or_dead_repository_falls_back_to_local() {
        let mut r = repos();
        let mut rec = PageRecord::new(1);
        let w = rec.begin_write(7, Some(0), Some(3));
        rec.complete_local(w.seq, true);
        rec.complete_remote(w.seq, StoreOutcome::Full);
        assert_eq!(rec.read_plan(&r), ReadPlan::Local { slot: 3 });
        let w = rec.begin_write(8, Some(1), Some(3));
        assert_eq!(
            w.drop_stale,
            Some(0),
            "older copy may still sit on repository 0"
        );
        rec.complete_local(w.seq, true);
        rec.complete_remote(w.seq, StoreOutcome::Stored);
        r[1].flags = RepoFlags(RepoFlags::UP | RepoFlags::DEAD);
        assert_eq!(rec.read_plan(&r), ReadPlan::Local { slot: 3 });
        assert!(rec.needs_move(&r));
        assert!(rec.repo_gone(1));
        assert_eq!(rec.repo, NO_REPO);
        assert_eq!(rec.read_plan(&r), ReadPlan::Local { slot: 3 });
    }

    #[test]
    fn lost_only_when_every_copy_failed() {
        let r = repos();
        let mut rec = PageRecord::new(1);
        let w = rec.begin_write(7, Some(0), Some(3));
        rec.complete_local(w.seq, false);
        assert_eq!(rec.read_plan(&r), ReadPlan::Wait);
        rec.complete_remote(w.seq, StoreOutcome::Failed);
        assert_eq!(rec.read_plan(&r), ReadPlan::Lost);
        // remote only, repository vanishes
        let w = rec.begin_write(9, Some(0), None);
        rec.complete_remote(w.seq, StoreOutcome::Stored);
        assert!(!rec.repo_gone(0));
        assert_eq!(rec.read_plan(&r), ReadPlan::Lost);
        // nowhere to write at all: still never reads as zeroes
        let mut rec = PageRecord::new(2);
        rec.begin_write(1, None, None);
        assert!(!rec.is_unmapped());
        assert_eq!(rec.read_plan(&r), ReadPlan::Lost);
    }

    #[test]
    fn discard_unmaps_and_staleness() {
        let r = repos();
        let mut rec = PageRecord::new(4);
        let w = rec.begin_write(7, Some(1), Some(4));
        assert_eq!(rec.discard(), Some(1));
        assert!(rec.is_unmapped());
        assert!(!rec.complete_remote(w.seq, StoreOutcome::Stored));
        assert!(!rec.complete_local(w.seq, true));
        assert_eq!(rec.read_plan(&r), ReadPlan::Unmapped);
        assert_eq!(rec.discard(), None);
    }

    /// The drain sequence of the kernel device (`drain INDEX`): a page on a draining repository is rewritten with
    /// its own content to the repository placement picks, its local copy kept; the old repository gets a DROP, and
    /// while the new STORE is out the page still reads right (from the local copy).
    #[test]
    fn moving_a_page_off_a_draining_repository() {
        let mut r = [
            RepoInfo::new(1, RepoFlags::UP),
            RepoInfo::new(2, RepoFlags::UP),
        ];
        let mut rec = PageRecord::new(5);
        let w = rec.begin_write(0xabcd, Some(0), Some(5));
        rec.complete_local(w.seq, true);
        rec.complete_remote(w.seq, StoreOutcome::Stored);
        r[0].flags = RepoFlags(RepoFlags::UP | RepoFlags::DRAINING);
        assert!(rec.needs_move(&r));
        // Reads still come from the draining repository until the page has moved.
        assert!(matches!(rec.read_plan(&r), ReadPlan::Remote { repo: 0, .. }));
        let old = rec;
        let m = rec.begin_write(old.crc, Some(1), Some(old.local));
        assert_eq!(m.drop_stale, Some(0));
        rec.complete_local(m.seq, true);
        assert_eq!(rec.read_plan(&r), ReadPlan::Local { slot: 5 });
        rec.complete_remote(m.seq, StoreOutcome::Stored);
        assert_eq!(rec.read_plan(&r), ReadPlan::Remote { repo: 1, crc: 0xabcd, fallback: Some(5) });
        assert!(!rec.needs_move(&r));
        // No other repository can take it: the page stays in the local store only, never lost.
        let mut rec = old;
        let m = rec.begin_write(old.crc, None, Some(old.local));
        assert_eq!(m.drop_stale, Some(0));
        rec.complete_local(m.seq, true);
        assert_eq!(rec.read_plan(&r), ReadPlan::Local { slot: 5 });
        assert!(!rec.needs_move(&r));
    }
}
