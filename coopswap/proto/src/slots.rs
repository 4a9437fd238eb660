//! Where in the local store each local copy goes ([`Layout`]).
//!
//! The dissertation keeps "the location of the page on disk" in each page-map entry (§6.2.4) without saying how it is
//! chosen. Writing page `p` to slot `p` ([`Layout::Fixed`]) makes random swap-outs random disk writes: a disk that
//! does 150 of those a second held a stream of 4 KiB random writes at 0.05x nbd (Documentation/coopswap.md). With
//! [`Layout::Log`] every local write goes to the next free slot after the last one handed out (next fit, wrapping),
//! so writes that follow one another land in consecutive slots whatever their pages are, and the write-behind
//! writers turn them into one large write. The price: a freed slot keeps its stale copy until it is handed out again,
//! and the cursor goes round the whole store before it reuses one — a store that keeps what is written in memory
//! (zram) or allocates it on first write (a thin file) ends up holding the device's full size. Hence a choice, not a
//! default: `log` for a disk that charges per I/O, `fixed` for memory-backed or thin stores.
//!
//! A page owns at most one slot ([`PageRecord::local`](super::pagemap::PageRecord)); the device frees it when the
//! page is written again (the new content goes to the slot [`Slots::take`] gives) or discarded. With as many slots as
//! device pages a page being written always finds one: its own old slot is freed first, so at most `pages - 1` are
//! in use.
//!
//! This module is a bitmap over caller-provided words (arrays on the host, a heap vector in the kernel) and does
//! not allocate.

use core::borrow::BorrowMut;

const BITS: u64 = u64::BITS as u64;

/// How a device places its pages' local copies in the store (configfs `store_layout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Page `p` in slot `p` (or, when a page map imported from a `log` device gave slot `p` to another page, the next
    /// free slot): rewrites land in place, nothing stale stays in the store.
    #[default]
    Fixed,
    /// The next free slot: writes following one another are consecutive in the store, whatever their pages.
    Log,
}

impl Layout {
    /// `fixed` or `log` (surrounding whitespace, as `echo` adds, is ignored).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "fixed" => Some(Layout::Fixed),
            "log" => Some(Layout::Log),
            _ => None,
        }
    }

    /// The name [`Layout::parse`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Fixed => "fixed",
            Layout::Log => "log",
        }
    }
}

/// The free/used state of a local store's slots.
#[derive(Clone, Debug)]
pub struct Slots<W> {
    words: W,
    slots: u64,
    used: u64,
    /// Where the next search starts (the slot after the last one handed out).
    next: u64,
}

/// How many `u64` words a map of `slots` slots needs.
pub const fn words_for(slots: u64) -> u64 {
    slots.div_ceil(BITS)
}

impl<W: BorrowMut<[u64]>> Slots<W> {
    /// A map of `slots` slots, all free, over `words` (zeroed here): `None` if `words` is shorter than
    /// [`words_for`]`(slots)`.
    pub fn with(mut words: W, slots: u64) -> Option<Self> {
        let need = usize::try_from(words_for(slots)).ok()?;
        let w = words.borrow_mut();
        if w.len() < need {
            return None;
        }
        w.iter_mut().for_each(|x| *x = 0);
        Some(Slots { words, slots, used: 0, next: 0 })
    }

    /// How many slots.
    pub fn capacity(&self) -> u64 {
        self.slots
    }

    /// How many slots are in use.
    pub fn used(&self) -> u64 {
        self.used
    }

    fn word(&self, slot: u64) -> Option<(usize, u64)> {
        if slot >= self.slots {
            return None;
        }
        let i = usize::try_from(slot / BITS).ok()?;
        Some((i, 1u64.wrapping_shl((slot % BITS) as u32)))
    }

    /// Whether `slot` is in use (false for a slot out of range).
    pub fn is_used(&self, slot: u64) -> bool {
        self.word(slot)
            .and_then(|(i, bit)| self.words.borrow().get(i).map(|w| w & bit != 0))
            .unwrap_or(false)
    }

    /// Marks `slot` used (a page map being imported names it). False, and nothing changed, if it is out of range or
    /// already used — two pages claiming one slot is a corrupt map.
    pub fn mark(&mut self, slot: u64) -> bool {
        let Some((i, bit)) = self.word(slot) else {
            return false;
        };
        match self.words.borrow_mut().get_mut(i) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                self.used = self.used.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// Frees `slot`. False, and nothing changed, if it was not in use (or is no slot at all, such as
    /// [`NO_LOCAL`](super::pagemap::NO_LOCAL)).
    pub fn free(&mut self, slot: u64) -> bool {
        let Some((i, bit)) = self.word(slot) else {
            return false;
        };
        match self.words.borrow_mut().get_mut(i) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                self.used = self.used.saturating_sub(1);
                true
            }
            _ => false,
        }
    }

    /// Hands out the first free slot at or after the last one handed out (wrapping around), now used. `None` when
    /// every slot is used.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.used >= self.slots {
            return None;
        }
        let start = if self.next < self.slots { self.next } else { 0 };
        let slot = self.find_free(start, self.slots).or_else(|| self.find_free(0, start))?;
        if !self.mark(slot) {
            return None;
        }
        self.next = slot.saturating_add(1);
        Some(slot)
    }

    /// The first free slot in `from..to`, a word at a time.
    fn find_free(&self, from: u64, to: u64) -> Option<u64> {
        let words = self.words.borrow();
        let mut s = from;
        while s < to {
            let i = usize::try_from(s / BITS).ok()?;
            let w = *words.get(i)?;
            // Bits below `s` in this word count as used.
            let below = 1u64.wrapping_shl((s % BITS) as u32).wrapping_sub(1);
            let free = !(w | below);
            if free != 0 {
                let slot = (s / BITS).wrapping_mul(BITS).wrapping_add(u64::from(free.trailing_zeros()));
                return (slot < to).then_some(slot);
            }
            s = (s / BITS).saturating_add(1).saturating_mul(BITS);
        }
        None
    }

    /// The slot for a new copy of `page` under `layout` (the page's old slot already freed), now used. `None` only
    /// when every slot is used.
    pub fn take(&mut self, layout: Layout, page: u64) -> Option<u64> {
        match layout {
            Layout::Fixed if self.mark(page) => Some(page),
            _ => self.alloc(),
        }
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map over `W` words that start dirty (`with` must zero them).
    fn map<const W: usize>(slots: u64) -> Option<Slots<[u64; W]>> {
        let m = Slots::with([u64::MAX; W], slots);
        assert!(m.is_some(), "{W} words do not hold {slots} slots");
        m
    }

    #[test]
    fn hands_out_consecutive_slots_then_wraps_to_the_freed_ones() {
        let Some(mut m) = map::<2>(70) else { return };
        for want in 0..70 {
            assert_eq!(m.alloc(), Some(want));
        }
        assert_eq!(m.alloc(), None);
        assert_eq!(m.used(), 70);
        assert!(m.free(3) && m.free(65));
        // Next fit from slot 70 wraps to the lowest free slot, then goes on from there.
        assert_eq!(m.alloc(), Some(3));
        assert_eq!(m.alloc(), Some(65));
        assert_eq!(m.alloc(), None);
    }

    #[test]
    fn next_fit_does_not_go_back_to_a_hole_behind_it() {
        let Some(mut m) = map::<1>(10) else { return };
        assert_eq!((m.alloc(), m.alloc(), m.alloc()), (Some(0), Some(1), Some(2)));
        assert!(m.free(0));
        assert_eq!(m.alloc(), Some(3));
    }

    #[test]
    fn mark_and_free_refuse_what_would_corrupt_the_count() {
        let Some(mut m) = map::<1>(8) else { return };
        assert!(m.mark(5));
        assert!(!m.mark(5), "a slot claimed twice");
        assert!(!m.mark(8), "out of range");
        assert!(!m.free(4), "not in use");
        assert!(!m.free(99));
        assert_eq!(m.used(), 1);
        assert!(m.is_used(5) && !m.is_used(4) && !m.is_used(8));
        assert!(m.free(5));
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn too_few_words_or_none_at_all() {
        assert!(Slots::with([0u64; 1], 65).is_none());
        assert!(Slots::with([0u64; 2], 65).is_some());
        let Some(mut empty) = map::<0>(0) else { return };
        assert_eq!(empty.alloc(), None);
    }

    #[test]
    fn layouts_by_name_and_where_they_put_a_page() {
        assert_eq!(Layout::parse("log\n"), Some(Layout::Log));
        assert_eq!(Layout::parse(" fixed "), Some(Layout::Fixed));
        for bad in ["", "LOG", "logs", "fixed log", "\u{0}"] {
            assert_eq!(Layout::parse(bad), None, "{bad:?}");
        }
        for l in [Layout::Fixed, Layout::Log] {
            assert_eq!(Layout::parse(l.name()), Some(l));
        }
        assert_eq!(Layout::default(), Layout::Fixed);
        let Some(mut m) = map::<1>(8) else { return };
        assert_eq!(m.take(Layout::Fixed, 5), Some(5));
        assert_eq!(m.take(Layout::Log, 5), Some(0), "log: the next free slot, whatever the page");
        assert_eq!(m.take(Layout::Log, 2), Some(1));
        // Fixed, when the page's own slot is another page's (an imported log map): the next free one.
        assert_eq!(m.take(Layout::Fixed, 0), Some(2));
        assert!(m.free(5));
        assert_eq!(m.take(Layout::Fixed, 5), Some(5), "a rewrite in place");
    }

    #[test]
    fn starts_zeroed_and_no_local_is_no_slot() {
        let Some(mut m) = map::<1>(4) else { return };
        assert_eq!(m.used(), 0);
        assert_eq!(m.alloc(), Some(0));
        assert_eq!(m.alloc(), Some(1));
        assert!(!m.free(crate::pagemap::NO_LOCAL), "the device frees a record's slot without checking for NO_LOCAL");
        assert_eq!(m.used(), 2);
    }
}
