// SPDX-License-Identifier: GPL-2.0

//! Ethernet interfaces whose transmit is served by Rust, and owned socket buffers.
//!
//! * [`Skb`]: an owned `sk_buff`; dropping it frees it (counted as a drop). Operations that consume it take it by
//!   value, so a frame is never used after it was handed on or freed.
//! * [`NetDev`]: a registered interface (`ip link` shows it; it can be enslaved to a bridge). Frames the stack sends
//!   through it arrive at [`NetDevHandler::xmit`]. Dropping it unregisters and frees it, after the last transmit
//!   call has returned and the last [`NetDevRef`] was dropped.
//! * [`NetDevRef`]: a counted reference (`dev_hold`) to an interface, usable from the data path (any context) to
//!   deliver frames out of it; it keeps the `net_device` memory valid, never the registration.

use super::bindings;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Longest interface name.
pub const IFNAME_MAX: usize = bindings::OVC_IFNAME_MAX as usize;

/// An owned socket buffer. Dropping it frees the frame as dropped.
pub struct Skb(NonNull<bindings::sk_buff>);

// SAFETY: an `sk_buff` owned by us may be handed between contexts and CPUs; nothing else references it.
unsafe impl Send for Skb {}

impl Skb {
    /// Takes ownership of `skb`.
    ///
    /// # Safety
    ///
    /// `skb` must be a valid `sk_buff` that the caller owns and hands over (no one else uses or frees it).
    pub(crate) unsafe fn from_raw(skb: NonNull<bindings::sk_buff>) -> Self {
        Self(skb)
    }

    /// Gives up ownership; the caller must consume or free the returned buffer.
    pub(crate) fn into_raw(self) -> *mut bindings::sk_buff {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Length of the data (`skb->len`): the whole frame on transmit, the UDP header and payload on receive.
    pub fn len(&self) -> usize {
        // SAFETY: `self.0` is a valid `sk_buff` we own.
        unsafe { bindings::ovc_skb_len(self.0.as_ptr()) as usize }
    }

    /// Length of the largest Ethernet frame this buffer stands for on the wire: [`Skb::len`], or the length of
    /// one segment when the stack handed over a TCP/UDP segmentation-offload frame.
    pub fn frame_len(&self) -> usize {
        // SAFETY: `self.0` is a valid `sk_buff` we own.
        unsafe { bindings::ovc_skb_frame_len(self.0.as_ptr()) as usize }
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Skb {
    fn drop(&mut self) {
        // SAFETY: we own the buffer; it is freed exactly once, here.
        unsafe { bindings::ovc_skb_free(self.0.as_ptr()) };
    }
}

/// Why a frame handed to [`NetDevRef::receive`] was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// Too short or not an Ethernet frame.
    Invalid,
    /// Larger than the interface's MTU allows.
    TooBig,
    /// The interface is down.
    Down,
    /// The receive backlog was full.
    NoBuffer,
    /// Another errno.
    Other(i32),
}

impl RxError {
    fn from_errno(e: i32) -> Self {
        match e {
            -22 => Self::Invalid,
            -90 => Self::TooBig,
            -100 => Self::Down,
            -105 => Self::NoBuffer,
            _ => Self::Other(e),
        }
    }
}

/// What an interface does with the frames it is asked to send.
pub trait NetDevHandler: Send + Sync {
    /// The interface registered with `tag` must send `skb` (data at the Ethernet header). Called in softirq or
    /// process context with bottom halves disabled, on several CPUs at once; must not sleep.
    fn xmit(&self, tag: usize, skb: Skb);
}

/// A registered Ethernet interface; unregistered and freed when dropped.
pub struct NetDev<T: NetDevHandler> {
    dev: NonNull<bindings::net_device>,
    // Dropped after `Drop::drop` unregistered the interface: the handler outlives every transmit call.
    _handler: Arc<T>,
}

// SAFETY: the `net_device` is used only through kernel calls that do their own locking.
unsafe impl<T: NetDevHandler> Send for NetDev<T> {}
// SAFETY: as above; `&NetDev` allows only those calls.
unsafe impl<T: NetDevHandler> Sync for NetDev<T> {}

impl<T: NetDevHandler> NetDev<T> {
    const OPS: bindings::ovc_netdev_ops = bindings::ovc_netdev_ops { xmit: Some(Self::xmit_cb) };

    /// Creates and registers interface `name` with MTU `mtu` (at most `max_mtu`); its transmit calls
    /// `handler.xmit(tag, ..)`. Fails with `EEXIST` if the name is taken, `EINVAL` for a bad name or MTU. Sleeps.
    pub fn register(name: &CStr, mtu: u32, max_mtu: u32, handler: Arc<T>, tag: usize) -> Result<Self> {
        let ctx = Arc::as_ptr(&handler).cast::<c_void>();
        let mut dev = core::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated and copied by the kernel; `OPS` is a promoted constant with static
        // lifetime; `ctx` points to `T`, kept alive by the `Arc` stored below until after the interface is
        // unregistered in `drop`; `dev` is a valid out-pointer.
        let err = unsafe {
            bindings::ovc_netdev_create(name.as_char_ptr(), mtu, max_mtu, &Self::OPS, ctx, tag as _, &mut dev)
        };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        let dev = NonNull::new(dev).ok_or(ENOMEM)?;
        Ok(Self { dev, _handler: handler })
    }

    /// A counted reference for the data path.
    pub fn handle(&self) -> NetDevRef {
        // SAFETY: the interface is registered (we own it), so its memory is valid; the reference is put in
        // `NetDevRef::drop`.
        unsafe { bindings::ovc_netdev_hold(self.dev.as_ptr()) };
        NetDevRef(self.dev)
    }

    /// Sets the MTU (as `ip link set mtu` would). Sleeps (takes RTNL).
    pub fn set_mtu(&self, mtu: u32) -> Result {
        // SAFETY: the interface is registered and owned by us.
        let err = unsafe { bindings::ovc_netdev_set_mtu(self.dev.as_ptr(), mtu) };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        Ok(())
    }

    /// The current MTU.
    pub fn mtu(&self) -> u32 {
        // SAFETY: the interface is registered and owned by us.
        unsafe { bindings::ovc_netdev_mtu(self.dev.as_ptr()) }
    }

    unsafe extern "C" fn xmit_cb(ctx: *const c_void, tag: kernel::ffi::c_ulong, skb: *mut bindings::sk_buff) {
        // SAFETY: `ctx` is the `T` registered in `register`, alive until the interface is unregistered, and the
        // kernel calls ndo_start_xmit only while it is registered.
        let handler = unsafe { &*ctx.cast::<T>() };
        let Some(skb) = NonNull::new(skb) else {
            return;
        };
        // SAFETY: ndo_start_xmit hands us the buffer; we own it from here on.
        let skb = unsafe { Skb::from_raw(skb) };
        handler.xmit(tag as usize, skb);
    }
}

impl<T: NetDevHandler> Drop for NetDev<T> {
    fn drop(&mut self) {
        // SAFETY: the interface was created by `ovc_netdev_create` and is destroyed exactly once, here; the call
        // waits until no transmit runs and every `NetDevRef` was dropped, so the handler may be released after.
        unsafe { bindings::ovc_netdev_destroy(self.dev.as_ptr()) };
    }
}

/// A counted reference to an interface (`dev_hold`/`dev_put`). Holding one delays the interface's removal (the
/// owner's drop waits), so keep it only for the duration of one frame's processing or in a table the owner clears
/// before dropping the [`NetDev`].
pub struct NetDevRef(NonNull<bindings::net_device>);

// SAFETY: a held `net_device` may be used from any context through the calls below.
unsafe impl Send for NetDevRef {}
// SAFETY: as above.
unsafe impl Sync for NetDevRef {}

impl Clone for NetDevRef {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference, so the device is valid; the new one is put by the clone's drop.
        unsafe { bindings::ovc_netdev_hold(self.0.as_ptr()) };
        Self(self.0)
    }
}

impl Drop for NetDevRef {
    fn drop(&mut self) {
        // SAFETY: puts the reference taken when this value was made.
        unsafe { bindings::ovc_netdev_put(self.0.as_ptr()) };
    }
}

impl NetDevRef {
    /// Whether both refer to the same interface.
    pub fn same(&self, other: &NetDevRef) -> bool {
        self.0 == other.0
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::net_device {
        self.0.as_ptr()
    }

    /// Delivers `skb` out of the interface as a received frame. `pull` > 0: first removes that many bytes (UDP and
    /// tunnel header of a datagram from a tunnel socket); `pull` = 0: `skb` is a frame another local interface
    /// transmitted (hand-off). The frame is consumed either way; an error says why it was dropped.
    pub fn receive(&self, skb: Skb, pull: u32) -> core::result::Result<(), RxError> {
        // SAFETY: the device is valid (held); the buffer's ownership passes to the helper, which consumes it.
        let err = unsafe { bindings::ovc_netdev_receive(self.0.as_ptr(), skb.into_raw(), pull) };
        if err != 0 {
            return Err(RxError::from_errno(err));
        }
        Ok(())
    }

    /// Counts a transmitted frame of `len` bytes in the interface's statistics (`ip -s link`).
    pub fn count_tx(&self, len: usize) {
        // SAFETY: the device is valid (held).
        unsafe { bindings::ovc_netdev_tx_count(self.0.as_ptr(), len as u32) };
    }

    /// Counts a dropped transmit in the interface's statistics.
    pub fn count_tx_dropped(&self) {
        // SAFETY: the device is valid (held).
        unsafe { bindings::ovc_netdev_tx_dropped(self.0.as_ptr()) };
    }
}
