// SPDX-License-Identifier: GPL-2.0

//! The local copies, written behind (dissertation §6.2.4: the page goes to network memory, and asynchronously to
//! the local disk). The device's worker hands each written page to [`LocalCopies::submit`], which copies it into one
//! of [`SLOTS`] page buffers and queues it with the store slot the device chose for it (coopswap/proto's `slots`: the
//! page's own, or with `store_layout log` the next free one); [`WRITERS`] writers — work items on the device's own
//! `WQ_MEM_RECLAIM` queue, so that they make progress while the worker waits for them — each take the next run of
//! queued buffers for consecutive slots in FIFO order and write it to the local store, with one I/O in flight each. A
//! later write to a slot never overtakes an earlier one: a writer does not take a slot that the other is writing.
//! Completions reach the page map when the worker next calls [`LocalCopies::reap`] (or [`LocalCopies::wait_page`] /
//! [`LocalCopies::wait_idle`], when it needs a copy that is still being written). The buffers' state machine, and that
//! ordering rule, are coopswap/proto's `writebehind::Pool` (host-tested, with a model check of writers finishing in any
//! order).
//!
//! A write the store refuses is tried again (coopswap/proto's `writebehind::Retry`: 10 ms, doubling, up to 1 s apart,
//! 10 tries) while its buffers stay queued, so the pages stay readable and the device slows down instead of losing
//! local copies to a store that lacks memory or space for a moment. Every try runs in a NOIO scope with the memalloc
//! reserves (PF_MEMALLOC): without it, an allocation the store makes (zram's, for one) would enter direct reclaim,
//! which cannot swap (NOIO), is not allowed to OOM-kill (no __GFP_FS), and so waits forever for the swap-out that is
//! waiting for this writer. Tried in the lab: the hog of coopswap-swap hung with the first try outside that scope.
//!
//! Locks: the worker calls in with the device state lock held; the writers never take it (each has its own handle
//! on the store), so the worker may wait for them.

use super::core_logic::pagemap::PageRecord;
use super::core_logic::wire::PAGE_SIZE;
use super::core_logic::writebehind::{Completion, Pool, Retry, Slot};
use super::device::Stats;
use super::overcast::blk::{LocalStore, Memalloc, OwnedQueue, RUN_PAGES};
use kernel::new_condvar;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, CondVar, Mutex};
use kernel::time::delay::fsleep;
use kernel::time::Delta;
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};

/// Page buffers per device (1 MiB): local writes that may be behind the network stores at once. With 64 the
/// worker waited for a free buffer 17,251 times in a 300-s memory hog (bench-coopswap, 2026-11-27), each wait
/// holding up the reads behind it for a local disk write; with 256, 11,703 times for more pages, and the hog moved
/// 1.15x the swap pages (Documentation/coopswap.md).
pub(crate) const SLOTS: usize = 256;
const PAGE: u64 = PAGE_SIZE as u64;
/// Local writes in flight at once. One was not enough: a single writer managed about 100 writes a second against a
/// local disk that allows 150 (the lab's model, Documentation/coopswap.md), and the worker waited for buffers.
pub(crate) const WRITERS: usize = 2;
// One work item per writer (`work0`, `work1` and their `WorkItem` impls below).
const _: () = assert!(WRITERS == 2);

/// The write-behind of one device.
#[pin_data]
pub(crate) struct LocalCopies {
    /// The buffers' states, on the heap (a few KiB: no stack frame should carry them).
    #[pin]
    pool: Mutex<Pool<KVec<Slot>, KVec<u16>>>,
    /// Signalled whenever a buffer finishes.
    #[pin]
    changed: CondVar,
    #[pin]
    work0: Work<LocalCopies, 0>,
    #[pin]
    work1: Work<LocalCopies, 1>,
    /// Each writer's own handle on the local store and run list (writer `i` uses `writers[i]` only).
    writers: KVec<Pin<KBox<Mutex<Writer>>>>,
    /// Whether the store failed a write every try (the writers share it).
    #[pin]
    retry: Mutex<Retry>,
    /// One buffer per slot; the pool's state says who may touch it (the worker while `Filling`, a writer while
    /// `Writing`), so these locks are never contended.
    bufs: KVec<Pin<KBox<Mutex<KVec<u8>>>>>,
    wq: Arc<OwnedQueue>,
    name: CString,
    /// The store's path, for messages.
    path: CString,
    stats: Arc<Stats>,
    /// `local_hold`: the writers leave the queue alone while set.
    held: Atomic<bool>,
    /// Buffers were queued since the writers were last started ([`LocalCopies::start`]).
    unstarted: Atomic<bool>,
}

/// What one writer works with: its handle on the local store (with the store's run pages) and the list of the run
/// it writes ([`RUN_PAGES`] entries of (buffer, store slot): 2 KiB, on the heap rather than the writer's stack).
struct Writer {
    store: LocalStore,
    run: KVec<(usize, u64)>,
}

impl_has_work! {
    impl HasWork<Self, 0> for LocalCopies { self.work0 }
    impl HasWork<Self, 1> for LocalCopies { self.work1 }
}

impl WorkItem<0> for LocalCopies {
    type Pointer = Arc<LocalCopies>;

    fn run(this: Arc<LocalCopies>) {
        this.write_queued(0);
    }
}

impl WorkItem<1> for LocalCopies {
    type Pointer = Arc<LocalCopies>;

    fn run(this: Arc<LocalCopies>) {
        this.write_queued(1);
    }
}

impl LocalCopies {
    /// Writer `writer`: writes runs of queued buffers until there is none it may take (nothing queued, or the oldest
    /// one's store slot is being written by the other writer, which comes back for it when it finishes its own run).
    fn write_queued(&self, writer: usize) {
        let Some(writer) = self.writers.get(writer) else { return };
        let mut guard = writer.lock();
        let Writer { store, run } = &mut *guard;
        loop {
            if self.held.load(Relaxed) {
                break;
            }
            // Buffers queued one after the other for consecutive store slots go out as one write.
            let n = self.pool.lock().take_run(run);
            let Some(taken) = run.get(..n).filter(|t| !t.is_empty()) else { break };
            let ok = self.write_tried(store, taken);
            {
                let mut pool = self.pool.lock();
                for &(at, _) in taken {
                    pool.finish(at, ok);
                }
            }
            self.changed.notify_all();
        }
    }

    /// Starts the writers (already queued or running is fine: a running writer that found nothing to take has left
    /// the work's pending state, so this queues it again).
    fn kick(self: &Arc<Self>) {
        let _ = self.wq.queue().enqueue::<_, 0>(self.clone());
        let _ = self.wq.queue().enqueue::<_, 1>(self.clone());
    }

    /// Writes `taken` (buffer, store slot) — consecutive slots, oldest first — to the local store, trying again
    /// while the store refuses it for a moment (see the module's description). Returns whether it was written.
    fn write_tried(&self, store: &mut LocalStore, taken: &[(usize, u64)]) -> bool {
        let first = taken.first().map_or(0, |t| t.1);
        let last = taken.last().map_or(0, |t| t.1);
        let name = self.name.to_str().unwrap_or("coopswap");
        let path = self.path.to_str().unwrap_or("?");
        // The local copies of swapped-out pages: no I/O from our allocations, no reclaim, reserves allowed.
        let _scope = Memalloc::enter(true);
        let mut failures = 0u32;
        loop {
            let res = self.write_run(store, taken);
            self.stats.local_ios.fetch_add(1, Relaxed);
            let err = match res {
                Ok(()) => {
                    if self.retry.lock().ended(true) {
                        pr_info!("{}: local store {} takes writes again\n", name, path);
                    } else if failures > 0 {
                        let tries = failures.saturating_add(1);
                        pr_info!("{}: local store write of slots {}..={} done after {} tries\n", name, first, last, tries);
                    }
                    return true;
                }
                Err(e) => e,
            };
            failures = failures.saturating_add(1);
            let delay = self.retry.lock().delay_ms(failures);
            match delay {
                Some(ms) => {
                    if failures == 1 {
                        pr_warn!(
                            "{}: local store write of slots {}..={} to {} failed ({:?}); trying again for up to 3 s, the pages stay readable meanwhile\n",
                            name, first, last, path, err
                        );
                    }
                    self.stats.local_write_retries.fetch_add(1, Relaxed);
                    fsleep(Delta::from_millis(i64::from(ms)));
                }
                None => {
                    let newly = self.retry.lock().ended(false);
                    let then = if newly {
                        "; later writes get one try each until the store works again: check it (space, memory, health)"
                    } else {
                        ""
                    };
                    pr_err!(
                        "{}: local store write of slots {}..={} to {} failed ({:?}, {} tries); those pages have only their repository copy until written again{}\n",
                        name, first, last, path, err, failures, then
                    );
                    // Counted here, when it happens, not when the device next meets the completion: the request
                    // may already have failed on another page, and the counter must not wait for the next I/O.
                    let pages = u64::try_from(taken.len()).unwrap_or(u64::MAX);
                    self.stats.local_write_errors.fetch_add(pages, Relaxed);
                    return false;
                }
            }
        }
    }

    /// Writes `taken` (buffer, store slot) — consecutive slots, oldest first — to the local store with one I/O.
    fn write_run(&self, store: &mut LocalStore, taken: &[(usize, u64)]) -> Result {
        let pos = taken.first().and_then(|&(_, slot)| slot.checked_mul(PAGE)).ok_or(EINVAL)?;
        store
            .write_run(pos, taken.len(), |i, dst| {
                let buf = taken.get(i).and_then(|&(at, _)| self.bufs.get(at));
                match buf {
                    Some(buf) => {
                        let buf = buf.lock();
                        let ok = buf.len() == dst.len();
                        if ok {
                            dst.copy_from_slice(&buf);
                        }
                        ok
                    }
                    None => false,
                }
            })
    }

    /// The write-behind of device `name` over the local store at `path` (opened once more for each writer), with its
    /// own workqueue.
    pub(crate) fn new(name: &CStr, path: &CStr, stats: Arc<Stats>) -> Result<Arc<Self>> {
        let slots = KVec::from_elem(Slot::Free, SLOTS, GFP_KERNEL)?;
        let pool = Pool::with(slots, KVec::from_elem(0u16, SLOTS, GFP_KERNEL)?).ok_or(EINVAL)?;
        let mut writers = KVec::with_capacity(WRITERS, GFP_KERNEL)?;
        for _ in 0..WRITERS {
            let mut store = LocalStore::open(path)?;
            store.enable_runs()?;
            let run = KVec::from_elem((0usize, 0u64), RUN_PAGES, GFP_KERNEL)?;
            let w = Writer { store, run };
            writers.push(KBox::pin_init(new_mutex!(w, "coopswap::localcopy::writer"), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let mut bufs = KVec::with_capacity(SLOTS, GFP_KERNEL)?;
        for _ in 0..SLOTS {
            let mut b = KVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
            b.resize(PAGE_SIZE, 0u8, GFP_KERNEL)?;
            bufs.push(KBox::pin_init(new_mutex!(b, "coopswap::localcopy::buf"), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let qname = CString::try_from_fmt(fmt!("{}-local", name.to_str().unwrap_or("coopswap")))?;
        let wq = Arc::new(OwnedQueue::new(&qname)?, GFP_KERNEL)?;
        let name = CString::try_from(name)?;
        let path = CString::try_from(path)?;
        Arc::pin_init(
            pin_init!(LocalCopies {
                pool <- new_mutex!(pool, "coopswap::localcopy::pool"),
                changed <- new_condvar!("coopswap::localcopy::changed"),
                work0 <- new_work!("coopswap::localcopy::work0"),
                work1 <- new_work!("coopswap::localcopy::work1"),
                writers,
                retry <- new_mutex!(Retry::new(), "coopswap::localcopy::retry"),
                bufs,
                wq,
                name,
                path,
                stats,
                held: Atomic::new(false),
                unstarted: Atomic::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// The writers' workqueue (the device flushes it when it goes away, after the last request).
    pub(crate) fn queue(&self) -> &Arc<OwnedQueue> {
        &self.wq
    }

    fn apply(&self, records: &mut [PageRecord], c: Completion) {
        // A failed write was counted (and logged) by the writer when it gave up.
        let rec = usize::try_from(c.page).ok().and_then(|i| records.get_mut(i));
        if let Some(rec) = rec {
            // A stale completion (the page was written again or discarded since) is ignored by the record.
            rec.complete_local(c.seq, c.ok);
        }
    }

    /// Queues `data` (one page) as the local copy of write `seq` of `page`, to go to store slot `local`. Waits while
    /// every buffer is queued or being written. Completions met on the way are applied to `records`.
    pub(crate) fn submit(
        self: &Arc<Self>,
        page: u64,
        seq: u32,
        local: u64,
        data: &[u8],
        records: &mut [PageRecord],
    ) -> Result {
        let at = {
            let mut pool = self.pool.lock();
            loop {
                match pool.claim() {
                    Some((at, done)) => {
                        if let Some(c) = done {
                            self.apply(records, c);
                        }
                        break at;
                    }
                    None => {
                        // Every buffer is queued or being written: the writers must be running.
                        self.kick();
                        self.stats.local_waits.fetch_add(1, Relaxed);
                        self.changed.wait(&mut pool);
                    }
                }
            }
        };
        let copied = match self.bufs.get(at) {
            Some(buf) if data.len() == PAGE_SIZE => {
                buf.lock().copy_from_slice(data);
                true
            }
            _ => false,
        };
        {
            let mut pool = self.pool.lock();
            if !copied || !pool.queue(at, page, seq, local) {
                pool.release(at);
                return Err(EIO);
            }
        }
        self.stats.local_behind.fetch_add(1, Relaxed);
        self.unstarted.store(true, Relaxed);
        Ok(())
    }

    /// Starts the writers if buffers were queued since they were last started. The worker calls it once the writes
    /// it admitted together are queued rather than once per page: fewer wakeups, and a writer finds their pages there
    /// to merge. (bench-coopswap measured the same random-write throughput either way, within its noise.)
    pub(crate) fn start(self: &Arc<Self>) {
        if self.unstarted.xchg(false, Relaxed) {
            self.kick();
        }
    }

    /// Applies the completions of finished local writes to `records`.
    pub(crate) fn reap(&self, records: &mut [PageRecord]) {
        let mut pool = self.pool.lock();
        pool.reap(|c| self.apply(records, c));
    }

    /// Waits until no local write of `page` is queued or in progress, then applies the completions.
    pub(crate) fn wait_page(self: &Arc<Self>, page: u64, records: &mut [PageRecord]) {
        self.start();
        let mut pool = self.pool.lock();
        while pool.pending(page) {
            self.stats.local_waits.fetch_add(1, Relaxed);
            self.changed.wait(&mut pool);
        }
        pool.reap(|c| self.apply(records, c));
    }

    /// Waits until every queued local write is done, then applies the completions (a flush, a drain, an export).
    pub(crate) fn wait_idle(self: &Arc<Self>, records: &mut [PageRecord]) {
        self.start();
        let mut pool = self.pool.lock();
        while !pool.idle() {
            self.stats.local_waits.fetch_add(1, Relaxed);
            self.changed.wait(&mut pool);
        }
        pool.reap(|c| self.apply(records, c));
    }

    /// Holds (`true`) or releases the writers (the `local_hold` knob). Released, they write what queued up meanwhile.
    pub(crate) fn set_held(self: &Arc<Self>, on: bool) {
        self.held.store(on, Relaxed);
        if !on {
            self.kick();
        }
    }

    /// Whether the writers are held.
    pub(crate) fn held(&self) -> bool {
        self.held.load(Relaxed)
    }

    /// Local writes queued or in progress now.
    pub(crate) fn behind(&self) -> usize {
        self.pool.lock().in_flight()
    }
}
