// SPDX-License-Identifier: GPL-2.0

//! The block device `/dev/coopswap<N>` (dissertation §6.2.4): blk-mq requests are handed to a per-device worker on a
//! `WQ_MEM_RECLAIM` workqueue, which keeps a window of up to [`WINDOW`] requests that touch disjoint pages in
//! service: a request's repository requests are sent (pipelined on the connections) as soon as it is admitted, the
//! replies are collected one at a time, and each request completes when its own replies are in, so that new requests
//! go out while earlier ones are answered and a queue depth above 1 overlaps the network round trips, as nbd does.
//! Write-through:
//!
//! * **write**: each 4 KiB page goes, when a repository is placed for it, to that repository (the STOREs of one
//!   request are pipelined on the connections, then their replies collected) *and* to the local store, written
//!   behind (`localcopy.rs`: queued in a bounded pool of page buffers, written by a separate writer in order). The
//!   request completes when every page has a copy: the repository's acknowledgement, or — when no repository took
//!   the page — the finished local write. It fails only if neither copy could be made.
//! * **read**: from the repository that acknowledged the page's current content (FETCHes pipelined), checked against
//!   the CRC-32C recorded at write time; on any failure (dead, stalled, NOT_FOUND, wrong content) from the local copy
//!   (waiting for it if it is still being written behind).
//! * **flush**: waits for every local write behind, then flushes the local store.
//! * **discard / write-zeroes**: the pages are forgotten (read as zeroes) and dropped at their repository.
//!
//! The page map is one `PageRecord` per device page, allocated when the device is switched on, so the I/O path
//! never allocates memory.

use super::core_logic::crc32c::crc32c;
use super::core_logic::mapfile::{
    ImportError, MapError, MapExporter, MapHeader, MapImporter, MapSink, RepoAddr, RepoEntry, HEADER_LEN, RECORD_LEN,
    REPO_ENTRY_LEN, TRAILER_LEN,
};
use super::core_logic::pagemap::{PageFlags, PageRecord, ReadPlan, StoreOutcome, WritePlan, NO_LOCAL, NO_REPO};
use super::core_logic::slots::{words_for, Layout, Slots};
use super::core_logic::placement::{place, RepoFlags, RepoInfo, MAX_REPOS};
use super::core_logic::window::{Span, Window, WINDOW};
use super::core_logic::wire::{op, status, Capability, ReplyHeader, PAGE_SIZE};
use super::localcopy::LocalCopies;
use super::overcast::blk::{self, Disk, LocalStore, Memalloc, OwnedQueue, RqInfo, RqOp, SeqFile};
use super::overcast::fmt::Show;
use super::repo::Repo;
use kernel::block::mq::{self, Operations, TagSet};
use kernel::new_mutex;
use kernel::new_spinlock;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, ArcBorrow, Mutex, SpinLock};
use kernel::time::msecs_to_jiffies;
use kernel::workqueue::{impl_has_delayed_work, impl_has_work, new_delayed_work, new_work, DelayedWork, Work, WorkItem};

/// Requests in flight per device (blk-mq tags), and the size of the hand-off ring.
pub(crate) const QUEUE_DEPTH: usize = 64;
/// Most repository requests outstanding before the worker collects replies.
const MAX_PENDING: usize = 256;
/// Most requests the worker admits under the device's lock before it lets the window empty and releases the lock.
const ROUND: usize = 256;
const PAGE: u64 = PAGE_SIZE as u64;

/// Cumulative counters of a device, in 4 KiB pages unless named otherwise. They survive power cycles.
pub(crate) struct Stats {
    pub(crate) reads: Atomic<u64>,
    pub(crate) writes: Atomic<u64>,
    pub(crate) remote_reads: Atomic<u64>,
    pub(crate) local_reads: Atomic<u64>,
    pub(crate) zero_reads: Atomic<u64>,
    pub(crate) remote_stores: Atomic<u64>,
    pub(crate) store_full: Atomic<u64>,
    pub(crate) store_failed: Atomic<u64>,
    pub(crate) fetch_fallbacks: Atomic<u64>,
    pub(crate) local_write_errors: Atomic<u64>,
    pub(crate) discards: Atomic<u64>,
    pub(crate) io_errors: Atomic<u64>,
    /// Pages whose local copy was written behind the request's completion.
    pub(crate) local_behind: Atomic<u64>,
    /// Times the worker waited for the write-behind (all buffers busy, a read or a write whose only copy was still
    /// being written, a flush).
    pub(crate) local_waits: Atomic<u64>,
    /// Writes the write-behind issued to the local store (a run of consecutive pages is one).
    pub(crate) local_ios: Atomic<u64>,
    /// Local writes the write-behind tried again after its store refused them for a moment.
    pub(crate) local_write_retries: Atomic<u64>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            reads: Atomic::new(0),
            writes: Atomic::new(0),
            remote_reads: Atomic::new(0),
            local_reads: Atomic::new(0),
            zero_reads: Atomic::new(0),
            remote_stores: Atomic::new(0),
            store_full: Atomic::new(0),
            store_failed: Atomic::new(0),
            fetch_fallbacks: Atomic::new(0),
            local_write_errors: Atomic::new(0),
            discards: Atomic::new(0),
            io_errors: Atomic::new(0),
            local_behind: Atomic::new(0),
            local_waits: Atomic::new(0),
            local_ios: Atomic::new(0),
            local_write_retries: Atomic::new(0),
        }
    }
}

fn inc(c: &Atomic<u64>) {
    c.add(1u64, Relaxed);
}

/// Requests handed from `queue_rq` to the worker (FIFO, fixed capacity = tags, so pushing never allocates).
pub(crate) struct Ring {
    slots: [Option<ARef<mq::Request<CoopDev>>>; QUEUE_DEPTH],
    head: usize,
    len: usize,
}

impl Ring {
    fn new() -> Self {
        Self { slots: [const { None }; QUEUE_DEPTH], head: 0, len: 0 }
    }

    fn push(&mut self, rq: ARef<mq::Request<CoopDev>>) -> Result<(), ARef<mq::Request<CoopDev>>> {
        if self.len >= QUEUE_DEPTH {
            return Err(rq);
        }
        let at = (self.head + self.len) % QUEUE_DEPTH;
        match self.slots.get_mut(at) {
            Some(slot) => {
                *slot = Some(rq);
                self.len += 1;
                Ok(())
            }
            None => Err(rq),
        }
    }

    fn pop(&mut self) -> Option<ARef<mq::Request<CoopDev>>> {
        if self.len == 0 {
            return None;
        }
        let rq = self.slots.get_mut(self.head).and_then(Option::take);
        self.head = (self.head + 1) % QUEUE_DEPTH;
        self.len -= 1;
        rq
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Store,
    Fetch,
    Drop,
}

/// A repository request whose reply is outstanding.
#[derive(Clone, Copy)]
struct Pending {
    tag: u64,
    repo: u16,
    kind: Kind,
    page: u64,
    /// Offset of the page in the request (FETCH: where the data goes).
    off: u32,
    seq: u32,
    /// Index of the request in the window.
    ri: usize,
}

/// The requests in service (`core_logic::window`), with what the worker needs of each.
type InService = Window<(ARef<mq::Request<CoopDev>>, RqInfo), Error>;

trait InServiceExt {
    fn rq(&self, ri: usize) -> Option<&mq::Request<CoopDev>>;
    fn info(&self, ri: usize) -> Option<RqInfo>;
}

impl InServiceExt for InService {
    fn rq(&self, ri: usize) -> Option<&mq::Request<CoopDev>> {
        self.get(ri).map(|(rq, _)| &**rq)
    }

    fn info(&self, ri: usize) -> Option<RqInfo> {
        self.get(ri).map(|(_, info)| *info)
    }
}

/// Everything the worker uses; behind one mutex (configfs takes it to add/remove repositories and to render state).
pub(crate) struct IoState {
    pub(crate) name: CString,
    records: KVVec<PageRecord>,
    /// Which local store slots hold a page's copy (`PageRecord::local`).
    slots: Slots<KVVec<u64>>,
    /// Where a write's local copy goes (`store_layout`): its page's slot, or the next free one.
    layout: Layout,
    store: LocalStore,
    /// The local copies written behind (their own writers and store handles).
    local: Arc<LocalCopies>,
    pub(crate) repos: KVec<Repo>,
    pub(crate) infos: KVec<RepoInfo>,
    seed: u64,
    /// The page being written (filled from the request, sent in a STORE, written to the local store). Nothing else
    /// writes it: collecting replies in the middle of a write (when `MAX_PENDING` is reached) must not change it.
    buf: KVec<u8>,
    /// Where replies (FETCH data), local-copy reads and zero pages land on their way into a read request.
    rbuf: KVec<u8>,
    pend: KVec<Pending>,
    next_tag: u64,
    stats: Arc<Stats>,
    /// `auto_reconnect`: failed repositories are reconnected automatically (off unless the administrator says so).
    pub(crate) auto_reconnect: bool,
    /// The repository an automatic reconnection attempt is running for.
    retrying: Option<u16>,
    /// A repository failed since the retry timer was last armed: the worker arms it (`DevIo::arm_retry`).
    retry_unarmed: bool,
    /// The device is being switched off: the retry timer is not armed any more.
    stopping: bool,
}

/// A repository's `down_reason` when it refused our token: not retried automatically.
const DENIED: &str = "token refused (DENIED)";

/// What a drain did (`drain INDEX` in configfs reports it).
#[derive(Default)]
pub(crate) struct DrainCount {
    /// Pages now on another repository.
    pub(crate) moved: u64,
    /// Pages no other repository could take: in the local store only.
    pub(crate) local_only: u64,
    /// Pages whose content neither copy had (only after earlier local-store write errors).
    pub(crate) lost: u64,
}

/// The device's I/O side: the blk-mq queue data.
#[pin_data]
pub(crate) struct DevIo {
    #[pin]
    ring: SpinLock<Ring>,
    #[pin]
    work: Work<DevIo>,
    /// An automatic reconnection attempt (`auto_reconnect`), on its own queue, when the first failed repository's
    /// wait is over (a timer: attempts do not wait for the device's I/O).
    #[pin]
    retry: DelayedWork<DevIo, 1>,
    #[pin]
    pub(crate) state: Mutex<IoState>,
    /// Held through a whole reconnection (connect, old pages dropped, swapped in), so that the administrator's
    /// `reconnect INDEX` and an automatic attempt never both connect (the second would drop pages the first
    /// already stored again).
    #[pin]
    reconnecting: Mutex<()>,
    wq: Arc<OwnedQueue>,
    retry_wq: Arc<OwnedQueue>,
}

impl_has_work! {
    impl HasWork<Self> for DevIo { self.work }
}
impl_has_delayed_work! {
    impl HasDelayedWork<Self, 1> for DevIo { self.retry }
}

impl WorkItem<1> for DevIo {
    type Pointer = Arc<DevIo>;

    /// The retry timer fired: reconnects the first failed repository whose wait is over; on failure schedules its
    /// next attempt (the wait doubles). Then arms the timer for the next wait that is left, if any.
    fn run(this: Arc<DevIo>) {
        let idx = {
            let mut st = this.state.lock();
            if !st.auto_reconnect || st.stopping || st.retrying.is_some() {
                return;
            }
            let Some(i) = st.repos.iter().position(Repo::retry_due) else {
                // Early by the timer's rounding, or the repository was removed or reconnected meanwhile.
                DevIo::arm_retry(&this, &mut st);
                return;
            };
            let Ok(idx) = u16::try_from(i) else { return };
            if let Some(r) = st.repos.get_mut(i) {
                r.retry_at = None;
            }
            st.retrying = Some(idx);
            idx
        };
        let res = reconnect_repo(&this, idx);
        let mut st = this.state.lock();
        st.retrying = None;
        DevIo::log_retry(&mut st, idx, res);
        DevIo::arm_retry(&this, &mut st);
    }
}

impl DevIo {
    /// Logs an automatic attempt's outcome; after a failure, schedules the repository's next one.
    fn log_retry(st: &mut IoState, idx: u16, res: Result<(u64, u64)>) {
        let dev = st.name.to_str().unwrap_or("coopswap");
        let Some(r) = st.repos.get(usize::from(idx)) else { return };
        let addr = r.addr;
        match res {
            Ok((max, stale)) => pr_info!(
                "{}: repository {} ({}) back in service automatically ({} pages allowed; {} old pages dropped there)\n",
                dev, idx, Show(&addr), max, stale
            ),
            Err(e) if e == EISCONN => {}
            Err(e) => {
                let wait = r.retry_ms;
                pr_info!(
                    "{}: repository {} ({}) not back yet (errno {}); next automatic attempt in {} s\n",
                    dev, idx, Show(&addr), e.to_errno(), wait / 1000
                );
                if let Some(r) = st.repos.get_mut(usize::from(idx)) {
                    r.schedule_retry();
                }
            }
        }
    }
}

/// Puts repository `idx` of `io`, out of service, back in service: connects (without the device's lock, so that its
/// I/O goes on), drops the pages it still holds from before (the page map forgot them), then swaps the connection
/// in. Returns (pages it allows, old pages dropped). `EISCONN` if it is in service; the connection's errno or
/// `EACCES` otherwise (nothing changed). The administrator's `reconnect INDEX` and `auto_reconnect` both use it.
pub(crate) fn reconnect_repo(io: &DevIo, idx: u16) -> Result<(u64, u64)> {
    let _one = io.reconnecting.lock();
    let (addr, client, cap, pages, name) = {
        let st = io.state.lock();
        let r = st.repos.get(usize::from(idx)).ok_or(ENOENT)?;
        if r.down_reason.is_none() {
            pr_err!("{}: repository {} is in service; nothing to reconnect\n", st.dev(), idx);
            return Err(EISCONN);
        }
        (r.addr, r.client_id, r.cap, st.pages(), CString::try_from(&*st.name)?)
    };
    let name = name.to_str().unwrap_or("coopswap");
    // Connecting can take the whole time-out: without the device's lock, so that its I/O goes on.
    let mut repo = Repo::connect(addr, client, cap).inspect_err(|e| {
        let why = if *e == EACCES { "client id or token refused" } else { "is coopswap-repod running there?" };
        pr_err!("{}: repository {} ({}) not reconnected (errno {}): {}\n", name, idx, Show(&addr), e.to_errno(), why);
    })?;
    let stale = repo.drop_all(pages).inspect_err(|e| {
        pr_err!("{}: repository {}: dropping its old pages failed (errno {}); not reconnected\n", name, idx, e.to_errno());
    })?;
    let max = repo.max_pages;
    let _noio = Memalloc::enter(false);
    io.state.lock().reconnect(idx, repo)?;
    Ok((max, stale))
}

impl WorkItem for DevIo {
    type Pointer = Arc<DevIo>;

    fn run(this: Arc<DevIo>) {
        // A request that overlaps one in service waits (first in the queue) until that one is done.
        let mut carry: Option<(ARef<mq::Request<CoopDev>>, RqInfo)> = None;
        while this.serve(&mut carry) {}
        // A repository that failed meanwhile: its first automatic attempt is due after its wait.
        let mut st = this.state.lock();
        if st.retry_unarmed {
            DevIo::arm_retry(&this, &mut st);
        }
    }
}

impl DevIo {
    /// With `auto_reconnect` on: (re)arms the retry timer for the earliest failed repository's next attempt (the
    /// state lock held, so that switching off, which sets `stopping` under it, cannot miss a timer armed here).
    pub(crate) fn arm_retry(this: &Arc<DevIo>, st: &mut IoState) {
        st.retry_unarmed = false;
        if !st.auto_reconnect || st.stopping {
            return;
        }
        let Some(ms) = st.repos.iter().filter_map(Repo::retry_in_ms).min() else { return };
        let delay = msecs_to_jiffies(u32::try_from(ms).unwrap_or(u32::MAX)).max(1);
        this.retry_wq.rearm_delayed::<DevIo, 1>(this.clone(), delay);
    }

    /// One round under the device's lock: admits requests from the ring while the window has room (each one's
    /// repository requests are sent at once, pipelined behind those in flight), completes each request as soon as its
    /// own replies are in, and collects one reply at a time in between, so that new requests go out while earlier
    /// ones are answered (as nbd does). The round ends when the window is empty and the ring is, or after [`ROUND`]
    /// admissions: the lock is then released with nothing outstanding (configfs takes it between rounds). Returns
    /// whether it admitted a request.
    fn serve(&self, carry: &mut Option<(ARef<mq::Request<CoopDev>>, RqInfo)>) -> bool {
        // Swap-out must make progress when memory is short: no I/O from our allocations; reserves once a write is in.
        let _noio = Memalloc::enter(false);
        let mut reserves: Option<Memalloc> = None;
        let mut w = InService::new();
        let mut admitted = 0usize;
        let mut st = self.state.lock();
        loop {
            let mut fresh = 0u64;
            if admitted < ROUND {
                let mut ring = self.ring.lock();
                while admitted < ROUND && w.busy() < WINDOW {
                    let (rq, info) = match carry.take() {
                        Some(c) => c,
                        None => match ring.pop() {
                            Some(rq) => {
                                let info = blk::rq_info(&rq);
                                (rq, info)
                            }
                            None => break,
                        },
                    };
                    // Refused when it overlaps a request in service: it stays first in line.
                    match w.admit((rq, info), Span { pos: info.pos, len: info.len }) {
                        Ok(ri) => {
                            fresh |= 1 << ri;
                            admitted += 1;
                        }
                        Err((first, _)) => {
                            *carry = Some(first);
                            break;
                        }
                    }
                }
            }
            if fresh != 0 {
                let write = |ri: usize| fresh & (1 << ri) != 0 && w.info(ri).is_some_and(|i| i.op == RqOp::Write);
                if reserves.is_none() && (0..WINDOW).any(write) {
                    reserves = Some(Memalloc::enter(true));
                }
                st.begin(&mut w, fresh);
            }
            st.finish(&mut w);
            if w.is_empty() {
                if fresh == 0 {
                    break;
                }
                continue;
            }
            if !st.collect_step(&mut w) {
                // Cannot happen (a request in service waits for a reply): complete them rather than wait forever.
                pr_err!("{}: requests in service with no repository request outstanding; completing them\n", st.dev());
                w.forget_replies();
                st.finish(&mut w);
            }
        }
        admitted > 0
    }
}

/// The blk-mq driver type of coopswap devices.
pub(crate) struct CoopDev;

#[vtable]
impl Operations for CoopDev {
    type QueueData = Arc<DevIo>;

    fn queue_rq(io: ArcBorrow<'_, DevIo>, rq: ARef<mq::Request<Self>>, _is_last: bool) -> Result {
        // May run in atomic context: only hand the request to the worker.
        if io.ring.lock().push(rq).is_err() {
            return Err(EBUSY);
        }
        let io: Arc<DevIo> = io.into();
        let wq = io.wq.clone();
        // Already queued is fine: the running or pending worker will find the request in the ring.
        let _ = wq.queue().enqueue::<_, 0>(io);
        Ok(())
    }

    fn commit_rqs(_io: ArcBorrow<'_, DevIo>) {}

    fn complete(rq: ARef<mq::Request<Self>>) {
        let _ = mq::Request::end_ok(rq);
    }
}

/// A switched-on device: its disk, its I/O side and its workqueue.
pub(crate) struct Device {
    disk: Option<Disk<CoopDev>>,
    pub(crate) io: Arc<DevIo>,
    wq: Arc<OwnedQueue>,
    retry_wq: Arc<OwnedQueue>,
    /// The local write-behind, reachable without the state lock (`local_hold`).
    pub(crate) local: Arc<LocalCopies>,
}

impl Drop for Device {
    fn drop(&mut self) {
        // Remove the disk first (it waits for every request, which the worker completes), then wait for the worker to
        // leave, then for the local writers to write what is behind, so that the last references to the I/O side and
        // the workqueues are dropped here and not by a worker itself (which could not destroy its own workqueue).
        // Held writers (local_hold) are released first: a request waiting for a local copy must finish for the disk
        // to go, and what is behind is written before the device goes.
        // No automatic reconnection from here on: the timer is not armed again, a pending one is cancelled and a
        // running attempt waited for.
        self.io.state.lock().stopping = true;
        blk::cancel_delayed_sync::<DevIo, 1>(&self.io);
        self.local.set_held(false);
        drop(self.disk.take());
        self.wq.flush();
        self.retry_wq.flush();
        self.local.queue().flush();
    }
}

impl Device {
    /// Switches a device on: opens the local store, allocates the page map, creates `/dev/<name>`.
    pub(crate) fn new(
        name: &CStr,
        pages: u64,
        store_path: &CStr,
        stats: Arc<Stats>,
        auto_reconnect: bool,
        layout: Layout,
    ) -> Result<Self> {
        let store = LocalStore::open(store_path).inspect_err(|e| {
            pr_err!(
                "{}: cannot open the local store {} (errno {}): give a block device or a file that exists\n",
                name.to_str().unwrap_or("?"),
                store_path.to_str().unwrap_or("?"),
                e.to_errno()
            );
        })?;
        let need = pages.checked_mul(PAGE).ok_or(EINVAL)?;
        if store.size() < need {
            pr_err!(
                "{}: the local store {} has {} bytes, the device needs {}: make it larger or the device smaller\n",
                name.to_str().unwrap_or("?"),
                store_path.to_str().unwrap_or("?"),
                store.size(),
                need
            );
            return Err(ENOSPC);
        }
        let n = usize::try_from(pages).map_err(|_| EINVAL)?;
        let mut records = KVVec::with_capacity(n, GFP_KERNEL).inspect_err(|_| {
            pr_err!("no memory for the page map of {} pages: make the device smaller\n", pages);
        })?;
        for p in 0..pages {
            records.push(PageRecord::new(p), GFP_KERNEL)?;
        }
        let slots = new_slots(pages)?;
        let mut buf = KVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
        buf.resize(PAGE_SIZE, 0u8, GFP_KERNEL)?;
        let mut rbuf = KVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
        rbuf.resize(PAGE_SIZE, 0u8, GFP_KERNEL)?;
        let pend = KVec::with_capacity(MAX_PENDING, GFP_KERNEL)?;
        let repos = KVec::with_capacity(MAX_REPOS, GFP_KERNEL)?;
        let infos = KVec::with_capacity(MAX_REPOS, GFP_KERNEL)?;
        let local = LocalCopies::new(name, store_path, stats.clone()).inspect_err(|e| {
            pr_err!("{}: cannot set up the local write-behind (errno {})\n", name.to_str().unwrap_or("?"), e.to_errno());
        })?;
        let local_handle = local.clone();
        let state = IoState {
            name: CString::try_from(name)?,
            records,
            slots,
            layout,
            store,
            local,
            repos,
            infos,
            seed: super::core_logic::placement::mix64(pages),
            buf,
            rbuf,
            pend,
            next_tag: 1,
            stats,
            auto_reconnect,
            retrying: None,
            retry_unarmed: false,
            stopping: false,
        };
        let wq = Arc::new(OwnedQueue::new(name)?, GFP_KERNEL)?;
        let io_wq = wq.clone();
        let rname = CString::try_from_fmt(fmt!("{}-retry", name.to_str().unwrap_or("coopswap")))?;
        let retry_wq = Arc::new(OwnedQueue::new(&rname)?, GFP_KERNEL)?;
        let io_retry_wq = retry_wq.clone();
        let io = Arc::pin_init(
            pin_init!(DevIo {
                ring <- new_spinlock!(Ring::new(), "coopswap::ring"),
                work <- new_work!("coopswap::work"),
                retry <- new_delayed_work!("coopswap::retry"),
                state <- new_mutex!(state, "coopswap::state"),
                reconnecting <- new_mutex!((), "coopswap::reconnecting"),
                wq: io_wq,
                retry_wq: io_retry_wq,
            }),
            GFP_KERNEL,
        )?;
        let tagset = Arc::pin_init(TagSet::new(1, QUEUE_DEPTH as u32, 1), GFP_KERNEL)?;
        let disk = Disk::new(name, pages * (PAGE / 512), tagset, io.clone())?;
        Ok(Self { disk: Some(disk), io, wq, retry_wq, local: local_handle })
    }

    /// Openers of the disk (swapon, mkswap, …).
    pub(crate) fn openers(&self) -> u32 {
        self.disk.as_ref().map_or(0, |d| d.openers())
    }

    /// Drops the disk's cached pages (after a page-map import into a device that was open).
    pub(crate) fn drop_cache(&self) {
        if let Some(d) = self.disk.as_ref() {
            d.drop_cache();
        }
    }
}

impl IoState {
    fn dev(&self) -> &str {
        self.name.to_str().unwrap_or("coopswap")
    }

    /// Adds a connected repository. Returns its index.
    pub(crate) fn add_repo(&mut self, repo: Repo, id: u64) -> Result<usize> {
        if self.repos.len() >= MAX_REPOS {
            return Err(ENOSPC);
        }
        self.repos.push(repo, GFP_KERNEL)?;
        self.infos.push(RepoInfo::new(id, RepoFlags::UP), GFP_KERNEL)?;
        Ok(self.repos.len() - 1)
    }

    /// Takes repository `idx` out of service (administrator's removal or failure): no new pages go there, no page
    /// is read from there; the local copies serve its pages.
    pub(crate) fn repo_down(&mut self, idx: u16, why: &'static str) {
        let dev = self.name.to_str().unwrap_or("coopswap");
        if let Some(r) = self.repos.get_mut(usize::from(idx)) {
            let first = r.down_reason.is_none();
            if first {
                pr_err!(
                    "{}: repository {} ({}) is out of service: {}; its pages are read from the local store; when it is back: echo 'reconnect {}' > repos, or let auto_reconnect do it ({} frames, {} bytes sent on the connection; the requests in flight began after frame {}, byte {})\n",
                    dev, idx, Show(&r.addr), why, idx, r.sent_frames, r.sent_bytes, r.mark.0, r.mark.1
                );
            }
            r.conn = None;
            if first {
                r.down_reason = Some(why);
                // A failure is retried (if auto_reconnect is on); a refused token is not.
                if why != DENIED {
                    r.schedule_retry();
                    self.retry_unarmed = true;
                }
            }
        }
        if let Some(i) = self.infos.get_mut(usize::from(idx)) {
            i.flags = RepoFlags(RepoFlags::DEAD);
        }
        // Forget the remote copies: every page of that repository is now served by its local copy.
        let mut lost = 0u64;
        for rec in self.records.iter_mut() {
            if !rec.repo_gone(idx) {
                lost += 1;
            }
        }
        if lost > 0 {
            pr_err!("{}: {} pages had no local copy (local store write errors) and are lost\n", dev, lost);
        }
    }

    /// Takes repository `idx` out of service for good (the administrator's `remove INDEX`): not retried.
    pub(crate) fn remove_repo(&mut self, idx: u16) {
        self.repo_down(idx, "removed by the administrator");
        if let Some(r) = self.repos.get_mut(usize::from(idx)) {
            r.retry_at = None;
        }
    }

    /// Number of pages that currently have a valid copy only at repository `idx` (would be lost without the local
    /// copy; 0 with write-through working).
    pub(crate) fn pages_on(&self, idx: u16) -> u64 {
        self.records
            .iter()
            .filter(|r| r.repo == idx && r.flags.has(PageFlags::REMOTE_VALID))
            .count() as u64
    }

    /// Starts draining repository `idx` (the administrator's `drain INDEX`): from now on no new page is placed there,
    /// reads still are. `ENOENT`: no such repository; `ENOTCONN`: it is out of service already (its pages are read
    /// from the local store; nothing to drain).
    pub(crate) fn drain_begin(&mut self, idx: u16) -> Result {
        let dev = self.name.to_str().unwrap_or("coopswap");
        let info = self.infos.get_mut(usize::from(idx)).ok_or(ENOENT)?;
        if !info.can_read() {
            let why = self.repos.get(usize::from(idx)).and_then(|r| r.down_reason).unwrap_or("down");
            pr_err!("{}: repository {} is out of service already ({}); it holds no page in use: nothing to drain\n", dev, idx, why);
            return Err(ENOTCONN);
        }
        info.flags = RepoFlags(info.flags.0 | RepoFlags::DRAINING);
        Ok(())
    }

    /// Whether repository `idx` is being drained.
    pub(crate) fn draining(&self, idx: u16) -> bool {
        self.infos.get(usize::from(idx)).is_some_and(|i| i.flags.0 & RepoFlags::DRAINING != 0 && i.can_read())
    }

    /// Moves up to `max` pages off draining repository `idx` (called with the state lock held, between rounds: no
    /// repository request is outstanding). Each page's content comes from its local copy when that matches the
    /// recorded CRC, else from `idx` itself (FETCH); it is stored on the repository placement now picks (the draining
    /// one excluded) or, when none can take it, kept in the local store only; then dropped at `idx`. The page map is
    /// updated through the same `PageRecord` calls as a write, so a page always has a copy that reads back right.
    pub(crate) fn drain_step(&mut self, idx: u16, max: usize, out: &mut DrainCount) -> Result {
        // The drain reads and rewrites local copies itself: nothing may be behind.
        self.local.wait_idle(&mut self.records);
        let mut done = 0;
        let mut i = 0usize;
        while done < max && self.draining(idx) {
            let Some(at) = self.records.iter().skip(i).position(|r| r.repo == idx && r.flags.has(PageFlags::REMOTE_VALID))
            else {
                break;
            };
            i += at;
            let page = self.records.get(i).map(|r| r.page).ok_or(EIO)?;
            self.move_page(idx, page, out)?;
            i += 1;
            done += 1;
        }
        Ok(())
    }

    /// Ends a drain: repository `idx` (holding none of our pages now) is taken out of service and disconnected.
    pub(crate) fn drain_end(&mut self, idx: u16) {
        if let Some(r) = self.repos.get_mut(usize::from(idx)) {
            r.conn = None;
            r.down_reason.get_or_insert("drained by the administrator");
            r.retry_at = None;
        }
        if let Some(i) = self.infos.get_mut(usize::from(idx)) {
            i.flags = RepoFlags(RepoFlags::DEAD);
        }
        for rec in self.records.iter_mut() {
            rec.repo_gone(idx);
        }
    }

    /// Puts repository `idx`, out of service, back in service over the new connection `repo` (the administrator's
    /// `reconnect INDEX`; the caller connected and dropped its stale pages without the lock). Its counters are kept.
    /// `EISCONN` if it is in service (nothing changed; `repo` is closed).
    pub(crate) fn reconnect(&mut self, idx: u16, repo: Repo) -> Result {
        let old = self.repos.get_mut(usize::from(idx)).ok_or(ENOENT)?;
        if old.down_reason.is_none() {
            return Err(EISCONN);
        }
        let counters = old.counters;
        *old = repo;
        old.counters = counters;
        let info = self.infos.get_mut(usize::from(idx)).ok_or(ENOENT)?;
        info.flags = RepoFlags(RepoFlags::UP);
        Ok(())
    }

    /// Local copies queued or being written behind right now.
    pub(crate) fn local_queue(&self) -> usize {
        self.local.behind()
    }

    /// Number of pages of the device.
    pub(crate) fn pages(&self) -> u64 {
        self.records.len() as u64
    }

    /// One request/reply on repository `idx` outside a round (the drain's; nothing else is outstanding there).
    fn call(&mut self, idx: u16, opcode: u8, page: u64, payload: bool) -> Result<ReplyHeader> {
        let tag = self.tag();
        let crc = if payload { crc32c(&self.buf) } else { 0 };
        let r = self.repos.get_mut(usize::from(idx)).ok_or(EIO)?;
        let data = if payload { Some((&self.buf[..], crc)) } else { None };
        let res = r.send(opcode, tag, page, data).and_then(|()| r.recv(&mut self.rbuf));
        match res {
            Ok(h) if h.tag == tag => Ok(h),
            Ok(_) => {
                self.repo_down(idx, "reply with an unknown tag");
                Err(EPROTO)
            }
            Err(e) => {
                self.repo_down(idx, if e == ETIMEDOUT { "timed out" } else { "connection lost" });
                Err(e)
            }
        }
    }

    /// A page move that took `slot` for a page whose record was `old` did not happen: a slot the page did not have
    /// before goes back.
    fn give_back(&mut self, slot: Option<u64>, old: &PageRecord) {
        if let Some(s) = slot.filter(|&s| s != old.local) {
            let _ = self.slots.free(s);
        }
    }

    fn move_page(&mut self, idx: u16, page: u64, out: &mut DrainCount) -> Result {
        let old = *self.record(page)?;
        // The local copy stays in its slot (a page that has none gets one; given back if the move fails).
        let slot = if old.local != NO_LOCAL { Some(old.local) } else { self.slots.take(self.layout, page) };
        let pos = slot.and_then(|s| s.checked_mul(PAGE));
        // The content: the local copy if it is the current one, else the draining repository's.
        let local_ok = old.flags.has(PageFlags::LOCAL_VALID)
            && pos.is_some_and(|pos| self.store.read(pos, &mut self.buf).is_ok())
            && crc32c(&self.buf) == old.crc;
        if !local_ok {
            let h = self.call(idx, op::FETCH, page, false)?;
            let good = h.status == status::DATA && h.value == page && h.csum == old.crc && crc32c(&self.rbuf) == old.crc;
            if !good {
                pr_err!("{}: page {}: repository {} no longer has it and the local copy does not match; it stays unreadable\n", self.dev(), page, idx);
                self.give_back(slot, &old);
                self.record(page)?.remote_copy_bad();
                out.lost += 1;
                return Ok(());
            }
            self.buf.copy_from_slice(&self.rbuf);
        }
        let to = place(self.seed, page, &self.infos, 1u64 << u32::from(idx).min(63));
        let plan = self.record(page)?.begin_write(old.crc, to, slot);
        // The local copy: already right, or (re)written now from the fetched content.
        let local = local_ok || pos.is_some_and(|pos| self.store.write(pos, &self.buf).is_ok());
        self.record(page)?.complete_local(plan.seq, local);
        if let Some(t) = plan.store_to {
            let outcome = match self.call(t, op::STORE, page, true) {
                Ok(h) if h.status == status::OK => StoreOutcome::Stored,
                Ok(h) if h.status == status::FULL => {
                    if let Some(i) = self.infos.get_mut(usize::from(t)) {
                        i.flags = RepoFlags(i.flags.0 | RepoFlags::FULL);
                    }
                    StoreOutcome::Full
                }
                Ok(h) if h.status == status::DENIED => {
                    self.repo_down(t, DENIED);
                    StoreOutcome::Failed
                }
                _ => StoreOutcome::Failed,
            };
            if outcome == StoreOutcome::Stored {
                if let Some(r) = self.repos.get_mut(usize::from(t)) {
                    r.counters.stores += 1;
                }
            }
            self.record(page)?.complete_remote(plan.seq, outcome);
        }
        let now = *self.record(page)?;
        if !now.flags.any(PageFlags::LOCAL_VALID | PageFlags::REMOTE_VALID) {
            // Neither new copy was made: keep the page where it is (the drain cannot finish; the caller reports it).
            *self.record(page)? = old;
            self.give_back(slot, &old);
            pr_err!("{}: page {}: could not be moved off repository {} (no other repository took it and the local store write failed)\n", self.dev(), page, idx);
            return Err(EIO);
        }
        if now.flags.has(PageFlags::REMOTE_VALID) {
            out.moved += 1;
        } else {
            out.local_only += 1;
        }
        // The copy at the draining repository is no longer referenced: free its space there.
        if plan.drop_stale == Some(idx) {
            self.call(idx, op::DROP, page, false)?;
        }
        Ok(())
    }

    /// Starts the requests of `w` named in `fresh` (a bit per index): sends their repository requests, does their
    /// local I/O, queues their local copies. A request that cannot start fails in `w`.
    fn begin(&mut self, w: &mut InService, fresh: u64) {
        let stats = self.stats.clone();
        self.local.reap(&mut self.records);
        for ri in (0..WINDOW).filter(|ri| fresh & (1 << ri) != 0) {
            if let Err(e) = self.start(w, ri, &stats) {
                w.fail(ri, e);
            }
        }
        // The local copies are queued: the writers take them (as runs) while the replies come in.
        self.local.start();
    }

    /// Completes every request of `w` whose replies are all in; a write's outcome is decided here (`finish_write`).
    fn finish(&mut self, w: &mut InService) {
        let mut from = 0;
        while let Some(ri) = w.next_answered(from) {
            from = ri + 1;
            if let Some(info) = w.info(ri).filter(|i| i.op == RqOp::Write) {
                if let Err(e) = self.finish_write(&info) {
                    w.fail(ri, e);
                }
            }
            let Some(((rq, _), res)) = w.complete(ri) else { continue };
            if res.is_err() {
                inc(&self.stats.io_errors);
            }
            if let Err(rq) = blk::rq_end(rq, res) {
                // Cannot happen: the worker holds the only reference. Complete it rather than leak it.
                pr_err!("{}: a request had extra references when it finished; completing it anyway\n", self.dev());
                drop(rq);
            }
        }
    }

    fn start(&mut self, w: &mut InService, ri: usize, stats: &Stats) -> Result {
        let info = w.info(ri).ok_or(EIO)?;
        if info.op == RqOp::Flush {
            // Everything written before the flush is in the local store, then the store's cache is flushed.
            self.local.wait_idle(&mut self.records);
            return self.store.flush();
        }
        if info.pos % PAGE != 0 || u64::from(info.len) % PAGE != 0 {
            return Err(EIO);
        }
        let first = info.pos / PAGE;
        let count = u64::from(info.len) / PAGE;
        match first.checked_add(count) {
            Some(end) if end <= self.records.len() as u64 => {}
            _ => return Err(EIO),
        }
        match info.op {
            RqOp::Read => self.read(w, ri, first, count, stats),
            RqOp::Write => self.write(w, ri, first, count, stats),
            RqOp::Discard | RqOp::WriteZeroes => self.discard(w, ri, first, count, stats),
            _ => Err(EOPNOTSUPP),
        }
    }

    fn record(&mut self, page: u64) -> Result<&mut PageRecord> {
        let i = usize::try_from(page).map_err(|_| EIO)?;
        self.records.get_mut(i).ok_or(EIO)
    }

    /// Sends one repository request and remembers it; collects replies first if too many are outstanding. A STORE
    /// carries `self.buf` with its CRC-32C `payload` (computed once, by the caller, for the page map too).
    fn send(&mut self, w: &mut InService, p: Pending, payload: Option<u32>) -> Result {
        // Replies applied here may answer other requests: they complete when the worker next looks (`finish`).
        while self.pend.len() >= MAX_PENDING && self.collect_step(w) {}
        let opcode = match p.kind {
            Kind::Store => op::STORE,
            Kind::Fetch => op::FETCH,
            Kind::Drop => op::DROP,
        };
        let idle = self.pend.iter().all(|q| q.repo != p.repo);
        let Some(r) = self.repos.get_mut(usize::from(p.repo)) else { return Err(EIO) };
        if idle {
            r.mark = (r.sent_frames, r.sent_bytes);
        }
        let data = payload.map(|crc| (&self.buf[..], crc));
        match r.send(opcode, p.tag, p.page, data) {
            Ok(()) => {
                self.pend.push_within_capacity(p).map_err(|_| EIO)?;
                w.sent(p.ri);
                Ok(())
            }
            Err(e) => {
                self.repo_down(p.repo, "send failed");
                Err(e)
            }
        }
    }

    fn tag(&mut self) -> u64 {
        self.next_tag = self.next_tag.wrapping_add(1);
        self.next_tag
    }

    /// Reads page `slot` of the local store into the request at `off`.
    fn read_local(&mut self, rq: &mq::Request<CoopDev>, slot: u64, off: u32) -> Result {
        let pos = slot.checked_mul(PAGE).ok_or(EIO)?;
        self.store.read(pos, &mut self.rbuf).inspect_err(|e| {
            pr_err!("{}: local store read at {} failed (errno {})\n", self.dev(), pos, e.to_errno());
        })?;
        if blk::rq_write_data(rq, off, &self.rbuf) != PAGE_SIZE {
            return Err(EIO);
        }
        inc(&self.stats.local_reads);
        Ok(())
    }

    /// Starts a read: FETCHes are sent (their replies are applied by `collect`), local and zero pages are copied now.
    fn read(&mut self, w: &mut InService, ri: usize, first: u64, count: u64, stats: &Stats) -> Result {
        let mut res = Ok(());
        for i in 0..count {
            let page = first + i;
            let off = u32::try_from(i * PAGE).map_err(|_| EIO)?;
            let rec = *self.record(page)?;
            inc(&stats.reads);
            let r = match rec.read_plan(&self.infos) {
                ReadPlan::Remote { repo, .. } => {
                    let p = Pending { tag: self.tag(), repo, kind: Kind::Fetch, page, off, seq: rec.seq, ri };
                    match self.send(w, p, None) {
                        Ok(()) => Ok(()),
                        Err(_) => self.fallback(w.rq(ri).ok_or(EIO)?, page, off),
                    }
                }
                ReadPlan::Local { slot } => self.read_local(w.rq(ri).ok_or(EIO)?, slot, off),
                ReadPlan::Unmapped => {
                    self.rbuf.fill(0);
                    inc(&stats.zero_reads);
                    let rq = w.rq(ri).ok_or(EIO)?;
                    if blk::rq_write_data(rq, off, &self.rbuf) == PAGE_SIZE { Ok(()) } else { Err(EIO) }
                }
                // The only copy is the local one, still being written behind (its repository failed meanwhile).
                ReadPlan::Wait if rec.flags.has(PageFlags::LOCAL_INFLIGHT) => {
                    let rq = w.rq(ri).ok_or(EIO)?;
                    self.read_behind(rq, page, off)
                }
                ReadPlan::Wait | ReadPlan::Lost => {
                    pr_err!("{}: page {} has no readable copy\n", self.dev(), page);
                    Err(EIO)
                }
            };
            if r.is_err() {
                res = r;
            }
        }
        res
    }

    /// Waits for the local write of `page` that is behind, then reads the local copy it made.
    fn read_behind(&mut self, rq: &mq::Request<CoopDev>, page: u64, off: u32) -> Result {
        let local = self.local.clone();
        local.wait_page(page, &mut self.records);
        let rec = *self.record(page)?;
        if rec.flags.has(PageFlags::LOCAL_VALID) {
            self.read_local(rq, rec.local, off)
        } else {
            pr_err!("{}: page {}: its repository copy is gone and its local write failed\n", self.dev(), page);
            Err(EIO)
        }
    }

    /// A remote read failed: serve the local copy if the record has one (waiting for it if it is being written).
    fn fallback(&mut self, rq: &mq::Request<CoopDev>, page: u64, off: u32) -> Result {
        inc(&self.stats.fetch_fallbacks);
        let rec = *self.record(page)?;
        if rec.flags.has(PageFlags::LOCAL_VALID) {
            self.read_local(rq, rec.local, off)
        } else if rec.flags.has(PageFlags::LOCAL_INFLIGHT) {
            self.read_behind(rq, page, off)
        } else {
            pr_err!("{}: page {}: the repository copy failed and there is no local copy\n", self.dev(), page);
            Err(EIO)
        }
    }

    /// Starts a write: each page is sent to its repository (STORE, reply applied by `collect`) and queued for the
    /// local store (written behind). `finish_write` decides the outcome once the replies are in.
    fn write(&mut self, w: &mut InService, ri: usize, first: u64, count: u64, stats: &Stats) -> Result {
        for i in 0..count {
            let page = first + i;
            let off = u32::try_from(i * PAGE).map_err(|_| EIO)?;
            if blk::rq_read_data(w.rq(ri).ok_or(EIO)?, off, &mut self.buf) != PAGE_SIZE {
                return Err(EIO);
            }
            inc(&stats.writes);
            let crc = crc32c(&self.buf);
            let repo = place(self.seed, page, &self.infos, 0);
            let plan = self.begin_write(page, crc, repo)?;
            if let Some(old) = plan.drop_stale {
                let p = Pending { tag: self.tag(), repo: old, kind: Kind::Drop, page, off, seq: plan.seq, ri };
                let _ = self.send(w, p, None);
            }
            if let Some(r) = plan.store_to {
                let p = Pending { tag: self.tag(), repo: r, kind: Kind::Store, page, off, seq: plan.seq, ri };
                if self.send(w, p, Some(crc)).is_err() {
                    self.record(page)?.complete_remote(plan.seq, StoreOutcome::Failed);
                    inc(&stats.store_failed);
                }
            }
            let local = self.local.clone();
            let queued = plan
                .local_to
                .is_some_and(|slot| local.submit(page, plan.seq, slot, &self.buf, &mut self.records).is_ok());
            if !queued {
                inc(&stats.local_write_errors);
                self.record(page)?.complete_local(plan.seq, false);
            }
        }
        Ok(())
    }

    /// Begins a write of new content (`crc`) of `page`, placed on `repo`: the slot of its old local copy is freed and
    /// the new copy goes where the device's layout says (`fixed`: the page's own slot; `log`: the next free one, so
    /// that writes following one another are one run for the writers whatever their pages). As many slots as pages:
    /// a page always finds one, since its own old slot is freed first (no slot would only mean a broken slot map: the
    /// page then gets no local copy).
    fn begin_write(&mut self, page: u64, crc: u32, repo: Option<u16>) -> Result<WritePlan> {
        let i = usize::try_from(page).map_err(|_| EIO)?;
        let rec = self.records.get_mut(i).ok_or(EIO)?;
        // `NO_LOCAL` is no slot: freeing it changes nothing.
        let _ = self.slots.free(rec.local);
        let slot = self.slots.take(self.layout, page);
        if slot.is_none() {
            pr_err!(
                "{}: page {}: no free local store slot ({} of {} in use); the page gets no local copy\n",
                self.name.to_str().unwrap_or("coopswap"),
                page,
                self.slots.used(),
                self.slots.capacity()
            );
        }
        Ok(rec.begin_write(crc, repo, slot))
    }

    /// After the request's replies are in: a write succeeds if every one of its pages has at least one copy. (Replies
    /// that failed only lose the remote copy; the local copy holds the page.)
    fn finish_write(&mut self, info: &RqInfo) -> Result {
        let first = info.pos / PAGE;
        let count = u64::from(info.len) / PAGE;
        for page in first..first + count {
            let mut rec = *self.record(page)?;
            if !rec.flags.any(PageFlags::LOCAL_VALID | PageFlags::REMOTE_VALID)
                && rec.flags.has(PageFlags::LOCAL_INFLIGHT)
            {
                // No repository took the page: the request completes when its local copy is written.
                let local = self.local.clone();
                local.wait_page(page, &mut self.records);
                rec = *self.record(page)?;
            }
            let any = PageFlags::LOCAL_VALID
                | PageFlags::REMOTE_VALID;
            if !rec.flags.any(any) {
                pr_err!("{}: page {}: neither the local store nor a repository took it\n", self.dev(), page);
                return Err(EIO);
            }
        }
        Ok(())
    }

    fn discard(&mut self, w: &mut InService, ri: usize, first: u64, count: u64, stats: &Stats) -> Result {
        for page in first..first + count {
            inc(&stats.discards);
            let local = self.record(page)?.local;
            let _ = self.slots.free(local);
            if let Some(repo) = self.record(page)?.discard() {
                let alive = self.infos.get(usize::from(repo)).is_some_and(|i| i.can_read());
                if alive {
                    let p = Pending { tag: self.tag(), repo, kind: Kind::Drop, page, off: 0, seq: 0, ri };
                    let _ = self.send(w, p, None);
                }
            }
        }
        Ok(())
    }

    /// Awaits the next reply from the repository of the oldest outstanding request (replies come in any order,
    /// matched by tag) and applies it; if that connection failed, fails every request outstanding on it. A read whose
    /// page can be served by neither copy fails its request in `w`; writes are judged by `finish_write`. Returns
    /// `false` if nothing was outstanding.
    fn collect_step(&mut self, w: &mut InService) -> bool {
        let Some(first) = self.pend.first().copied() else { return false };
        let repo = first.repo;
        let got = match self.repos.get_mut(usize::from(repo)) {
            Some(r) if r.conn.is_some() => r.recv(&mut self.rbuf).map_err(|e| e.to_errno()),
            _ => Err(-(ENOTCONN.to_errno())),
        };
        match got {
            Ok(h) => match self.pend.iter().position(|p| p.repo == repo && p.tag == h.tag) {
                Some(at) => {
                    if let Ok(p) = self.pend.remove(at) {
                        self.apply_to(w, p, Some(h));
                    }
                }
                None => {
                    pr_err!(
                        "{}: repository {} sent a reply (status {}, tag {}, code {}) that matches no request in flight ({} in flight)\n",
                        self.dev(), repo, h.status, h.tag, h.code, self.pend.len()
                    );
                    // Its requests fail at the next step (the connection is closed).
                    self.repo_down(repo, "reply with an unknown tag")
                }
            },
            Err(e) => {
                if self.infos.get(usize::from(repo)).is_some_and(|i| i.can_read()) {
                    self.repo_down(repo, if e == ETIMEDOUT.to_errno() { "timed out" } else { "connection lost" });
                }
                // Every request outstanding on this repository failed.
                while let Some(at) = self.pend.iter().position(|p| p.repo == repo) {
                    match self.pend.remove(at) {
                        Ok(p) => self.apply_to(w, p, None),
                        Err(_) => break,
                    }
                }
            }
        }
        true
    }

    /// Applies one reply to its request in service; a FETCH that cannot be served fails its (read) request.
    fn apply_to(&mut self, w: &mut InService, p: Pending, h: Option<ReplyHeader>) {
        w.answered(p.ri);
        let res = match w.rq(p.ri) {
            Some(rq) => self.apply(rq, p, h),
            None => Err(EIO),
        };
        if let Err(e) = res {
            if p.kind == Kind::Fetch {
                w.fail(p.ri, e);
            }
        }
    }

    /// Applies one reply (`None`: the request failed) to the page map; for a FETCH, delivers the page or falls back.
    fn apply(&mut self, rq: &mq::Request<CoopDev>, p: Pending, h: Option<ReplyHeader>) -> Result {
        let stats = self.stats.clone();
        match p.kind {
            Kind::Store => {
                let outcome = match h.map(|h| h.status) {
                    Some(status::OK) => {
                        inc(&stats.remote_stores);
                        if let Some(r) = self.repos.get_mut(usize::from(p.repo)) {
                            r.counters.stores += 1;
                        }
                        StoreOutcome::Stored
                    }
                    Some(status::FULL) => {
                        inc(&stats.store_full);
                        if let Some(r) = self.repos.get_mut(usize::from(p.repo)) {
                            r.counters.full += 1;
                        }
                        if let Some(i) = self.infos.get_mut(usize::from(p.repo)) {
                            i.flags = RepoFlags(i.flags.0 | RepoFlags::FULL);
                        }
                        StoreOutcome::Full
                    }
                    Some(status::DENIED) => {
                        self.repo_down(p.repo, DENIED);
                        StoreOutcome::Failed
                    }
                    _ => {
                        inc(&stats.store_failed);
                        if let Some(r) = self.repos.get_mut(usize::from(p.repo)) {
                            r.counters.failed += 1;
                        }
                        StoreOutcome::Failed
                    }
                };
                self.record(p.page)?.complete_remote(p.seq, outcome);
                Ok(())
            }
            Kind::Fetch => {
                let rec = *self.record(p.page)?;
                let good = matches!(h, Some(h) if h.status == status::DATA
                    && h.value == p.page
                    && rec.seq == p.seq
                    && rec.verify_fetched(p.repo, h.csum));
                if good {
                    if blk::rq_write_data(rq, p.off, &self.rbuf) != PAGE_SIZE {
                        return Err(EIO);
                    }
                    inc(&stats.remote_reads);
                    if let Some(r) = self.repos.get_mut(usize::from(p.repo)) {
                        r.counters.fetches += 1;
                    }
                    return Ok(());
                }
                if let Some(h) = h {
                    if h.status == status::DENIED {
                        self.repo_down(p.repo, DENIED);
                    } else {
                        // NOT_FOUND (e.g. the repository restarted) or content that is not the current page.
                        self.record(p.page)?.remote_copy_bad();
                    }
                }
                self.fallback(rq, p.page, p.off)
            }
            Kind::Drop => Ok(()),
        }
    }
}

/// Parses a repository address, `A.B.C.D:PORT` or `[IPV6]:PORT` (the no_std `RepoAddr::parse`, host-tested).
pub(crate) fn parse_addr(s: &str) -> Result<RepoAddr> {
    RepoAddr::parse(s).ok_or(EINVAL)
}

/// Parses a 128-bit token written as 32 hex digits.
pub(crate) fn parse_token(s: &str) -> Result<Capability> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return Err(EINVAL);
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = b.get(2 * i).and_then(|c| (*c as char).to_digit(16)).ok_or(EINVAL)?;
        let lo = b.get(2 * i + 1).and_then(|c| (*c as char).to_digit(16)).ok_or(EINVAL)?;
        *o = (hi * 16 + lo) as u8;
    }
    if out == [0u8; 16] {
        return Err(EINVAL);
    }
    Ok(Capability(out))
}

/// What a page-map import found, for the log line.
pub(crate) struct ImportSummary {
    pub(crate) pages: u64,
    pub(crate) repos: u16,
    pub(crate) repos_down: u16,
    pub(crate) remote: u64,
    pub(crate) local_ok: u64,
    pub(crate) local_bad: u64,
    pub(crate) unreadable: u64,
}

/// The slot map of a device of `pages` pages: one store slot per page, all free.
fn new_slots(pages: u64) -> Result<Slots<KVVec<u64>>> {
    let n = usize::try_from(words_for(pages)).map_err(|_| EINVAL)?;
    let words = KVVec::from_elem(0u64, n, GFP_KERNEL).inspect_err(|_| {
        pr_err!("no memory for the local store's slot map of {} pages: make the device smaller\n", pages);
    })?;
    Slots::with(words, pages).ok_or(EINVAL)
}

/// Collects an import tentatively: nothing of the device changes until the whole stream is checked.
struct ImportSink {
    device_pages: u64,
    header: Option<MapHeader>,
    repos: KVec<RepoEntry>,
    records: KVVec<PageRecord>,
    /// The store slots the map's records name (each one at most once).
    slots: Slots<KVVec<u64>>,
}

impl MapSink for ImportSink {
    type Error = Error;

    fn header(&mut self, h: &MapHeader) -> Result {
        if h.device_pages != self.device_pages {
            pr_err!(
                "page map import: the map is of a device of {} pages ({} MiB), this one has {} pages: set size_mib to match\n",
                h.device_pages,
                h.device_pages / 256,
                self.device_pages
            );
            return Err(EINVAL);
        }
        self.header = Some(*h);
        let n = usize::try_from(h.record_count).map_err(|_| EINVAL)?;
        self.records.reserve(n, GFP_KERNEL)?;
        Ok(())
    }

    fn repo(&mut self, e: &RepoEntry) -> Result {
        self.repos.push(*e, GFP_KERNEL)?;
        Ok(())
    }

    fn record(&mut self, r: &PageRecord) -> Result {
        // The local store is migrated with the map (§6.2.4), so the slots stay valid; each is one page's.
        if r.local != NO_LOCAL && !self.slots.mark(r.local) {
            pr_err!(
                "page map import: page {} names local store slot {}, which is beyond the device's {} slots or another page's\n",
                r.page, r.local, self.device_pages
            );
            return Err(EINVAL);
        }
        self.records.push_within_capacity(*r).map_err(|_| EINVAL)?;
        Ok(())
    }
}

fn map_err(what: &str, e: MapError) -> Error {
    let (why, at) = match e {
        MapError::Truncated => ("the file ends early (truncated)", None),
        MapError::BadMagic => ("not a coopswap page map", None),
        MapError::BadVersion(v) => ("unsupported format version", Some(u64::from(v))),
        MapError::BadHeader => ("bad header", None),
        MapError::BadRepo(i) => ("bad repository entry", Some(u64::from(i))),
        MapError::BadRecord(p) => ("bad page record for page", Some(p)),
        MapError::Unordered(p) => ("page records out of order at page", Some(p)),
        MapError::CountMismatch => ("more or fewer entries than the header says", None),
        MapError::BadChecksum => ("checksum mismatch (corrupted)", None),
        MapError::TrailingData => ("bytes after the end", None),
        MapError::InFlight(p) => ("I/O in flight (quiesce the device first) on page", Some(p)),
    };
    match at {
        Some(n) => pr_err!("page map {}: {} {}; nothing was changed\n", what, why, n),
        None => pr_err!("page map {}: {}; nothing was changed\n", what, why),
    }
    Error::from_errno(-e.errno())
}

impl IoState {
    /// Whether no page of the device has content (a fresh device: the only kind a map can be imported into).
    pub(crate) fn is_empty(&self) -> bool {
        self.records.iter().all(PageRecord::is_unmapped)
    }

    /// Exports the page map (§6.2.4) to `f`: the repositories (address, client id, capability), then one record per
    /// written page (repository, CRC, local copy). The device must be quiesced (no opener: nothing in flight);
    /// `EBUSY` if a record still has I/O in flight. Returns (records, repositories).
    pub(crate) fn export_map(&mut self, f: &mut SeqFile) -> Result<(u64, u16)> {
        // Every local copy written, so that the map records it.
        self.local.wait_idle(&mut self.records);
        let count = self.records.iter().filter(|r| !r.is_unmapped()).count() as u64;
        let repo_count = u16::try_from(self.repos.len()).map_err(|_| EINVAL)?;
        let header = MapHeader { device_pages: self.records.len() as u64, repo_count, record_count: count, seed: self.seed };
        let mut out: KVec<u8> = KVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
        let mut hb = [0u8; HEADER_LEN];
        let mut ex = MapExporter::new(&header, &mut hb).map_err(|e| map_err("export", e))?;
        out.extend_from_slice(&hb, GFP_KERNEL)?;
        for (i, (r, info)) in self.repos.iter().zip(self.infos.iter()).enumerate() {
            let e = RepoEntry {
                index: u16::try_from(i).map_err(|_| EINVAL)?,
                flags: RepoFlags(info.flags.0 & RepoFlags::ALL),
                addr: r.addr,
                cap: r.cap,
                client_id: r.client_id,
                repo_id: info.id,
            };
            let mut eb = [0u8; REPO_ENTRY_LEN];
            ex.repo(&e, &mut eb).map_err(|e| map_err("export", e))?;
            out.extend_from_slice(&eb, GFP_KERNEL)?;
        }
        for r in self.records.iter().filter(|r| !r.is_unmapped()) {
            let mut rb = [0u8; RECORD_LEN];
            ex.record(r, &mut rb).map_err(|e| map_err("export", e))?;
            if out.len() + RECORD_LEN > PAGE_SIZE {
                f.write_all(&out)?;
                out.clear();
            }
            out.extend_from_slice(&rb, GFP_KERNEL)?;
        }
        let mut tb = [0u8; TRAILER_LEN];
        ex.finish(&mut tb).map_err(|e| map_err("export", e))?;
        out.extend_from_slice(&tb, GFP_KERNEL)?;
        f.write_all(&out)?;
        Ok((count, repo_count))
    }

    /// Imports a page map exported by [`IoState::export_map`] (on this or another host) into this device, which must
    /// be fresh (no page written, no repository). The whole stream is read and checked first (format, version,
    /// checksum, device size): a bad map changes nothing (`EINVAL`). Then the map's repositories are connected with
    /// their client ids and capabilities (one that cannot be reached or refuses is entered out of service, its pages
    /// served by their local copies), every local copy the map names is checked against the page's CRC in the local
    /// store (a copy that does not match is dropped: such a page is read from its repository, or fails with EIO if it
    /// has no other copy, never returns wrong data), and the records are installed.
    pub(crate) fn import_map(&mut self, f: &mut SeqFile) -> Result<ImportSummary> {
        if !self.repos.is_empty() || !self.is_empty() {
            pr_err!("{}: a page map can only be imported into a fresh device (no repository, nothing written): power it off and on first\n", self.dev());
            return Err(EBUSY);
        }
        let mut sink = ImportSink {
            device_pages: self.records.len() as u64,
            header: None,
            repos: KVec::with_capacity(MAX_REPOS, GFP_KERNEL)?,
            records: KVVec::new(),
            slots: new_slots(self.records.len() as u64)?,
        };
        let mut imp = MapImporter::new();
        let mut chunk: KVec<u8> = KVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
        chunk.resize(PAGE_SIZE, 0u8, GFP_KERNEL)?;
        loop {
            let n = f.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            match imp.feed(chunk.get(..n).ok_or(EINVAL)?, &mut sink) {
                Ok(()) => {}
                Err(ImportError::Map(e)) => return Err(map_err("import", e)),
                Err(ImportError::Sink(e)) => return Err(e),
            }
        }
        imp.finish().map_err(|e| map_err("import", e))?;
        let header = sink.header.ok_or(EINVAL)?;

        // The map is valid: from here on the device takes it.
        let mut sum = ImportSummary {
            pages: sink.records.len() as u64,
            repos: header.repo_count,
            repos_down: 0,
            remote: 0,
            local_ok: 0,
            local_bad: 0,
            unreadable: 0,
        };
        self.seed = header.seed;
        self.slots = sink.slots;
        for e in sink.repos.iter() {
            let repo = match Repo::connect(e.addr, e.client_id, e.cap) {
                Ok(r) => r,
                Err(err) => {
                    pr_err!(
                        "{}: repository {} ({}) of the imported map is not reachable or refuses the client (errno {}); its pages are read from the local store\n",
                        self.dev(), e.index, Show(&e.addr), err.to_errno()
                    );
                    sum.repos_down += 1;
                    Repo::offline(e.addr, e.client_id, e.cap, "unreachable at import")
                }
            };
            let down = repo.conn.is_none();
            self.repos.push(repo, GFP_KERNEL)?;
            let flags = if down { RepoFlags::DEAD } else { RepoFlags::UP };
            self.infos.push(RepoInfo::new(e.repo_id, flags), GFP_KERNEL)?;
        }
        for r in sink.records.iter() {
            let mut rec = *r;
            if rec.repo != NO_REPO && self.repos.get(usize::from(rec.repo)).is_some_and(|x| x.conn.is_none()) {
                let _ = rec.repo_gone(rec.repo);
            }
            if rec.flags.has(PageFlags::LOCAL_VALID) {
                let ok = self.store.read(rec.local.saturating_mul(PAGE), &mut self.buf[..]).is_ok()
                    && crc32c(&self.buf) == rec.crc;
                if ok {
                    sum.local_ok += 1;
                } else {
                    sum.local_bad += 1;
                    rec.flags = PageFlags(rec.flags.0 & !PageFlags::LOCAL_VALID);
                }
            }
            if rec.flags.has(PageFlags::REMOTE_VALID) {
                sum.remote += 1;
            } else if !rec.flags.has(PageFlags::LOCAL_VALID) {
                sum.unreadable += 1;
            }
            let i = usize::try_from(rec.page).map_err(|_| EINVAL)?;
            if let Some(slot) = self.records.get_mut(i) {
                *slot = rec;
            }
        }
        Ok(sum)
    }
}
