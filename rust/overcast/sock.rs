// SPDX-License-Identifier: GPL-2.0

//! Kernel TCP client connections for block I/O (rust/helpers/sock.c): memalloc sockets that may allocate from the
//! emergency reserves and never recurse into I/O (as nbd sets them up), `TCP_NODELAY`, and send/receive timeouts so a
//! stalled peer turns into `ETIMEDOUT` instead of a hung swap device.

// Each module compiles the whole rust/overcast tree but uses only some of it.
#![allow(dead_code, unreachable_pub)]

use super::bindings;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::prelude::*;

/// A connected TCP stream; shut down and released when dropped.
pub struct TcpStream(NonNull<bindings::socket>);

// SAFETY: a kernel socket may be used from any task; `&mut self` serialises our use of it.
unsafe impl Send for TcpStream {}

impl TcpStream {
    /// Connects to `addr` (IPv4 or IPv6); every later send or receive fails with `ETIMEDOUT` after `timeout_ms`.
    pub fn connect(addr: &core::net::SocketAddr, timeout_ms: u32) -> Result<Self> {
        let (family, ip) = match addr.ip() {
            core::net::IpAddr::V4(v4) => {
                let mut ip = [0u8; 16];
                ip[..4].copy_from_slice(&v4.octets());
                (kernel::bindings::AF_INET, ip)
            }
            core::net::IpAddr::V6(v6) => (kernel::bindings::AF_INET6, v6.octets()),
        };
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `ip` is 16 readable bytes (the helper reads 4 of them for IPv4); `err` is a valid out-pointer.
        let s = unsafe { bindings::ovc_sock_connect(family as _, ip.as_ptr(), addr.port(), timeout_ms, &mut err) };
        match NonNull::new(s) {
            Some(s) => Ok(Self(s)),
            None => Err(if err < 0 { Error::from_errno(err) } else { ETIMEDOUT }),
        }
    }

    /// Sends `a` and then `b`, completely (one `sendmsg` with two iovecs when possible).
    pub fn send2(&mut self, a: &[u8], b: &[u8]) -> Result {
        // SAFETY: the socket is connected; `a` and `b` are readable for their lengths during the call.
        kernel::error::to_result(unsafe {
            bindings::ovc_sock_send2(
                self.0.as_ptr(),
                a.as_ptr().cast::<c_void>(),
                a.len() as kernel::ffi::c_ulong,
                b.as_ptr().cast::<c_void>(),
                b.len() as kernel::ffi::c_ulong,
            )
        })
    }

    /// Receives exactly `buf.len()` bytes.
    pub fn recv_exact(&mut self, buf: &mut [u8]) -> Result {
        // SAFETY: the socket is connected; `buf` is writable for its length during the call.
        kernel::error::to_result(unsafe {
            bindings::ovc_sock_recv(self.0.as_ptr(), buf.as_mut_ptr().cast::<c_void>(), buf.len() as kernel::ffi::c_ulong)
        })
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        // SAFETY: connected in `connect`, released once.
        unsafe { bindings::ovc_sock_close(self.0.as_ptr()) };
    }
}
