// SPDX-License-Identifier: GPL-2.0

//! Block-device pieces the kernel crate's `block::mq` lacks, over the C helpers of rust/helpers/blk.c:
//!
//! * [`Disk`]: a blk-mq disk over a [`TagSet`] whose `block_device_operations` name this module as owner, so an open
//!   device (swapon, mkswap, an fd) pins the module and `rmmod` is refused with `EBUSY`; and it can tell how many
//!   openers it has. (The kernel crate's `GenDisk` leaves the owner NULL.)
//! * request access: [`rq_info`], [`rq_read_data`], [`rq_write_data`], [`rq_end`] (the kernel crate can end a request
//!   only with success);
//! * [`OwnedQueue`]: a `WQ_MEM_RECLAIM` workqueue, which makes progress when memory is short (swap-out), on which
//!   a delayed work item can be re-armed ([`OwnedQueue::rearm_delayed`]) and cancelled ([`cancel_delayed_sync`]),
//!   which the kernel crate's workqueue cannot do;
//! * [`Memalloc`]: a NOIO (and optionally memalloc-reserve) allocation scope;
//! * [`LocalStore`]: page-sized reads and writes on a file or block device (`O_DIRECT` when supported);
//! * [`SeqFile`]: a regular file read or written sequentially (a page-map export or import).

// Each module compiles the whole rust/overcast tree but uses only some of it.
#![allow(dead_code, unreachable_pub)]

use super::bindings;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::block::mq::{Operations, Request, TagSet};
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;
use kernel::time::Jiffies;
use kernel::workqueue::{HasDelayedWork, Queue, Work, WorkItem};

/// Operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RqOp {
    /// Read into the request's pages.
    Read,
    /// Write from the request's pages.
    Write,
    /// Cache flush.
    Flush,
    /// Discard (trim) of the range.
    Discard,
    /// Write zeroes over the range.
    WriteZeroes,
    /// Anything else (refused).
    Other,
}

/// What a request asks for.
#[derive(Clone, Copy, Debug)]
pub struct RqInfo {
    /// Operation.
    pub op: RqOp,
    /// Byte offset on the device.
    pub pos: u64,
    /// Length in bytes.
    pub len: u32,
    /// Write-zeroes: the caller wants the range kept allocated (`REQ_NOUNMAP`).
    pub no_unmap: bool,
}

/// One range of sectors of a discard or write-zeroes request ([`rq_ranges`]).
pub type RqRange = bindings::ovc_blk_range;

fn raw_rq<T: Operations>(rq: &Request<T>) -> *mut bindings::request {
    // `Request<T>` is `#[repr(transparent)]` over the C `struct request`.
    core::ptr::from_ref(rq).cast_mut().cast::<bindings::request>()
}

/// Operation, position and length of `rq`.
pub fn rq_info<T: Operations>(rq: &Request<T>) -> RqInfo {
    let mut info = bindings::ovc_blk_rq_info { op: 0, len: 0, pos: 0, no_unmap: 0 };
    // SAFETY: `rq` is a live request owned by the driver (we hold a reference); `info` is a valid out-pointer.
    unsafe { bindings::ovc_blk_rq_info(raw_rq(rq), &mut info) };
    let op = match info.op {
        bindings::OVC_BLK_OP_READ => RqOp::Read,
        bindings::OVC_BLK_OP_WRITE => RqOp::Write,
        bindings::OVC_BLK_OP_FLUSH => RqOp::Flush,
        bindings::OVC_BLK_OP_DISCARD => RqOp::Discard,
        bindings::OVC_BLK_OP_WRITE_ZEROES => RqOp::WriteZeroes,
        _ => RqOp::Other,
    };
    RqInfo { op, pos: info.pos, len: info.len, no_unmap: info.no_unmap != 0 }
}

/// The ranges of a discard or write-zeroes request into `out`: one per bio of a discard merged from several, else
/// the request's own. Returns how many; `E2BIG` if `out` is too short, `EINVAL` if it is empty.
pub fn rq_ranges<T: Operations>(rq: &Request<T>, out: &mut [RqRange]) -> Result<usize> {
    let max = u32::try_from(out.len()).unwrap_or(u32::MAX);
    // SAFETY: `rq` is a live request owned by the driver; `out` is valid for `max` entries and the helper writes
    // at most that many.
    let n = unsafe { bindings::ovc_blk_rq_ranges(raw_rq(rq), out.as_mut_ptr(), max) };
    usize::try_from(n).map_err(|_| Error::from_errno(n))
}

/// Copies the request's data from byte `off` into `buf` (a write request's payload). Returns the bytes copied,
/// less than `buf.len()` only at the end of the request.
pub fn rq_read_data<T: Operations>(rq: &Request<T>, off: u32, buf: &mut [u8]) -> usize {
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    // SAFETY: `rq` is live and owned by the driver; `buf` is valid for `len` writable bytes.
    let n = unsafe { bindings::ovc_blk_rq_copy(raw_rq(rq), off, buf.as_mut_ptr().cast::<c_void>(), len, 0) };
    n as usize
}

/// Copies `buf` into the request's data at byte `off` (a read request's result). Returns the bytes copied.
pub fn rq_write_data<T: Operations>(rq: &Request<T>, off: u32, buf: &[u8]) -> usize {
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    // SAFETY: `rq` is live and owned by the driver; with `to_rq` set the helper only reads `len` bytes of `buf`.
    let n = unsafe { bindings::ovc_blk_rq_copy(raw_rq(rq), off, buf.as_ptr().cast_mut().cast::<c_void>(), len, 1) };
    n as usize
}

/// Ends the request with `res`. Fails (giving the request back) if other references to it exist.
pub fn rq_end<T: Operations>(rq: ARef<Request<T>>, res: Result) -> Result<(), ARef<Request<T>>> {
    match res {
        Ok(()) => Request::end_ok(rq),
        Err(e) => {
            // SAFETY: `rq` is live and owned by the driver. The helper ends it only if the abstraction's refcount
            // shows that this `ARef` is the only reference (the same check `Request::end_ok` makes), and then
            // takes that reference over: we forget the `ARef` below so it is not released twice.
            let ret = unsafe { bindings::ovc_blk_rq_end_err(raw_rq(&rq), e.to_errno()) };
            if ret == 0 {
                core::mem::forget(rq);
                Ok(())
            } else {
                Err(rq)
            }
        }
    }
}

/// A blk-mq disk named `name`, added to the system on creation and removed when dropped.
///
/// Its fops name this module as owner: every opener holds a module reference, so the module cannot be unloaded
/// while the disk is open (e.g. used as swap).
pub struct Disk<T: Operations> {
    disk: NonNull<bindings::gendisk>,
    data: *mut c_void,
    _tagset: Arc<TagSet<T>>,
}

// SAFETY: the disk is driven through thread-safe block-layer calls; `data` is the foreign form of a `QueueData` that
// is `Send`, released once in `drop`.
unsafe impl<T: Operations> Send for Disk<T> where T::QueueData: Send {}
// SAFETY: `&Disk` only reads the opener count.
unsafe impl<T: Operations> Sync for Disk<T> where T::QueueData: Send {}

impl<T: Operations> Disk<T> {
    /// Creates and adds the disk: 4 KiB logical and physical blocks, discard in page units, `sectors` × 512 bytes.
    pub fn new(name: &CStr, sectors: u64, tagset: Arc<TagSet<T>>, queue_data: T::QueueData) -> Result<Self> {
        let data = queue_data.into_foreign();
        // `TagSet<T>` is `#[repr(transparent)]` over the C `struct blk_mq_tag_set`.
        let set = Arc::as_ptr(&tagset).cast::<bindings::blk_mq_tag_set>().cast_mut();
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `set` is a live, initialised tag set kept alive by `tagset` (stored in `Self`, dropped after the
        // disk); `data` is the queue data the Operations callbacks borrow, released only after the disk is removed;
        // `name` is NUL-terminated.
        let disk = unsafe { bindings::ovc_blk_disk_add(set, data, sectors, name.as_char_ptr(), &mut err) };
        match NonNull::new(disk) {
            Some(disk) => Ok(Self { disk, data, _tagset: tagset }),
            None => {
                // SAFETY: `data` came from `into_foreign` above and no disk uses it.
                drop(unsafe { T::QueueData::from_foreign(data) });
                Err(if err < 0 { Error::from_errno(err) } else { ENOMEM })
            }
        }
    }

    /// Number of openers of the whole disk.
    pub fn openers(&self) -> u32 {
        // SAFETY: `disk` is live until `drop`.
        unsafe { bindings::ovc_blk_disk_openers(self.disk.as_ptr()) }
    }

    /// Drops the clean pages of the disk's page cache, so that an opener's next buffered read goes to the device
    /// (after the device's content changed by other means than a write through the disk).
    pub fn drop_cache(&self) {
        // SAFETY: `disk` is live until `drop`; `invalidate_bdev` only drops clean, unmapped pages.
        unsafe { bindings::ovc_blk_disk_drop_cache(self.disk.as_ptr()) };
    }
}

impl<T: Operations> Drop for Disk<T> {
    fn drop(&mut self) {
        // SAFETY: `disk` was added in `new` and is removed once; `del_gendisk` waits for every request in flight,
        // so no callback borrows `data` afterwards.
        unsafe { bindings::ovc_blk_disk_remove(self.disk.as_ptr()) };
        // SAFETY: `data` came from `into_foreign` in `new` and is converted back exactly once, here.
        drop(unsafe { T::QueueData::from_foreign(self.data) });
    }
}

/// A workqueue of this module (`WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_UNBOUND`), destroyed (after draining) when dropped.
pub struct OwnedQueue(NonNull<bindings::workqueue_struct>);

// SAFETY: workqueues are thread-safe.
unsafe impl Send for OwnedQueue {}
// SAFETY: as above.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates a workqueue named `name`.
    pub fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated; the helper formats it with "%s".
        let wq = unsafe { bindings::ovc_blk_wq_alloc(name.as_char_ptr()) };
        NonNull::new(wq).map(Self).ok_or(ENOMEM)
    }

    /// The queue, to enqueue work on.
    pub fn queue(&self) -> &Queue {
        // SAFETY: the workqueue is alive as long as `self`; both types describe the C `struct workqueue_struct`.
        unsafe { Queue::from_raw(self.0.as_ptr().cast::<kernel::bindings::workqueue_struct>()) }
    }
}

/// The `delayed_work` of `T`'s delayed work item `ID`, for a `T` the caller holds a reference to.
fn dwork_of<T, const ID: u64>(ptr: *const T) -> *mut kernel::bindings::delayed_work
where
    T: HasDelayedWork<T, ID>,
{
    // SAFETY: `ptr` points at a live `T` (the caller holds a reference); this only computes a field's address.
    let work = unsafe { T::raw_get_work(ptr.cast_mut()) };
    // SAFETY: `work` points at the `Work` field of a live `T`.
    let ws = unsafe { Work::raw_get(work) };
    // SAFETY: `HasDelayedWork` guarantees that this `work_struct` is the `work` field of a `delayed_work`, so the
    // container is in the same allocation.
    unsafe { kernel::container_of!(ws, kernel::bindings::delayed_work, work) }
}

impl OwnedQueue {
    /// Queues `this`'s delayed work item `ID` to run on this queue after `delay`; if it is pending already, moves
    /// its time to `delay` from now instead (`mod_delayed_work`). The kernel crate's `enqueue_delayed` can do only
    /// the first. References follow the crate's rule for `Arc` work items: a pending item holds one, which its
    /// `run` takes back.
    pub fn rearm_delayed<T, const ID: u64>(&self, this: Arc<T>, delay: Jiffies)
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
    {
        let ptr = Arc::into_raw(this);
        let dw = dwork_of::<T, ID>(ptr);
        // SAFETY: `dw` is the initialised `delayed_work` of a live `T` whose function is the crate's `run` for
        // `Arc<T>`; the queue is alive as long as `self`. If the item was idle it is now queued and owns the
        // reference leaked above; if it was pending (queued or timer running) it keeps the one it had.
        let was_pending = unsafe {
            kernel::bindings::mod_delayed_work_on(
                kernel::bindings::wq_misc_consts_WORK_CPU_UNBOUND as kernel::ffi::c_int,
                self.0.as_ptr().cast::<kernel::bindings::workqueue_struct>(),
                dw,
                delay,
            )
        };
        if was_pending {
            // SAFETY: the reference leaked above was not handed to the queue.
            drop(unsafe { Arc::from_raw(ptr) });
        }
    }
}

/// Cancels `this`'s delayed work item `ID`: a pending one is taken off its queue (and the reference it held is
/// dropped), a running one is waited for. It may be queued again afterwards: a caller that needs it idle keeps it
/// from being re-armed first (a flag checked where it is armed). Sleeps.
pub fn cancel_delayed_sync<T, const ID: u64>(this: &Arc<T>)
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
{
    let ptr = Arc::as_ptr(this);
    let dw = dwork_of::<T, ID>(ptr);
    // SAFETY: `dw` is the initialised `delayed_work` of a live `T` (`this` holds a reference).
    if unsafe { kernel::bindings::cancel_delayed_work_sync(dw) } {
        // SAFETY: the cancelled item was pending and held one reference, leaked with `Arc::into_raw` when it was
        // queued (`rearm_delayed` or the crate's `enqueue_delayed`); the queue has given it up, so it is ours.
        drop(unsafe { Arc::from_raw(ptr) });
    }
}

impl OwnedQueue {
    /// Waits until every work item queued so far has finished.
    pub fn flush(&self) {
        // SAFETY: the workqueue is alive as long as `self`.
        unsafe { bindings::ovc_blk_wq_flush(self.0.as_ptr()) };
    }
}

/// Takes a reference on this module that is never released: the module then stays loaded until reboot. For an object
/// that has to be leaked while the block layer still uses it (a disk still open when its configuration is removed).
pub fn pin_module_forever() {
    // SAFETY: `__module_get` on our own, live module.
    unsafe { bindings::ovc_blk_module_pin() };
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, destroyed once; `destroy_workqueue` drains pending work first. The owner must
        // not drop the last reference from a work item running on this queue (documented at its use).
        unsafe { bindings::ovc_blk_wq_destroy(self.0.as_ptr()) };
    }
}

/// A scope in which the current task's allocations do no I/O and, with `reserves`, may use the memalloc reserves
/// (for swap-out). Restored when dropped; not `Send` (it is per task).
pub struct Memalloc {
    cookie: u32,
    _not_send: PhantomData<*mut ()>,
}

impl Memalloc {
    /// Enters the scope.
    pub fn enter(reserves: bool) -> Self {
        // SAFETY: only changes the current task's allocation flags; restored in `drop` on the same task.
        let cookie = unsafe { bindings::ovc_blk_memalloc_enter(i32::from(reserves)) };
        Self { cookie, _not_send: PhantomData }
    }
}

impl Drop for Memalloc {
    fn drop(&mut self) {
        // SAFETY: `cookie` came from `ovc_blk_memalloc_enter` on this task (the type is not `Send`).
        unsafe { bindings::ovc_blk_memalloc_leave(self.cookie) };
    }
}

/// Most pages one [`LocalStore::write_run`] writes.
pub const RUN_PAGES: usize = bindings::OVC_STORE_RUN as usize;

/// A local page store: a regular file or a block device opened read-write.
pub struct LocalStore {
    s: NonNull<bindings::ovc_blk_store>,
    size: u64,
    direct: bool,
}

// SAFETY: the store is a `struct file` plus a bounce page, used through `&mut self` only.
unsafe impl Send for LocalStore {}

impl LocalStore {
    /// Opens `path`.
    pub fn open(path: &CStr) -> Result<Self> {
        let (mut size, mut direct, mut err) = (0u64, 0i32, 0i32);
        // SAFETY: `path` is NUL-terminated; the out-pointers are valid.
        let s = unsafe { bindings::ovc_blk_store_open(path.as_char_ptr(), &mut size, &mut direct, &mut err) };
        match NonNull::new(s) {
            Some(s) => Ok(Self { s, size, direct: direct != 0 }),
            None => Err(if err < 0 { Error::from_errno(err) } else { EINVAL }),
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether I/O bypasses the page cache (`O_DIRECT`).
    pub fn direct(&self) -> bool {
        self.direct
    }

    /// Reads `buf.len()` (≤ 4096) bytes at `pos`.
    pub fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result {
        let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
        // SAFETY: `s` is open; `buf` is valid for `len` writable bytes; `&mut self` makes the bounce page ours.
        kernel::error::to_result(unsafe {
            bindings::ovc_blk_store_rw(self.s.as_ptr(), buf.as_mut_ptr().cast::<c_void>(), len, pos, 0)
        })
    }

    /// Writes `buf` (≤ 4096 bytes) at `pos`.
    pub fn write(&mut self, pos: u64, buf: &[u8]) -> Result {
        let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
        // SAFETY: as in `read`; for a write the helper only reads `buf`.
        kernel::error::to_result(unsafe {
            bindings::ovc_blk_store_rw(self.s.as_ptr(), buf.as_ptr().cast_mut().cast::<c_void>(), len, pos, 1)
        })
    }

    /// Makes the store ready for [`LocalStore::write_run`] (allocates its [`RUN_PAGES`] run pages, once).
    pub fn enable_runs(&mut self) -> Result {
        // SAFETY: `s` is open; `&mut self` excludes every other use of the store.
        kernel::error::to_result(unsafe { bindings::ovc_blk_store_runs(self.s.as_ptr()) })
    }

    /// Writes `n` consecutive pages (1 to [`RUN_PAGES`]) at `pos` with one I/O. `fill(i, page)` first fills page
    /// `i` of the run (4096 bytes); if it returns false, nothing is written and the result is `EIO`. `EINVAL` for a
    /// bad `n` or a store without [`LocalStore::enable_runs`].
    pub fn write_run(&mut self, pos: u64, n: usize, mut fill: impl FnMut(usize, &mut [u8]) -> bool) -> Result {
        if n == 0 || n > RUN_PAGES {
            return Err(EINVAL);
        }
        for i in 0..n {
            let idx = u32::try_from(i).map_err(|_| EINVAL)?;
            // SAFETY: `s` is open; the helper checks `idx` and returns NULL for a page it does not have.
            let p = unsafe { bindings::ovc_blk_store_run_page(self.s.as_ptr(), idx) };
            if p.is_null() {
                return Err(EINVAL);
            }
            // SAFETY: `p` is the address of one of the store's run pages (`PAGE_SIZE` bytes from `alloc_page`,
            // directly mapped), used only through the store; `&mut self` makes it ours while `page` lives.
            let page = unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), kernel::page::PAGE_SIZE) };
            if !fill(i, page) {
                return Err(EIO);
            }
        }
        let count = u32::try_from(n).map_err(|_| EINVAL)?;
        // SAFETY: `s` is open and its run pages 0..n were filled above.
        kernel::error::to_result(unsafe { bindings::ovc_blk_store_write_run(self.s.as_ptr(), count, pos) })
    }

    /// `fsync`.
    pub fn flush(&mut self) -> Result {
        // SAFETY: `s` is open.
        kernel::error::to_result(unsafe { bindings::ovc_blk_store_flush(self.s.as_ptr()) })
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, closed once.
        unsafe { bindings::ovc_blk_store_close(self.s.as_ptr()) };
    }
}

/// A regular file read or written sequentially from the kernel, through the page cache (a page-map export/import).
pub struct SeqFile {
    f: NonNull<bindings::file>,
    pos: u64,
}

// SAFETY: the file is used through `&mut self` only; a `struct file` may be used and closed from any task.
unsafe impl Send for SeqFile {}

impl SeqFile {
    /// Opens the regular file `path` for reading. `EINVAL` if it is not a regular file, else the open's errno.
    pub fn open_read(path: &CStr) -> Result<Self> {
        Self::open(path, 0)
    }

    /// Creates or truncates the regular file `path` (mode 0600) for writing.
    pub fn create(path: &CStr) -> Result<Self> {
        Self::open(path, 1)
    }

    fn open(path: &CStr, write: i32) -> Result<Self> {
        let mut err = 0i32;
        // SAFETY: `path` is NUL-terminated; `err` is a valid out-pointer.
        let f = unsafe { bindings::ovc_blk_file_open(path.as_char_ptr(), write, &mut err) };
        match NonNull::new(f) {
            Some(f) => Ok(Self { f, pos: 0 }),
            None => Err(if err < 0 { Error::from_errno(err) } else { EINVAL }),
        }
    }

    /// Reads up to `buf.len()` bytes at the current position; `Ok(0)` at the end of the file.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
        // SAFETY: `f` is open; `buf` is valid for `len` writable bytes; `pos` is a valid out-pointer.
        let n = unsafe {
            bindings::ovc_blk_file_rw(self.f.as_ptr(), buf.as_mut_ptr().cast::<c_void>(), len, &mut self.pos, 0)
        };
        if n < 0 {
            return Err(Error::from_errno(i32::try_from(n).unwrap_or(-5)));
        }
        usize::try_from(n).map_err(|_| EIO)
    }

    /// Writes all of `buf` at the current position (`EIO` if the file takes no more bytes).
    pub fn write_all(&mut self, mut buf: &[u8]) -> Result {
        while !buf.is_empty() {
            let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
            // SAFETY: `f` is open; for a write the helper only reads `len` bytes of `buf`.
            let n = unsafe {
                bindings::ovc_blk_file_rw(self.f.as_ptr(), buf.as_ptr().cast_mut().cast::<c_void>(), len, &mut self.pos, 1)
            };
            if n < 0 {
                return Err(Error::from_errno(i32::try_from(n).unwrap_or(-5)));
            }
            let n = usize::try_from(n).map_err(|_| EIO)?;
            if n == 0 {
                return Err(EIO);
            }
            buf = buf.get(n..).ok_or(EIO)?;
        }
        Ok(())
    }

    /// Bytes read or written so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }
}

impl Drop for SeqFile {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, closed once.
        unsafe { bindings::ovc_blk_file_close(self.f.as_ptr()) };
    }
}
