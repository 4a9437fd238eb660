// SPDX-License-Identifier: GPL-2.0

//! UDP tunnel sockets: datagrams are handed to Rust in the kernel's UDP receive path (softirq, no thread, no copy),
//! and encapsulated frames are sent with the kernel's UDP tunnel transmit. Needs the `net` group.
//!
//! * [`UdpSock`]: an open socket bound to one local address and port; its datagrams arrive at
//!   [`UdpHandler::rcv`]. Dropping it closes it and waits until no receive call runs.
//! * [`UdpSockRef`]: a counted reference (`sock_hold`) for the data path to send through.

use super::bindings;
use super::net::{NetDevRef, Skb};
use core::ffi::c_void;
use core::net::SocketAddr;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// How many bytes of a payload [`RxDatagram::head`] shows at most.
pub const HEAD_LEN: usize = bindings::OVC_UDP_HEAD as usize;

fn to_c(addr: &SocketAddr) -> bindings::ovc_sockaddr {
    let mut out = bindings::ovc_sockaddr { family: 4, port: addr.port(), scope_id: 0, addr: [0; 16] };
    match addr {
        SocketAddr::V4(a) => {
            for (d, s) in out.addr.iter_mut().zip(a.ip().octets()) {
                *d = s;
            }
        }
        SocketAddr::V6(a) => {
            out.family = 6;
            out.scope_id = a.scope_id();
            out.addr = a.ip().octets();
        }
    }
    out
}

/// A received datagram: its UDP payload's first bytes are readable with [`RxDatagram::head`].
pub struct RxDatagram {
    skb: Skb,
    head: *const u8,
    head_len: usize,
    payload_len: usize,
}

impl RxDatagram {
    /// The first `min(payload_len, HEAD_LEN)` bytes of the UDP payload.
    pub fn head(&self) -> &[u8] {
        // SAFETY: the helper made these bytes linear in `skb` and the pointer stays valid while `skb` is unchanged;
        // `skb` is owned by `self` and cannot change while `&self` is borrowed.
        unsafe { core::slice::from_raw_parts(self.head, self.head_len) }
    }

    /// Length of the UDP payload.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The datagram's buffer (data at the UDP header), to deliver, forward or drop.
    pub fn into_skb(self) -> Skb {
        self.skb
    }
}

/// Bytes of a UDP header, to pull when delivering or forwarding a received datagram.
pub const UDP_HLEN: u32 = 8;

/// What a socket does with the datagrams it receives.
pub trait UdpHandler: Send + Sync {
    /// A datagram arrived on the socket opened with `tag`. Softirq context; must not sleep.
    fn rcv(&self, tag: usize, dgram: RxDatagram);
}

/// Why a transmit failed (the frame was dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No route to the destination (or from the bound address, when it is not configured on this host).
    NoRoute,
    /// The route leads back into the sending interface.
    Loop,
    /// No memory for the headers.
    NoMemory,
    /// Larger than the route's MTU allows (the sender was sent an ICMP error when possible).
    TooBig,
    /// Another errno.
    Other(i32),
}

/// An open UDP tunnel socket; closed when dropped.
pub struct UdpSock<T: UdpHandler> {
    us: NonNull<bindings::ovc_udp_sock>,
    sk: NonNull<bindings::sock>,
    // Dropped after `Drop::drop` closed the socket: the handler outlives every receive call.
    _handler: Arc<T>,
}

// SAFETY: the socket is used only through kernel calls that do their own locking.
unsafe impl<T: UdpHandler> Send for UdpSock<T> {}
// SAFETY: as above.
unsafe impl<T: UdpHandler> Sync for UdpSock<T> {}

impl<T: UdpHandler> UdpSock<T> {
    const OPS: bindings::ovc_udp_ops = bindings::ovc_udp_ops { rcv: Some(Self::rcv_cb) };

    /// Opens a socket bound to `local` (which need not be configured on this host yet), whose datagrams go to
    /// `handler.rcv(tag, ..)`. Fails with `EADDRINUSE` if another socket holds the port on that address. Sleeps.
    pub fn open(local: &SocketAddr, handler: Arc<T>, tag: usize) -> Result<Self> {
        let addr = to_c(local);
        let ctx = Arc::as_ptr(&handler).cast::<c_void>();
        let mut us = core::ptr::null_mut();
        // SAFETY: `addr` and `us` are valid for the call; `OPS` has static lifetime; `ctx` points to `T`, kept
        // alive by the `Arc` stored below until `drop` has closed the socket and waited for receive calls.
        let err = unsafe { bindings::ovc_udp_open(&addr, &Self::OPS, ctx, tag as _, &mut us) };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        let us = NonNull::new(us).ok_or(ENOMEM)?;
        // SAFETY: `us` is open; its `struct sock` lives at least as long as it stays open.
        let sk = unsafe { bindings::ovc_udp_sk(us.as_ptr()) };
        match NonNull::new(sk) {
            Some(sk) => Ok(Self { us, sk, _handler: handler }),
            None => {
                // SAFETY: `us` is open and closed exactly once, here (never the case: an open socket has a sock).
                unsafe { bindings::ovc_udp_close(us.as_ptr()) };
                Err(EINVAL)
            }
        }
    }

    /// Turns receive aggregation (GRO, as the kernel's VXLAN does) on for datagrams whose first `hdr_len` payload
    /// bytes are a tunnel header followed by an Ethernet frame — `rcv` then gets merged TCP streams as one large
    /// datagram — or off (`None`): each datagram on its own, as a socket whose datagrams are forwarded unchanged
    /// needs. Off after [`UdpSock::open`]; a socket keeps the first header length it was given.
    pub fn set_gro(&self, hdr_len: Option<u32>) {
        // SAFETY: the socket is open (we own it).
        unsafe { bindings::ovc_udp_set_gro(self.us.as_ptr(), hdr_len.unwrap_or(0)) };
    }

    /// A counted reference to send through.
    pub fn handle(&self) -> UdpSockRef {
        // SAFETY: the socket is open (we own it), so `sk` is valid; the reference is put in `UdpSockRef::drop`.
        unsafe { bindings::ovc_sk_hold(self.sk.as_ptr()) };
        UdpSockRef(self.sk)
    }

    unsafe extern "C" fn rcv_cb(
        ctx: *const c_void,
        tag: kernel::ffi::c_ulong,
        skb: *mut bindings::sk_buff,
        head: *const kernel::ffi::c_uchar,
        head_len: kernel::ffi::c_ulong,
        payload_len: kernel::ffi::c_ulong,
    ) {
        // SAFETY: `ctx` is the `T` given to `open`, alive until the socket is closed and the helper waited for
        // callbacks in flight.
        let handler = unsafe { &*ctx.cast::<T>() };
        let Some(skb) = NonNull::new(skb) else {
            return;
        };
        // SAFETY: encap_rcv hands us the buffer; we own it from here on.
        let skb = unsafe { Skb::from_raw(skb) };
        let dgram = RxDatagram { skb, head, head_len: head_len as usize, payload_len: payload_len as usize };
        handler.rcv(tag as usize, dgram);
    }
}

impl<T: UdpHandler> Drop for UdpSock<T> {
    fn drop(&mut self) {
        // SAFETY: the socket came from `ovc_udp_open` and is closed exactly once, here; the call waits until no
        // receive callback runs, so the handler may be released afterwards.
        unsafe { bindings::ovc_udp_close(self.us.as_ptr()) };
    }
}

/// A counted reference to a tunnel socket's `struct sock`, to send through from the data path.
pub struct UdpSockRef(NonNull<bindings::sock>);

// SAFETY: a held `struct sock` may be used from any context through the calls below.
unsafe impl Send for UdpSockRef {}
// SAFETY: as above.
unsafe impl Sync for UdpSockRef {}

impl Clone for UdpSockRef {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference, so the socket is valid.
        unsafe { bindings::ovc_sk_hold(self.0.as_ptr()) };
        Self(self.0)
    }
}

impl Drop for UdpSockRef {
    fn drop(&mut self) {
        // SAFETY: puts the reference taken when this value was made.
        unsafe { bindings::ovc_sk_put(self.0.as_ptr()) };
    }
}

/// The route of the datagrams sent to one destination, kept between frames (as the kernel's VXLAN keeps one per
/// remote) so that [`UdpSockRef::xmit`] does not look it up for every frame. Per CPU; a change of the routing table
/// or of the path MTU is seen at the next frame. It belongs to its destination: given to `xmit` with another one, it
/// is not used.
pub struct DstCache {
    c: NonNull<bindings::ovc_dst_cache>,
    dst: SocketAddr,
}

// SAFETY: the cache is per CPU and used by the helper with bottom halves off; it is freed only in `drop`.
unsafe impl Send for DstCache {}
// SAFETY: as above.
unsafe impl Sync for DstCache {}

impl DstCache {
    /// An empty cache for datagrams to `dst`. Sleeps.
    pub fn new(dst: SocketAddr) -> Result<Self> {
        // SAFETY: no precondition (process context, which `Sleeps` says).
        let c = unsafe { bindings::ovc_dst_cache_new() };
        Ok(Self { c: NonNull::new(c).ok_or(ENOMEM)?, dst })
    }

    /// The destination it caches the route of.
    pub fn dst(&self) -> &SocketAddr {
        &self.dst
    }
}

impl Drop for DstCache {
    fn drop(&mut self) {
        // SAFETY: `c` came from `ovc_dst_cache_new` and is freed once, here; no `xmit` uses it (it borrows `self`).
        unsafe { bindings::ovc_dst_cache_free(self.c.as_ptr()) };
    }
}

impl UdpSockRef {
    /// Sends `skb` in one UDP datagram from the socket's address to `dst`: first removes `pull` bytes (a received
    /// datagram's UDP header, when relaying), then prepends `header`, UDP and IP (don't-fragment when `df`). `dev` is
    /// the interface the frame was sent through (statistics, loop check). The route comes from `cache` when it is
    /// `dst`'s (else it is looked up). Consumes `skb`.
    #[allow(clippy::too_many_arguments)]
    pub fn xmit(
        &self,
        skb: Skb,
        pull: u32,
        header: &[u8],
        dst: &SocketAddr,
        df: bool,
        dev: Option<&NetDevRef>,
        cache: Option<&DstCache>,
    ) -> core::result::Result<(), TxError> {
        let addr = to_c(dst);
        let dev = dev.map_or(core::ptr::null_mut(), NetDevRef::as_ptr);
        let cache = cache.filter(|c| c.dst == *dst).map_or(core::ptr::null_mut(), |c| c.c.as_ptr());
        // SAFETY: the socket and `dev` are held; `header` and `addr` are valid for the call; `cache` is null or a
        // live cache of `dst` (borrowed for the call); the buffer's ownership passes to the helper, which consumes
        // it on every path.
        let err = unsafe {
            bindings::ovc_udp_xmit(
                self.0.as_ptr(),
                skb.into_raw(),
                pull,
                header.as_ptr(),
                header.len() as u32,
                &addr,
                i32::from(df),
                dev,
                cache,
            )
        };
        match err {
            0 => Ok(()),
            -101 => Err(TxError::NoRoute),
            -40 => Err(TxError::Loop),
            -12 => Err(TxError::NoMemory),
            -90 => Err(TxError::TooBig),
            _ => Err(TxError::Other(err)),
        }
    }
}

/// MTU of the route from `local` to `remote`, if there is one. Sleeps.
pub fn path_mtu(local: &SocketAddr, remote: &SocketAddr) -> Option<u32> {
    let (l, r) = (to_c(local), to_c(remote));
    // SAFETY: both addresses are valid for the call.
    let mtu = unsafe { bindings::ovc_udp_path_mtu(&l, &r) };
    (mtu != 0).then_some(mtu)
}
