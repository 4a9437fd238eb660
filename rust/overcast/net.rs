// SPDX-License-Identifier: GPL-2.0

//! Ethernet interfaces whose transmit is served by Rust, and owned socket buffers.
//!
//! * [`Skb`]: an owned `sk_buff`; dropping it frees it (counted as a drop). Operations that consume it take it by
//!   value, so a frame is never used after it was handed on or freed.
//! * [`NetDev`]: a registered interface (`ip link` shows it; it can be enslaved to a bridge). Frames the stack sends
//!   through it arrive at [`NetDevHandler::xmit`]. Registered and unregistered with RTNL held ([`Rtnl`]); freed
//!   after the last transmit call has returned and the last [`NetDevRef`] was dropped.
//! * [`Link`]: an interface kind for `ip link add … type KIND` (rtnl_link_ops), served by a [`LinkHandler`].
//! * [`NetDevRef`]: a counted reference (`dev_hold`) to an interface, usable from the data path (any context) to
//!   deliver frames out of it; it keeps the `net_device` memory valid, never the registration.

use super::bindings;
use core::ffi::c_void;
use core::marker::PhantomData;
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

/// Proof that the current task holds RTNL (the kernel's interface configuration lock). Interfaces are registered,
/// unregistered and reconfigured only with it: take it with [`RtnlGuard::lock`], or receive it in a [`LinkHandler`]
/// callback (which the kernel calls with RTNL held).
pub struct Rtnl {
    _not_send: PhantomData<*mut ()>,
}

/// RTNL, held until dropped.
pub struct RtnlGuard(Rtnl);

impl RtnlGuard {
    /// Takes RTNL (sleeps). Lock order: RTNL before any lock of the caller that its interface operations need.
    pub fn lock() -> Self {
        // SAFETY: plain lock; released in `drop` on the same task (the guard is not `Send`).
        unsafe { bindings::ovc_rtnl_lock() };
        Self(Rtnl { _not_send: PhantomData })
    }
}

impl core::ops::Deref for RtnlGuard {
    type Target = Rtnl;
    fn deref(&self) -> &Rtnl {
        &self.0
    }
}

impl Drop for RtnlGuard {
    fn drop(&mut self) {
        // SAFETY: taken in `lock` by this task. Unlocking runs the interface core's pending work (frees of
        // unregistered interfaces).
        unsafe { bindings::ovc_rtnl_unlock() };
    }
}

/// A net_device the rtnetlink core allocated for `ip link add` (with this module's set-up), handed to
/// [`LinkHandler::newlink`]; [`NetDev::adopt`] registers it. Dropping it leaves it to the core, which frees it.
pub struct NewDev<'a> {
    dev: NonNull<bindings::net_device>,
    _rtnl: PhantomData<&'a Rtnl>,
}

/// The list a [`LinkHandler::dellink`] queues its interface on.
pub struct DelQueue<'a> {
    head: *mut bindings::list_head,
    _rtnl: PhantomData<&'a Rtnl>,
}

/// A registered Ethernet interface. Unregister it with [`NetDev::unregister`] while holding RTNL; dropping it
/// without (RTNL not held) unregisters it too and waits until it is gone.
pub struct NetDev<T: NetDevHandler> {
    dev: NonNull<bindings::net_device>,
    _t: PhantomData<Arc<T>>,
}

// SAFETY: the `net_device` is used only through kernel calls that do their own locking.
unsafe impl<T: NetDevHandler> Send for NetDev<T> {}
// SAFETY: as above; `&NetDev` allows only those calls.
unsafe impl<T: NetDevHandler> Sync for NetDev<T> {}

impl<T: NetDevHandler> NetDev<T> {
    const OPS: bindings::ovc_netdev_ops = bindings::ovc_netdev_ops { xmit: Some(Self::xmit_cb) };

    /// Creates and registers interface `name` with MTU `mtu` (at most `max_mtu`); its transmit calls
    /// `handler.xmit(tag, ..)`; the handler is kept alive until the interface is freed. The interface belongs to no
    /// [`Link`] kind (`ip link del` does not apply to it; [`Link::register_netdev`] makes one that does). Fails with
    /// `EEXIST` if the name is taken, `EINVAL` for a bad name or MTU.
    pub fn register(rtnl: &Rtnl, name: &CStr, mtu: u32, max_mtu: u32, handler: Arc<T>, tag: usize) -> Result<Self> {
        Self::create(rtnl, name, mtu, max_mtu, handler, tag, core::ptr::null())
    }

    /// [`NetDev::register`], as an interface of kind `link` (null: none). A non-null `link` must be a registration
    /// that lives at least as long as this call ([`Link::register_netdev`] borrows it); afterwards the kernel keeps
    /// it alive for the interface (unregistering a kind deletes its interfaces first).
    fn create(
        _rtnl: &Rtnl,
        name: &CStr,
        mtu: u32,
        max_mtu: u32,
        handler: Arc<T>,
        tag: usize,
        link: *const bindings::ovc_link,
    ) -> Result<Self> {
        let ctx = Arc::into_raw(handler).cast::<c_void>();
        let mut dev = core::ptr::null_mut();
        // SAFETY: RTNL held; `name` is copied; `OPS` is static; `ctx` is a leaked `Arc<T>`, taken back by
        // `release_cb` at free or by `finish` if registration fails; `link` is null or a live registration (per
        // this function's contract); `dev` is an out-pointer.
        let err = unsafe {
            bindings::ovc_netdev_create(
                name.as_char_ptr(),
                mtu,
                max_mtu,
                &Self::OPS,
                ctx,
                Some(Self::release_cb),
                tag as _,
                link,
                &mut dev,
            )
        };
        Self::finish(err, dev, ctx)
    }

    /// Registers the interface `new` that `ip link add` asked for, as [`NetDev::register`] does.
    pub fn adopt(new: NewDev<'_>, mtu: u32, max_mtu: u32, handler: Arc<T>, tag: usize) -> Result<Self> {
        let ctx = Arc::into_raw(handler).cast::<c_void>();
        // SAFETY: `new` is the core's unregistered device of our kind, RTNL held (its lifetime); as in `register`.
        let err = unsafe {
            bindings::ovc_netdev_adopt(new.dev.as_ptr(), mtu, max_mtu, &Self::OPS, ctx, Some(Self::release_cb), tag as _)
        };
        Self::finish(err, new.dev.as_ptr(), ctx)
    }

    fn finish(err: kernel::ffi::c_int, dev: *mut bindings::net_device, ctx: *const c_void) -> Result<Self> {
        match NonNull::new(dev) {
            Some(dev) if err == 0 => Ok(Self { dev, _t: PhantomData }),
            _ => {
                // SAFETY: registration failed, so the helper did not keep `ctx`: take the reference back.
                drop(unsafe { Arc::from_raw(ctx.cast::<T>()) });
                Err(if err != 0 { Error::from_errno(err) } else { ENOMEM })
            }
        }
    }

    /// Unregisters the interface now (RTNL held); it is freed after RTNL is released and the last [`NetDevRef`]
    /// is dropped.
    pub fn unregister(self, _rtnl: &Rtnl) {
        let dev = self.dev.as_ptr();
        core::mem::forget(self);
        // SAFETY: registered by us, unregistered once (ownership ends here); RTNL is held.
        unsafe { bindings::ovc_netdev_unregister(dev, core::ptr::null_mut()) };
    }

    /// Unregisters the interface on a dellink's list (`ip link del`).
    pub fn unregister_queued(self, q: &DelQueue<'_>) {
        let dev = self.dev.as_ptr();
        core::mem::forget(self);
        // SAFETY: as in `unregister`; `q.head` is the core's list, RTNL held for its lifetime.
        unsafe { bindings::ovc_netdev_unregister(dev, q.head) };
    }

    /// A counted reference for the data path.
    pub fn handle(&self) -> NetDevRef {
        // SAFETY: the interface is registered (we own it), so its memory is valid; the reference is put in
        // `NetDevRef::drop`.
        unsafe { bindings::ovc_netdev_hold(self.dev.as_ptr()) };
        NetDevRef(self.dev)
    }

    /// Sets the MTU (as `ip link set mtu` would).
    pub fn set_mtu(&self, _rtnl: &Rtnl, mtu: u32) -> Result {
        // SAFETY: the interface is registered and owned by us; RTNL is held.
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

    /// The interface's name (it may be one the kernel chose, e.g. from `vwire%d`), into `buf`.
    pub fn name<'b>(&self, _rtnl: &Rtnl, buf: &'b mut [u8; IFNAME_MAX + 1]) -> &'b str {
        // SAFETY: the device is valid; `buf` has room for IFNAMSIZ bytes; RTNL keeps the name from changing.
        unsafe { bindings::ovc_netdev_name(self.dev.as_ptr(), buf.as_mut_ptr().cast()) };
        let len = buf.iter().position(|&b| b == 0).unwrap_or(0);
        core::str::from_utf8(buf.get(..len).unwrap_or(&[])).unwrap_or("")
    }

    unsafe extern "C" fn release_cb(ctx: *const c_void) {
        // SAFETY: `ctx` is the `Arc<T>` leaked at registration; the helper calls this once, when the interface is
        // freed and no callback can run any more.
        drop(unsafe { Arc::from_raw(ctx.cast::<T>()) });
    }

    unsafe extern "C" fn xmit_cb(ctx: *const c_void, tag: kernel::ffi::c_ulong, skb: *mut bindings::sk_buff) {
        // SAFETY: `ctx` is the `T` registered in `register`, alive until the interface is freed, and the kernel
        // calls ndo_start_xmit only while it is registered.
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
        // SAFETY: the interface was registered by us and is destroyed exactly once, here (`unregister*` forget
        // `self`); the caller does not hold RTNL (documented on the type), which the helper takes.
        unsafe { bindings::ovc_netdev_destroy(self.dev.as_ptr()) };
    }
}

/// The attributes of one interface of a [`Link`] kind (`ip link add … id N local ADDR remote ADDR`).
pub struct LinkParams {
    /// Connector id.
    pub id: u32,
    local: [u8; LINK_ADDR_MAX],
    remote: [u8; LINK_ADDR_MAX],
}

/// Longest address string of a [`LinkParams`], NUL included.
pub const LINK_ADDR_MAX: usize = bindings::OVC_LINK_ADDR_MAX as usize;

fn c_text(b: &[u8]) -> &str {
    let len = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(b.get(..len).unwrap_or(&[])).unwrap_or("")
}

fn put_text(out: &mut [u8; LINK_ADDR_MAX], text: &str) -> Result {
    let b = text.as_bytes();
    out.get_mut(..b.len()).ok_or(EOVERFLOW)?.copy_from_slice(b);
    *out.get_mut(b.len()).ok_or(EOVERFLOW)? = 0;
    Ok(())
}

impl LinkParams {
    /// The local address as given (not yet parsed).
    pub fn local(&self) -> &str {
        c_text(&self.local)
    }
    /// The remote address as given.
    pub fn remote(&self) -> &str {
        c_text(&self.remote)
    }
    /// Sets the addresses to report (`EOVERFLOW` if longer than [`LINK_ADDR_MAX`] − 1 bytes).
    pub fn set(&mut self, id: u32, local: &str, remote: &str) -> Result {
        self.id = id;
        put_text(&mut self.local, local)?;
        put_text(&mut self.remote, remote)
    }
}

/// What a module does for the interfaces of its [`Link`] kind. Callbacks run in process context.
pub trait LinkHandler: Send + Sync {
    /// `ip link add NAME type KIND …`: register `dev` with [`NetDev::adopt`] (and keep it), or fail with an errno
    /// (the core then frees `dev`). Must not fail after the interface is registered: unregister it first.
    fn newlink(&self, rtnl: &Rtnl, dev: NewDev<'_>, p: &LinkParams) -> Result;
    /// `ip link del`: unregister the interface registered with `tag` with [`NetDev::unregister_queued`].
    fn dellink(&self, rtnl: &Rtnl, tag: usize, q: &DelQueue<'_>);
    /// The attributes of the interface registered with `tag`. Must not sleep (may run under RCU only).
    fn fill(&self, tag: usize, out: &mut LinkParams) -> Result;
    /// `ip link set NAME type KIND remote ADDR`: `p.remote()` is the new remote; `p.id` (0: not given) and
    /// `p.local()` ("": not given) may only confirm the interface's own. Nothing changes on an error.
    fn changelink(&self, rtnl: &Rtnl, tag: usize, p: &LinkParams) -> Result;
}

/// A registered interface kind (`ip link add … type KIND`). Dropping it deletes every interface of the kind (through
/// [`LinkHandler::dellink`]) and unregisters it; takes RTNL, so it must be dropped without holding it.
pub struct Link<T: LinkHandler> {
    l: NonNull<bindings::ovc_link>,
    _handler: Arc<T>,
}

// SAFETY: the registration is a kernel object used under RTNL; the handler is `Send + Sync`.
unsafe impl<T: LinkHandler> Send for Link<T> {}
// SAFETY: as above; `&Link` gives access to nothing mutable.
unsafe impl<T: LinkHandler> Sync for Link<T> {}

impl<T: LinkHandler> Link<T> {
    const CBS: bindings::ovc_link_cbs = bindings::ovc_link_cbs {
        newlink: Some(Self::newlink_cb),
        dellink: Some(Self::dellink_cb),
        fill: Some(Self::fill_cb),
        changelink: Some(Self::changelink_cb),
    };

    /// Registers kind `kind` (at most 15 bytes) with `handler`.
    pub fn register(kind: &CStr, handler: Arc<T>) -> Result<Self> {
        let ctx = Arc::as_ptr(&handler).cast::<c_void>();
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `kind` is NUL-terminated and copied; `CBS` is a promoted constant; `ctx` points to `T`, kept
        // alive by `_handler` until `drop` has unregistered the kind (after which no callback runs).
        let l = unsafe { bindings::ovc_link_register(kind.as_char_ptr(), &Self::CBS, ctx, &mut err) };
        let e = if err < 0 { Error::from_errno(err) } else { ENOMEM };
        NonNull::new(l).map(|l| Self { l, _handler: handler }).ok_or(e)
    }

    /// Creates and registers interface `name` of this kind, as [`NetDev::register`] does; `ip -d link show` shows
    /// it and `ip link del` deletes it through [`LinkHandler::dellink`] with `tag`, like one made with `ip link add`.
    pub fn register_netdev<H: NetDevHandler>(
        &self,
        rtnl: &Rtnl,
        name: &CStr,
        mtu: u32,
        max_mtu: u32,
        handler: Arc<H>,
        tag: usize,
    ) -> Result<NetDev<H>> {
        NetDev::create(rtnl, name, mtu, max_mtu, handler, tag, self.l.as_ptr())
    }

    /// # Safety
    ///
    /// `ctx` must be the `T` of a live registration.
    unsafe fn handler<'a>(ctx: *const c_void) -> &'a T {
        // SAFETY: per the function's contract.
        unsafe { &*ctx.cast::<T>() }
    }

    unsafe extern "C" fn newlink_cb(
        ctx: *const c_void,
        dev: *mut bindings::net_device,
        p: *const bindings::ovc_link_params,
    ) -> kernel::ffi::c_int {
        // SAFETY: the core calls newlink with RTNL held, for a registered kind (ctx live), with its own device
        // and the parsed attributes.
        let (h, p) = unsafe { (Self::handler(ctx), &*p) };
        let Some(dev) = NonNull::new(dev) else { return EINVAL.to_errno() };
        let params = LinkParams { id: p.id, local: p.local.map(|c| c as u8), remote: p.remote.map(|c| c as u8) };
        let rtnl = Rtnl { _not_send: PhantomData };
        match h.newlink(&rtnl, NewDev { dev, _rtnl: PhantomData }, &params) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn dellink_cb(
        ctx: *const c_void,
        _dev: *mut bindings::net_device,
        tag: kernel::ffi::c_ulong,
        head: *mut bindings::list_head,
    ) {
        // SAFETY: the core calls dellink with RTNL held, for an interface of a registered kind (ctx live).
        let h = unsafe { Self::handler(ctx) };
        let rtnl = Rtnl { _not_send: PhantomData };
        h.dellink(&rtnl, tag as usize, &DelQueue { head, _rtnl: PhantomData });
    }

    unsafe extern "C" fn changelink_cb(
        ctx: *const c_void,
        tag: kernel::ffi::c_ulong,
        p: *const bindings::ovc_link_params,
    ) -> kernel::ffi::c_int {
        // SAFETY: the core calls changelink with RTNL held, for an interface of a registered kind (ctx live), with
        // the helper's parsed attributes.
        let (h, p) = unsafe { (Self::handler(ctx), &*p) };
        let params = LinkParams { id: p.id, local: p.local.map(|c| c as u8), remote: p.remote.map(|c| c as u8) };
        let rtnl = Rtnl { _not_send: PhantomData };
        match h.changelink(&rtnl, tag as usize, &params) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn fill_cb(
        ctx: *const c_void,
        tag: kernel::ffi::c_ulong,
        out: *mut bindings::ovc_link_params,
    ) -> kernel::ffi::c_int {
        // SAFETY: ctx is live while the kind is registered; `out` is the helper's stack struct.
        let h = unsafe { Self::handler(ctx) };
        let mut p = LinkParams { id: 0, local: [0; LINK_ADDR_MAX], remote: [0; LINK_ADDR_MAX] };
        if let Err(e) = h.fill(tag as usize, &mut p) {
            return e.to_errno();
        }
        // SAFETY: `out` is valid for writes (see above).
        let out = unsafe { &mut *out };
        out.id = p.id;
        out.local = p.local.map(|c| c as _);
        out.remote = p.remote.map(|c| c as _);
        0
    }
}

impl<T: LinkHandler> Drop for Link<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, unregistered once; deletes the kind's interfaces and waits for its
        // callbacks, so `_handler` may be dropped after.
        unsafe { bindings::ovc_link_unregister(self.l.as_ptr()) };
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
