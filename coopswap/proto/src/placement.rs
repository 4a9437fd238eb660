//! Placement of pages over several repositories (issue 4 item 6).
//!
//! Rendezvous (highest-random-weight) hashing: every (page, repository) pair gets a pseudo-random score and the page
//! goes to the eligible repository with the highest score. This spreads pages evenly, needs no state besides the
//! repository table, and is stable: adding a repository only moves pages *to* it, removing one only moves *its*
//! pages. Repositories that are not up, are full, draining or dead are skipped, as are those in the caller's
//! `avoid` mask (e.g. one that just answered FULL for this page).
//!
//! The dissertation (§6.2.4) records where each page went but does not say how a repository is chosen; this policy is
//! ours. The device's `seed` lets different devices spread differently over the same repositories.

/// Most repositories a device can use (the `avoid` mask is a u64).
pub const MAX_REPOS: usize = 64;

/// Health/capacity bits of a repository, maintained by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RepoFlags(pub u16);

impl RepoFlags {
    /// Connected and answering (HELLO done).
    pub const UP: u16 = 1 << 0;
    /// Answered FULL recently: no new pages (reads still fine).
    pub const FULL: u16 = 1 << 1;
    /// Being drained by the administrator: no new pages; its pages are moved away.
    pub const DRAINING: u16 = 1 << 2;
    /// Declared dead (stalled, refused, unreachable): no reads, no writes.
    pub const DEAD: u16 = 1 << 3;
    /// All defined bits.
    pub const ALL: u16 = Self::UP | Self::FULL | Self::DRAINING | Self::DEAD;
}

/// One repository as seen by placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoInfo {
    /// Stable identity (e.g. configured id or a hash of the address); the same on every host, so placement after a
    /// migration agrees with placement before it.
    pub id: u64,
    /// State bits.
    pub flags: RepoFlags,
}

impl RepoInfo {
    /// A repository with flags `flags`.
    pub const fn new(id: u64, flags: u16) -> Self {
        RepoInfo {
            id,
            flags: RepoFlags(flags),
        }
    }
    /// May receive new pages.
    pub fn can_store(&self) -> bool {
        self.flags.0 & (RepoFlags::UP | RepoFlags::FULL | RepoFlags::DRAINING | RepoFlags::DEAD)
            == RepoFlags::UP
    }
    /// May serve reads.
    pub fn can_read(&self) -> bool {
        self.flags.0 & (RepoFlags::UP | RepoFlags::DEAD) == RepoFlags::UP
    }
}

/// SplitMix64 finaliser: a fast, well-mixing 64-bit permutation.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rendezvous score of `page` on repository `repo_id` for a device with `seed`.
pub fn score(seed: u64, page: u64, repo_id: u64) -> u64 {
    mix64(mix64(page ^ seed) ^ repo_id.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// Choose a repository for `page`: the index in `repos` of the eligible repository with the highest score, or
/// `None` if none can take it (the page then stays local only). Only the first [`MAX_REPOS`] entries are considered;
/// bit `i` of `avoid` excludes entry `i`.
pub fn place(seed: u64, page: u64, repos: &[RepoInfo], avoid: u64) -> Option<u16> {
    let mut best: Option<(u64, u16)> = None;
    for (i, r) in repos.iter().enumerate().take(MAX_REPOS) {
        let avoided = u32::try_from(i)
            .ok()
            .and_then(|s| 1u64.checked_shl(s))
            .is_some_and(|bit| avoid & bit != 0);
        if avoided || !r.can_store() {
            continue;
        }
        let Ok(idx) = u16::try_from(i) else { continue };
        let s = score(seed, page, r.id);
        match best {
            Some((bs, _)) if bs >= s => {}
            _ => best = Some((s, idx)),
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_over_healthy_repositories() {
        let repos = [
            RepoInfo::new(1, RepoFlags::UP),
            RepoInfo::new(2, RepoFlags::UP),
            RepoInfo::new(3, RepoFlags::UP),
            RepoInfo::new(4, RepoFlags::UP),
        ];
        let mut counts = [0u32; 4];
        for page in 0..40_000u64 {
            counts[usize::from(place(7, page, &repos, 0).unwrap())] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn skips_ineligible_and_avoided() {
        let repos = [
            RepoInfo::new(1, RepoFlags::UP | RepoFlags::FULL),
            RepoInfo::new(2, RepoFlags::UP | RepoFlags::DEAD),
            RepoInfo::new(3, RepoFlags::UP | RepoFlags::DRAINING),
            RepoInfo::new(4, 0),
            RepoInfo::new(5, RepoFlags::UP),
        ];
        for page in 0..1000 {
            assert_eq!(place(0, page, &repos, 0), Some(4));
            assert_eq!(place(0, page, &repos, 1 << 4), None);
        }
        assert_eq!(place(0, 1, &[], 0), None);
    }

    #[test]
    fn adding_a_repository_only_moves_pages_to_it() {
        let three = [
            RepoInfo::new(1, RepoFlags::UP),
            RepoInfo::new(2, RepoFlags::UP),
            RepoInfo::new(3, RepoFlags::UP),
        ];
        let four = [
            three[0],
            three[1],
            three[2],
            RepoInfo::new(99, RepoFlags::UP),
        ];
        let mut moved = 0;
        for page in 0..10_000u64 {
            let a = place(3, page, &three, 0).unwrap();
            let b = place(3, page, &four, 0).unwrap();
            if a != b {
                assert_eq!(b, 3);
                moved += 1;
            }
        }
        assert!((2_000..3_000).contains(&moved), "{moved}");
    }
}
