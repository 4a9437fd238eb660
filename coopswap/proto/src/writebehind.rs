//! Write-behind of the local copies (§6.2.4: the page goes to network memory, and "asynchronously" to the local
//! disk). The device's worker copies each written page into one of `N` page buffers and queues it with the store
//! slot it goes to ([`super::slots`]); writers take the queued buffers in FIFO order, as runs of consecutive store
//! slots, write them to the local store (so a later write to a slot lands after an earlier one) and mark them done; the worker applies each completion to the page map (`PageRecord::complete_local`) before it
//! reuses the buffer. With all `N` buffers queued or being written the worker waits: memory stays bounded, which is
//! what a device that swaps under memory pressure needs.
//!
//! This module is the buffers' state machine only (no buffers, no locks): the kernel keeps it under a mutex next to
//! the buffers and a condition variable.

use core::borrow::BorrowMut;

/// State of one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Unused.
    Free,
    /// Claimed by the worker, which is copying a page into it.
    Filling,
    /// Holds `page` (write `seq`) for store slot `local`, waiting for a writer.
    Queued {
        /// Device page.
        page: u64,
        /// The page's write sequence number.
        seq: u32,
        /// The local store slot it is written to.
        local: u64,
    },
    /// Being written by a writer.
    Writing {
        /// Device page.
        page: u64,
        /// The page's write sequence number.
        seq: u32,
        /// The local store slot it is written to.
        local: u64,
    },
    /// Written (`ok`: the local store accepted it); the completion is not yet applied to the page map.
    Done {
        /// Device page.
        page: u64,
        /// The page's write sequence number.
        seq: u32,
        /// Whether the local write succeeded.
        ok: bool,
    },
}

/// A finished local write, to apply to the page map: `PageRecord::complete_local(seq, ok)` of `page`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Device page.
    pub page: u64,
    /// The write sequence number the buffer was queued with.
    pub seq: u32,
    /// Whether the local store accepted the write.
    pub ok: bool,
}

/// The state of `N` page buffers and the FIFO of queued ones, over storage `S` (`N` slots) and `F` (`N` FIFO
/// entries): arrays on the host ([`ArrayPool`]), heap vectors in the kernel, where a pool of a few hundred buffers
/// would not fit a stack frame.
#[derive(Clone, Debug)]
pub struct Pool<S, F> {
    slots: S,
    fifo: F,
    head: usize,
    len: usize,
}

/// A pool of `N` buffers in arrays.
pub type ArrayPool<const N: usize> = Pool<[Slot; N], [u16; N]>;

impl<const N: usize> Default for ArrayPool<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ArrayPool<N> {
    /// All buffers free. `N` must fit a `u16` index (larger pools never hand out the slots beyond it).
    pub const fn new() -> Self {
        Pool {
            slots: [Slot::Free; N],
            fifo: [0; N],
            head: 0,
            len: 0,
        }
    }
}

impl<S: BorrowMut<[Slot]>, F: BorrowMut<[u16]>> Pool<S, F> {
    /// A pool over `slots` (every one `Free`) and `fifo`, which must be as long: `None` if it is not, if there are
    /// no slots, or if a slot is not free. Slots beyond index `u16::MAX` are never handed out.
    pub fn with(slots: S, fifo: F) -> Option<Self> {
        let n = slots.borrow().len();
        if n == 0 || fifo.borrow().len() != n || slots.borrow().iter().any(|s| *s != Slot::Free) {
            return None;
        }
        Some(Pool { slots, fifo, head: 0, len: 0 })
    }

    /// How many buffers.
    pub fn capacity(&self) -> usize {
        self.slots.borrow().len()
    }

    /// A buffer for the worker to fill (now `Filling`): a free one, else a done one, whose completion is returned
    /// and must be applied before the new write is queued (it is older). `None`: every buffer is queued or being
    /// written; wait for the writer.
    pub fn claim(&mut self) -> Option<(usize, Option<Completion>)> {
        let slots = self.slots.borrow_mut();
        let limit = slots.len().min(usize::from(u16::MAX));
        let free = slots.iter().take(limit).position(|s| *s == Slot::Free);
        let at = free.or_else(|| slots.iter().take(limit).position(|s| matches!(s, Slot::Done { .. })))?;
        let slot = slots.get_mut(at)?;
        let done = match *slot {
            Slot::Done { page, seq, ok } => Some(Completion { page, seq, ok }),
            _ => None,
        };
        *slot = Slot::Filling;
        Some((at, done))
    }

    /// Queues filled buffer `at` holding write `seq` of `page`, to be written to store slot `local`. False (nothing
    /// changed) unless `at` is `Filling`.
    pub fn queue(&mut self, at: usize, page: u64, seq: u32, local: u64) -> bool {
        let n = self.capacity();
        let Ok(idx) = u16::try_from(at) else {
            return false;
        };
        if self.slots.borrow().get(at) != Some(&Slot::Filling) || self.len >= n {
            return false;
        }
        let tail = self.head.wrapping_add(self.len).checked_rem(n).unwrap_or(0);
        let (Some(f), Some(s)) = (self.fifo.borrow_mut().get_mut(tail), self.slots.borrow_mut().get_mut(at)) else {
            return false;
        };
        *f = idx;
        *s = Slot::Queued { page, seq, local };
        self.len = self.len.wrapping_add(1);
        true
    }

    /// Gives back buffer `at` unqueued (`Filling` → `Free`), e.g. when copying the page into it failed.
    pub fn release(&mut self, at: usize) {
        if let Some(s) = self.slots.borrow_mut().get_mut(at).filter(|s| **s == Slot::Filling) {
            *s = Slot::Free;
        }
    }

    /// A writer's next buffer, oldest first (`Queued` → `Writing`), with its store slot. `None` when nothing is
    /// queued, and also while an earlier write to the oldest buffer's store slot is still being written (by another
    /// writer): the later write must not overtake it, so it waits at the head of the FIFO until that one finishes.
    /// That earlier write may be of the same page, or of a page whose slot was freed and handed out again. Writes to
    /// different slots may land in any order, which is what lets several writers share one pool.
    pub fn take_next(&mut self) -> Option<(usize, u64)> {
        let head = self.head_local()?;
        if self.writing(head) {
            return None;
        }
        let n = self.capacity();
        let at = usize::from(*self.fifo.borrow().get(self.head)?);
        self.head = self.head.wrapping_add(1).checked_rem(n).unwrap_or(0);
        self.len = self.len.wrapping_sub(1);
        let slot = self.slots.borrow_mut().get_mut(at)?;
        match *slot {
            Slot::Queued { page, seq, local } => {
                *slot = Slot::Writing { page, seq, local };
                Some((at, local))
            }
            _ => None,
        }
    }

    /// A writer's next run, to write with one I/O: the oldest queued buffer and, after it in FIFO order, each
    /// queued buffer whose store slot follows the previous one's (slot + 1), up to `out.len()` buffers; each one
    /// taken is now `Writing`. Fills `out` with (buffer, store slot) and returns how many (0: nothing queued, or the
    /// oldest one's slot is still being written). Only a prefix of the FIFO is taken, and never a slot being written
    /// (see [`Pool::take_next`]), so a later write to a slot lands after an earlier one however many writers there
    /// are.
    pub fn take_run(&mut self, out: &mut [(usize, u64)]) -> usize {
        let mut n = 0usize;
        let mut last: Option<u64> = None;
        while let Some(dst) = out.get_mut(n) {
            if let Some(prev) = last {
                let follows = self.head_local().is_some_and(|p| prev.checked_add(1) == Some(p));
                if !follows {
                    break;
                }
            }
            let Some((at, page)) = self.take_next() else {
                break;
            };
            *dst = (at, page);
            last = Some(page);
            n = n.wrapping_add(1);
        }
        n
    }

    /// The store slot of the oldest queued buffer.
    fn head_local(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let at = usize::from(*self.fifo.borrow().get(self.head)?);
        match self.slots.borrow().get(at)? {
            Slot::Queued { local, .. } => Some(*local),
            _ => None,
        }
    }

    /// Whether a buffer for store slot `local` is being written.
    fn writing(&self, local: u64) -> bool {
        self.slots.borrow().iter().any(|s| matches!(*s, Slot::Writing { local: l, .. } if l == local))
    }

    /// The writer finished buffer `at` (`Writing` → `Done`). False (nothing changed) unless it was `Writing`.
    pub fn finish(&mut self, at: usize, ok: bool) -> bool {
        match self.slots.borrow_mut().get_mut(at) {
            Some(slot) => match *slot {
                Slot::Writing { page, seq, .. } => {
                    *slot = Slot::Done { page, seq, ok };
                    true
                }
                _ => false,
            },
            None => false,
        }
    }

    /// Hands every done buffer's completion to `apply`, oldest slot first, and frees the buffers. Returns how many.
    pub fn reap(&mut self, mut apply: impl FnMut(Completion)) -> usize {
        let mut n = 0usize;
        for slot in self.slots.borrow_mut().iter_mut() {
            if let Slot::Done { page, seq, ok } = *slot {
                apply(Completion { page, seq, ok });
                *slot = Slot::Free;
                n = n.wrapping_add(1);
            }
        }
        n
    }

    /// Whether a write of `page` is queued or being written.
    pub fn pending(&self, page: u64) -> bool {
        self.slots.borrow().iter().any(|s| match *s {
            Slot::Queued { page: p, .. } | Slot::Writing { page: p, .. } => p == page,
            _ => false,
        })
    }

    /// Whether nothing is queued or being written.
    pub fn idle(&self) -> bool {
        !self
            .slots
            .borrow()
            .iter()
            .any(|s| matches!(s, Slot::Queued { .. } | Slot::Writing { .. }))
    }

    /// Buffers queued or being written.
    pub fn in_flight(&self) -> usize {
        self.slots
            .borrow()
            .iter()
            .filter(|s| matches!(s, Slot::Queued { .. } | Slot::Writing { .. }))
            .count()
    }
}

/// Tries of one local write before the writer gives up on it (the pages then have only their repository copy).
pub const WRITE_TRIES: u32 = 10;
/// The wait after the first failed try.
pub const RETRY_FIRST_MS: u32 = 10;
/// The longest wait between two tries.
pub const RETRY_MAX_MS: u32 = 1000;

/// When the writer tries a failed local write again. A store can fail for a moment and then work: zram (or any
/// store that allocates) finds no memory while the machine swaps hardest, a thin-provisioned file finds its disk full
/// until space is freed. Such a write is tried again after 10 ms, then 20, 40, … at most 1 s apart, [`WRITE_TRIES`]
/// tries in all (about 3.3 s of waiting); meanwhile the worker keeps its buffers, so the pages stay readable and the
/// device slows down rather than losing its local copies. Once a write has failed every try the store counts as
/// failing: later writes get one try each, so a dead store does not cost every write seconds, until one succeeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retry {
    failing: bool,
}

impl Retry {
    /// A store not (yet) known to fail.
    pub const fn new() -> Self {
        Self { failing: false }
    }

    /// After `failures` failed tries of one write (1 after the first): how long to wait before the next try, or
    /// `None` to give up on it.
    pub fn delay_ms(&self, failures: u32) -> Option<u32> {
        if self.failing || failures == 0 || failures >= WRITE_TRIES {
            return None;
        }
        // Shifts beyond 7 would pass 1 s anyway (10 << 7 = 1280); the cap keeps the shift in range.
        let shift = failures.saturating_sub(1).min(7);
        Some(RETRY_FIRST_MS.checked_shl(shift).unwrap_or(RETRY_MAX_MS).min(RETRY_MAX_MS))
    }

    /// Records how a write ended, after its tries: a write that failed every try makes the store failing, one that
    /// succeeded makes it working again. Returns whether that changed the store's state.
    pub fn ended(&mut self, ok: bool) -> bool {
        let was = self.failing;
        self.failing = !ok;
        was != self.failing
    }

    /// Whether the last write failed every try (later writes get one try each).
    pub fn failing(&self) -> bool {
        self.failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_is_retried_with_growing_waits_then_given_up() {
        let r = Retry::new();
        let mut waits = [0u32; 16];
        let mut n = 0;
        for (f, w) in (1u32..).map_while(|f| r.delay_ms(f).map(|d| (f, d))) {
            waits[n] = w;
            n += 1;
            assert_eq!(f as usize, n);
        }
        assert_eq!(waits[..n], [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(n as u32 + 1, WRITE_TRIES);
        assert_eq!(waits.iter().sum::<u32>(), 3270);
        assert_eq!(r.delay_ms(0), None);
        assert_eq!(r.delay_ms(u32::MAX), None);
    }

    #[test]
    fn a_failing_store_gets_one_try_per_write_until_a_write_succeeds() {
        let mut r = Retry::new();
        assert!(!r.ended(true), "a working store stays working");
        assert!(r.ended(false), "a write that failed every try makes the store failing");
        assert!(r.failing());
        assert_eq!(r.delay_ms(1), None);
        assert!(!r.ended(false));
        assert!(r.ended(true), "one good write makes it working again");
        assert_eq!(r.delay_ms(1), Some(10));
    }

    #[test]
    fn a_pool_over_vectors_checks_its_storage_and_works_like_an_array_pool() {
        extern crate std;
        use std::{vec, vec::Vec};
        assert!(Pool::with(vec![Slot::Free; 3], vec![0u16; 2]).is_none(), "FIFO shorter than the slots");
        assert!(Pool::with(Vec::<Slot>::new(), Vec::<u16>::new()).is_none(), "no slots");
        assert!(Pool::with(vec![Slot::Filling, Slot::Free], vec![0u16; 2]).is_none(), "a slot not free");
        let built = Pool::with(vec![Slot::Free; 3], vec![0u16; 3]);
        assert!(built.is_some(), "three free slots and a FIFO of three make a pool");
        let Some(mut p) = built else { return };
        assert_eq!(p.capacity(), 3);
        for page in [5u64, 6, 9] {
            let claimed = p.claim();
            assert!(matches!(claimed, Some((_, None))), "a free buffer for page {page}");
            let Some((at, _)) = claimed else { return };
            assert!(p.queue(at, page, 1, page));
        }
        assert!(p.claim().is_none(), "all three queued");
        let mut run = [(0usize, 0u64); 3];
        assert_eq!(p.take_run(&mut run), 2, "pages 5 and 6 follow each other, 9 does not");
        assert!(p.finish(run[0].0, true) && p.finish(run[1].0, true));
        assert!(p.pending(9) && !p.pending(5));
        let done = p.claim().and_then(|(_, done)| done);
        assert_eq!(done, Some(Completion { page: 5, seq: 1, ok: true }));
    }

    /// Queues write `seq` of `page` to store slot `page` (each page in its own slot, as before log-structuring).
    fn fill<const N: usize>(p: &mut ArrayPool<N>, page: u64, seq: u32) -> (usize, Option<Completion>) {
        fill_at(p, page, seq, page)
    }

    /// Queues write `seq` of `page` to store slot `local`.
    fn fill_at<const N: usize>(p: &mut ArrayPool<N>, page: u64, seq: u32, local: u64) -> (usize, Option<Completion>) {
        let claimed = p.claim();
        assert!(claimed.is_some(), "a buffer");
        let (at, done) = claimed.unwrap_or((usize::MAX, None));
        assert!(p.queue(at, page, seq, local));
        (at, done)
    }

    #[test]
    fn writer_takes_buffers_in_fifo_order() {
        let mut p: ArrayPool<4> = ArrayPool::new();
        fill(&mut p, 10, 1);
        fill(&mut p, 11, 1);
        fill(&mut p, 10, 2);
        assert!(p.pending(10) && p.pending(11) && !p.pending(12));
        let first = p.take_next();
        assert_eq!(first.map(|x| x.1), Some(10));
        assert_eq!(p.take_next().map(|x| x.1), Some(11));
        // The second write of 10 waits until the first is written.
        assert_eq!(p.take_next(), None);
        assert!(first.is_some_and(|(at, _)| p.finish(at, true)));
        assert_eq!(p.take_next().map(|x| x.1), Some(10));
        assert_eq!(p.take_next(), None);
        assert_eq!(p.in_flight(), 2);
    }

    #[test]
    fn a_full_pool_makes_the_worker_wait_until_a_write_finishes() {
        let mut p: ArrayPool<2> = ArrayPool::new();
        fill(&mut p, 1, 1);
        fill(&mut p, 2, 1);
        assert_eq!(p.claim(), None);
        let got = p.take_next();
        assert!(got.is_some());
        let (at, page) = got.unwrap_or((usize::MAX, u64::MAX));
        assert_eq!(page, 1);
        // Being written is not reusable either.
        assert_eq!(p.claim(), None);
        assert!(p.finish(at, true));
        // The done buffer is reused, and its completion comes back first.
        let claimed = p.claim();
        assert!(claimed.is_some());
        let (again, done) = claimed.unwrap_or((usize::MAX, None));
        assert_eq!(again, at);
        assert_eq!(done, Some(Completion { page: 1, seq: 1, ok: true }));
    }

    #[test]
    fn reap_frees_done_buffers_and_reports_failures() {
        let mut p: ArrayPool<3> = ArrayPool::new();
        fill(&mut p, 5, 7);
        fill(&mut p, 6, 8);
        let got = p.take_next();
        assert!(got.is_some());
        let (a, _) = got.unwrap_or((usize::MAX, u64::MAX));
        let got = p.take_next();
        assert!(got.is_some());
        let (b, _) = got.unwrap_or((usize::MAX, u64::MAX));
        assert!(p.finish(a, true));
        assert!(p.finish(b, false));
        assert!(p.idle());
        let mut got = [None; 3];
        let mut i = 0;
        assert_eq!(
            p.reap(|c| {
                got[i] = Some(c);
                i += 1
            }),
            2
        );
        assert_eq!(got[0], Some(Completion { page: 5, seq: 7, ok: true }));
        assert_eq!(got[1], Some(Completion { page: 6, seq: 8, ok: false }));
        assert_eq!(p.reap(|_| panic!("nothing left")), 0);
        // All three free again.
        for _ in 0..3 {
            assert_eq!(p.claim().map(|c| c.1), Some(None));
        }
    }

    #[test]
    fn wrong_transitions_change_nothing() {
        let mut p: ArrayPool<2> = ArrayPool::new();
        assert!(!p.queue(0, 1, 1, 1), "a free buffer cannot be queued");
        assert!(!p.finish(0, true), "a free buffer is not being written");
        assert!(!p.queue(9, 1, 1, 1));
        let claimed = p.claim();
        assert!(claimed.is_some());
        let (at, _) = claimed.unwrap_or((usize::MAX, None));
        assert!(!p.finish(at, true));
        p.release(at);
        assert_eq!(p.claim().map(|c| c.0), Some(at));
        assert!(p.idle());
    }

    fn run<const N: usize, const M: usize>(p: &mut ArrayPool<N>) -> ([(usize, u64); M], usize) {
        let mut out = [(usize::MAX, 0u64); M];
        let n = p.take_run(&mut out);
        (out, n)
    }

    #[test]
    fn a_run_is_the_fifo_prefix_of_consecutive_pages() {
        let mut p: ArrayPool<8> = ArrayPool::new();
        for page in [20u64, 21, 22, 30, 31, 5] {
            fill(&mut p, page, 1);
        }
        let (out, n) = run::<8, 8>(&mut p);
        assert_eq!(n, 3);
        assert!(out[..n].iter().map(|x| x.1).eq([20, 21, 22]));
        assert!(p.pending(20) && p.pending(21) && p.pending(22), "being written counts as pending");
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([30, 31]));
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([5]));
        assert_eq!(run::<8, 8>(&mut p).1, 0);
        assert_eq!(p.in_flight(), 6, "all six being written");
    }

    #[test]
    fn a_run_stops_at_its_length_and_at_a_rewrite() {
        let mut p: ArrayPool<8> = ArrayPool::new();
        for page in [1u64, 2, 3, 4, 5] {
            fill(&mut p, page, 1);
        }
        let (out, n) = run::<8, 2>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([1, 2]));
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([3, 4, 5]));
        // A page written twice is two runs, in order: the second write lands after the first.
        fill(&mut p, 9, 1);
        fill(&mut p, 9, 2);
        fill(&mut p, 10, 2);
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([9]));
        let first = out[0].0;
        // While the first write of page 9 is being written, a second writer gets nothing: the later write waits.
        assert_eq!(run::<8, 8>(&mut p).1, 0);
        assert_eq!(p.take_next(), None);
        assert!(p.finish(first, true));
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([9, 10]));
        assert_ne!(out[0].0, first);
        // A page below the previous one ends a run too (descending writes are not merged).
        let mut q: ArrayPool<4> = ArrayPool::new();
        fill(&mut q, 8, 1);
        fill(&mut q, 7, 1);
        assert_eq!(run::<4, 4>(&mut q).1, 1);
        assert_eq!(run::<4, 4>(&mut q).1, 1);
        // Nothing to take, or no room: 0.
        assert_eq!(run::<4, 4>(&mut q).1, 0);
        fill(&mut q, 1, 1);
        assert_eq!(run::<4, 0>(&mut q).1, 0);
        assert!(q.pending(1));
    }

    #[test]
    fn two_writers_take_different_runs_and_never_the_same_page_at_once() {
        let mut p: ArrayPool<8> = ArrayPool::new();
        for page in [5u64, 6, 20, 21] {
            fill(&mut p, page, 1);
        }
        // Writer A takes the run 5, 6; writer B, while A writes, the next one.
        let (a, n) = run::<8, 8>(&mut p);
        assert!(a[..n].iter().map(|x| x.1).eq([5, 6]));
        let (b, n) = run::<8, 8>(&mut p);
        assert!(b[..n].iter().map(|x| x.1).eq([20, 21]));
        // B finishes first: fine, different pages.
        assert!(p.finish(b[0].0, true) && p.finish(b[1].0, true));
        // Page 4, then a rewrite of 5 (A still writes the first 5), then 7: B's run stops before 5.
        fill(&mut p, 4, 1);
        fill(&mut p, 5, 2);
        fill(&mut p, 7, 1);
        let (b, n) = run::<8, 8>(&mut p);
        assert!(b[..n].iter().map(|x| x.1).eq([4]));
        assert_eq!(run::<8, 8>(&mut p).1, 0, "5 waits for A");
        assert!(p.finish(a[0].0, true) && p.finish(a[1].0, true));
        let (a, n) = run::<8, 8>(&mut p);
        assert!(a[..n].iter().map(|x| x.1).eq([5]));
        let (b2, n) = run::<8, 8>(&mut p);
        assert!(b2[..n].iter().map(|x| x.1).eq([7]));
        assert!(p.finish(b[0].0, true) && p.finish(a[0].0, true) && p.finish(b2[0].0, true));
        let mut done = [(0u64, 0u32); 7];
        let mut k = 0;
        p.reap(|c| {
            done[k] = (c.page, c.seq);
            k += 1;
        });
        done.sort_unstable();
        assert_eq!((k, done), (7, [(4, 1), (5, 1), (5, 2), (6, 1), (7, 1), (20, 1), (21, 1)]));
        assert!(p.idle());
    }

    #[test]
    fn random_pages_in_consecutive_slots_are_one_run() {
        let mut p: ArrayPool<8> = ArrayPool::new();
        for (page, slot) in [(907u64, 40u64), (3, 41), (55, 42), (12, 43), (8, 7)] {
            fill_at(&mut p, page, 1, slot);
        }
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([40, 41, 42, 43]), "the run is of store slots, not pages");
        assert!(p.pending(907) && p.pending(12) && !p.pending(40), "pending is asked by page");
        let (out, n) = run::<8, 8>(&mut p);
        assert!(out[..n].iter().map(|x| x.1).eq([7]));
    }

    #[test]
    fn a_slot_handed_out_again_waits_for_the_write_still_going_to_it() {
        let mut p: ArrayPool<8> = ArrayPool::new();
        // Page 1 goes to slot 5; it is written again (to slot 6) and slot 5, freed, goes to page 2.
        fill_at(&mut p, 1, 1, 5);
        let (a, n) = run::<8, 8>(&mut p);
        assert_eq!(n, 1);
        fill_at(&mut p, 1, 2, 6);
        fill_at(&mut p, 2, 1, 5);
        // Another writer takes slot 6 but must not write page 2 into slot 5 while page 1's old write still goes there.
        let (b, n) = run::<8, 8>(&mut p);
        assert!(b[..n].iter().map(|x| x.1).eq([6]));
        assert_eq!(run::<8, 8>(&mut p).1, 0);
        assert!(p.finish(a[0].0, true));
        let (c, n) = run::<8, 8>(&mut p);
        assert!(c[..n].iter().map(|x| x.1).eq([5]));
        assert!(p.finish(b[0].0, true) && p.finish(c[0].0, true));
        assert!(p.idle());
    }

    #[test]
    fn the_fifo_wraps_around() {
        let mut p: ArrayPool<3> = ArrayPool::new();
        for round in 0..10u32 {
            let (at, _) = fill(&mut p, u64::from(round), round);
            let got = p.take_next();
            assert!(got.is_some());
            let (w, page) = got.unwrap_or((usize::MAX, u64::MAX));
            assert_eq!((w, page), (at, u64::from(round)));
            assert!(p.finish(w, true));
            p.reap(|c| assert_eq!(c.seq, round));
        }
        assert!(p.idle());
    }
}
