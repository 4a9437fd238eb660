// SPDX-License-Identifier: GPL-2.0

//! /proc directories and files whose reads and writes are served by Rust.
//!
//! A [`ProcDir`] is reference counted: every [`ProcFile`] made in it holds a reference, so the directory is
//! removed only after the last file in it, and a file is never left pointing into a removed directory. Dropping a
//! [`ProcFile`] removes the file and waits until no reader or writer is inside its handler; only then is the
//! handler's data released.

use super::bindings;
use core::ffi::c_void;
use core::fmt;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Largest write a /proc file accepts; larger writes fail with `E2BIG` before reaching the handler.
pub const MAX_WRITE: usize = bindings::OVC_PROC_MAX_WRITE as usize;

/// What a /proc file does when read and written.
pub trait ProcHandler: Send + Sync {
    /// Renders the file's contents. Text that does not fit in the buffer fails the read with `EOVERFLOW`.
    fn show(&self, out: &mut ProcText<'_>) -> Result;

    /// Handles one `write(2)` of `input` (at most [`MAX_WRITE`] bytes). An error is returned to the writer.
    fn write(&self, input: &[u8]) -> Result {
        let _ = input;
        Err(EINVAL)
    }
}

/// The buffer a [`ProcHandler::show`] renders into; implements [`fmt::Write`].
pub struct ProcText<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> ProcText<'a> {
    /// A text buffer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl fmt::Write for ProcText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

struct DirInner {
    pde: NonNull<bindings::proc_dir_entry>,
    _parent: Option<ProcDir>,
}

// SAFETY: a `proc_dir_entry` is only used through procfs calls, which do their own locking.
unsafe impl Send for DirInner {}
// SAFETY: as above; `&DirInner` gives no access to the entry other than as a parent for new entries.
unsafe impl Sync for DirInner {}

impl Drop for DirInner {
    fn drop(&mut self) {
        // SAFETY: `pde` came from `ovc_proc_mkdir` and is removed exactly once, here; every file and subdirectory
        // in it holds a reference to this `DirInner`, so none is left.
        unsafe { bindings::ovc_proc_rmdir(self.pde.as_ptr()) };
    }
}

/// A directory in /proc, removed when the last reference to it (including the files in it) is dropped.
#[derive(Clone)]
pub struct ProcDir(Arc<DirInner>);

impl ProcDir {
    /// Creates `/proc/<name>`, or `<parent>/<name>`. Fails with `EEXIST` if the name is taken.
    pub fn new(name: &CStr, parent: Option<&ProcDir>) -> Result<Self> {
        let parent_ptr = parent.map_or(core::ptr::null_mut(), |p| p.0.pde.as_ptr());
        // SAFETY: `name` is NUL-terminated and outlives the call (procfs copies it); `parent_ptr` is null or a live
        // directory that `parent` keeps alive.
        let pde = unsafe { bindings::ovc_proc_mkdir(name.as_char_ptr(), parent_ptr) };
        let pde = NonNull::new(pde).ok_or(EEXIST)?;
        let inner = DirInner { pde, _parent: parent.cloned() };
        Ok(Self(Arc::new(inner, GFP_KERNEL)?))
    }
}

/// A /proc file served by the handler `T`; removed when dropped.
pub struct ProcFile<T: ProcHandler> {
    entry: NonNull<bindings::ovc_proc_entry>,
    // Dropped after `Drop::drop` removed the file: the handler outlives every call into it.
    handler: Arc<T>,
    _dir: ProcDir,
}

// SAFETY: the entry is only handed to `ovc_proc_remove`, once; the handler is `Send + Sync`.
unsafe impl<T: ProcHandler> Send for ProcFile<T> {}
// SAFETY: `&ProcFile` exposes only the `Sync` handler.
unsafe impl<T: ProcHandler> Sync for ProcFile<T> {}

impl<T: ProcHandler> ProcFile<T> {
    const OPS: bindings::ovc_proc_ops = bindings::ovc_proc_ops {
        show: Some(Self::show_cb),
        write: Some(Self::write_cb),
    };

    /// Creates `<dir>/<name>` with permission bits `mode` (e.g. 0o644), served by `handler`.
    /// Fails with `EEXIST` if the name is taken, `ENOMEM` if out of memory.
    pub fn new(dir: &ProcDir, name: &CStr, mode: u16, handler: Arc<T>) -> Result<Self> {
        let ctx = Arc::as_ptr(&handler).cast::<c_void>();
        // SAFETY: `name` is NUL-terminated; `dir` is a live directory kept alive by the clone stored below; `OPS` is
        // a promoted constant with static lifetime; `ctx` points to `T`, kept alive by `handler` until after
        // `ovc_proc_remove` in `drop` has waited for every caller to leave.
        let entry = unsafe { bindings::ovc_proc_create(name.as_char_ptr(), mode, dir.0.pde.as_ptr(), &Self::OPS, ctx) };
        let entry = NonNull::new(entry).ok_or(EEXIST)?;
        Ok(Self { entry, handler, _dir: dir.clone() })
    }

    /// The handler serving this file.
    pub fn handler(&self) -> &Arc<T> {
        &self.handler
    }

    unsafe extern "C" fn show_cb(ctx: *const c_void, buf: *mut kernel::ffi::c_char, cap: kernel::ffi::c_ulong) -> kernel::ffi::c_long {
        // SAFETY: `ctx` is the `T` registered in `new`, alive until the file is removed (see `new`).
        let handler = unsafe { &*ctx.cast::<T>() };
        // SAFETY: the C helper passes a kmalloc'd buffer of `cap` bytes that only this call uses.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), cap as usize) };
        let mut text = ProcText::new(buf);
        match handler.show(&mut text) {
            Ok(()) => text.len() as kernel::ffi::c_long,
            Err(e) => e.to_errno() as kernel::ffi::c_long,
        }
    }

    unsafe extern "C" fn write_cb(ctx: *const c_void, buf: *const kernel::ffi::c_char, len: kernel::ffi::c_ulong) -> kernel::ffi::c_long {
        // SAFETY: as in `show_cb`.
        let handler = unsafe { &*ctx.cast::<T>() };
        // SAFETY: the C helper passes a kernel copy of the user's write, `len` bytes, alive during this call.
        let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        match handler.write(input) {
            Ok(()) => 0,
            Err(e) => e.to_errno() as kernel::ffi::c_long,
        }
    }
}

impl<T: ProcHandler> Drop for ProcFile<T> {
    fn drop(&mut self) {
        // SAFETY: `entry` came from `ovc_proc_create` and is removed exactly once; the call waits until no reader or
        // writer is inside `show_cb`/`write_cb`, so `handler` may be released afterwards.
        unsafe { bindings::ovc_proc_remove(self.entry.as_ptr()) };
    }
}
