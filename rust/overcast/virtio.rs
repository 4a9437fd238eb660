// SPDX-License-Identifier: GPL-2.0

//! virtio drivers in Rust, over the C helpers of rust/helpers/virtio.c:
//!
//! * [`Registration`]: a virtio driver for one device id whose feature validation, probe and remove are a
//!   [`Driver`]'s methods;
//! * [`BlkQueue`]: the request virtqueue of a virtio-blk device — map a blk-mq request's data, add it with a header
//!   and a status byte, get [`InFlight`] completions back (in interrupt context) and end them;
//! * [`BlkDisk`]: the blk-mq disk over a kernel-crate [`TagSet`], with the queue limits the driver chose;
//! * [`VirtioNet`]: a virtio-net device driven as an Ethernet interface (one queue pair, NAPI, DMA-mapped receive
//!   buffers), whose per-packet header decisions are a [`NetHeaders`]' methods.
//!
//! All device addresses come from the virtio core's DMA API path (`virtqueue_add_sgs`), which in a Xen PV Dom0 is
//! swiotlb-xen: the pseudo-physical to machine translation of dissertation §4.2.2.

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

/// virtio device id of a block device.
pub const ID_BLOCK: u32 = 2;
/// virtio device id of a network device.
pub const ID_NET: u32 = 1;

/// A bound virtio device, as handed to a [`Driver`]'s callbacks (valid for the duration of the call).
pub struct Device(NonNull<bindings::virtio_device>);

impl Device {
    /// Whether feature `bit` was negotiated.
    pub fn has_feature(&self, bit: u32) -> bool {
        // SAFETY: `self.0` is a bound device (type invariant: only built inside the driver callbacks).
        unsafe { bindings::ovc_virtio_has_feature(self.0.as_ptr(), bit) != 0 }
    }

    /// The device's name on the virtio bus (`virtio3`).
    pub fn name(&self) -> &CStr {
        // SAFETY: as above; `dev_name` is a NUL-terminated string that lives as long as the device.
        unsafe { CStr::from_char_ptr(bindings::ovc_virtio_dev_name(self.0.as_ptr())) }
    }

    /// The virtio-blk configuration space (fields of features not negotiated read as 0).
    pub fn blk_config(&self) -> bindings::ovc_vblk_config {
        let mut c = bindings::ovc_vblk_config {
            capacity: 0,
            size_max: 0,
            seg_max: 0,
            blk_size: 0,
            max_dma: 0,
            max_discard_sectors: 0,
            max_discard_seg: 0,
            discard_sector_alignment: 0,
            max_write_zeroes_sectors: 0,
            max_write_zeroes_seg: 0,
        };
        // SAFETY: as above; `c` is a valid out-pointer.
        unsafe { bindings::ovc_vblk_read_config(self.0.as_ptr(), &mut c) };
        c
    }

    /// The negotiated feature bits 0..63.
    pub fn features(&self) -> u64 {
        (0..64u32).filter(|&b| self.has_feature(b)).fold(0u64, |acc, b| acc | (1u64 << b))
    }

    /// The virtio-net configuration space (fields of features not negotiated are `None`), and the online CPUs.
    pub fn net_config(&self) -> NetConfig {
        let mut c = bindings::ovc_vnet_config { mac: [0; 6], has_mac: 0, mtu: 0, max_pairs: 0, cpus: 0 };
        // SAFETY: as above; `c` is a valid out-pointer.
        unsafe { bindings::ovc_vnet_read_config(self.0.as_ptr(), &mut c) };
        NetConfig {
            mac: (c.has_mac != 0).then_some(c.mac),
            mtu: u16::try_from(c.mtu).ok().filter(|&m| m != 0),
            max_pairs: u16::try_from(c.max_pairs).ok().filter(|&m| m != 0),
            cpus: c.cpus,
        }
    }
}

/// What a virtio-net device's configuration space says (see [`Device::net_config`]).
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// MAC address (`VIRTIO_NET_F_MAC`).
    pub mac: Option<[u8; 6]>,
    /// MTU (`VIRTIO_NET_F_MTU`).
    pub mtu: Option<u16>,
    /// `max_virtqueue_pairs` (`VIRTIO_NET_F_MQ`).
    pub max_pairs: Option<u16>,
    /// CPUs online now.
    pub cpus: u32,
}

/// A virtio driver.
pub trait Driver: Sync + Send + Sized + 'static {
    /// Per-device data, from probe to remove.
    type Data: Send;
    /// Given the device's `offered` feature bits and the bits the virtio core `accepted`, returns the bits to keep
    /// (a subset of `accepted`), or an error that refuses the device.
    fn validate(&self, dev: &Device, offered: u64, accepted: u64) -> Result<u64>;
    /// Binds the device.
    fn probe(&self, dev: &Device) -> Result<KBox<Self::Data>>;
    /// Unbinds the device: `data` is dropped after this returns; the device must be reset by then.
    fn remove(&self, dev: &Device, data: KBox<Self::Data>);
}

/// A registered virtio driver; unregistered (unbinding every device) when dropped.
pub struct Registration<T: Driver> {
    drv: NonNull<bindings::ovc_virtio_driver>,
    ctx: *mut T,
}

// SAFETY: the registration is only unregistered (from `drop`); `T` is `Send + Sync`.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: `&Registration` gives no access to anything.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    const OPS: bindings::ovc_virtio_driver_ops = bindings::ovc_virtio_driver_ops {
        validate: Some(Self::validate_cb),
        probe: Some(Self::probe_cb),
        remove: Some(Self::remove_cb),
    };

    /// Registers `driver` as virtio driver `name` for devices of `device_id` with device-specific `features`.
    pub fn new(name: &CStr, device_id: u32, features: &[u32], driver: KBox<T>) -> Result<Self> {
        let n = u32::try_from(features.len()).map_err(|_| EINVAL)?;
        let ctx = KBox::into_raw(driver);
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `name` is NUL-terminated (copied); `features` is valid for `n` entries (copied); `OPS` is static;
        // `ctx` stays valid until after unregistration in `drop`.
        let drv = unsafe {
            bindings::ovc_virtio_driver_register(
                name.as_char_ptr(),
                device_id,
                features.as_ptr(),
                n,
                &Self::OPS,
                ctx.cast::<c_void>().cast_const(),
                &mut err,
            )
        };
        match NonNull::new(drv) {
            Some(drv) => Ok(Self { drv, ctx }),
            None => {
                // SAFETY: `ctx` came from `into_raw` above and nothing else refers to it.
                drop(unsafe { KBox::from_raw(ctx) });
                Err(if err < 0 { Error::from_errno(err) } else { ENOMEM })
            }
        }
    }

    /// # Safety
    /// `ctx` is the `T` of a live registration; `vdev` is a device being bound to it.
    unsafe fn parts<'a>(ctx: *const c_void, vdev: *mut bindings::virtio_device) -> Option<(&'a T, Device)> {
        // SAFETY: by the function's contract.
        let t = unsafe { ctx.cast::<T>().as_ref() }?;
        Some((t, Device(NonNull::new(vdev)?)))
    }

    unsafe extern "C" fn validate_cb(
        ctx: *const c_void,
        vdev: *mut bindings::virtio_device,
        offered: u64,
        accept: *mut u64,
    ) -> kernel::ffi::c_int {
        // SAFETY: the C helper calls us with our registration's ctx and the device being validated.
        let Some((t, dev)) = (unsafe { Self::parts(ctx, vdev) }) else { return EINVAL.to_errno() };
        // SAFETY: `accept` is a valid in/out pointer for this call.
        let Some(acc) = (unsafe { accept.as_mut() }) else { return EINVAL.to_errno() };
        match t.validate(&dev, offered, *acc) {
            Ok(keep) => {
                *acc &= keep;
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn probe_cb(
        ctx: *const c_void,
        vdev: *mut bindings::virtio_device,
        err: *mut kernel::ffi::c_int,
    ) -> *mut c_void {
        // SAFETY: as in `validate_cb`.
        let Some((t, dev)) = (unsafe { Self::parts(ctx, vdev) }) else { return core::ptr::null_mut() };
        match t.probe(&dev) {
            Ok(data) => KBox::into_raw(data).cast::<c_void>(),
            Err(e) => {
                // SAFETY: `err` is a valid out-pointer for this call.
                if let Some(err) = unsafe { err.as_mut() } {
                    *err = e.to_errno();
                }
                core::ptr::null_mut()
            }
        }
    }

    unsafe extern "C" fn remove_cb(ctx: *const c_void, vdev: *mut bindings::virtio_device, data: *mut c_void) {
        // SAFETY: as in `validate_cb`.
        let Some((t, dev)) = (unsafe { Self::parts(ctx, vdev) }) else { return };
        if data.is_null() {
            return;
        }
        // SAFETY: `data` is what `probe_cb` returned for this device (from `KBox::into_raw`), handed back once.
        let data = unsafe { KBox::from_raw(data.cast::<T::Data>()) };
        t.remove(&dev, data);
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `new`, unregistered once; this removes every bound device, so no callback uses
        // `ctx` afterwards.
        unsafe { bindings::ovc_virtio_driver_unregister(self.drv.as_ptr()) };
        // SAFETY: `ctx` came from `KBox::into_raw` in `new`; no callback can run any more.
        drop(unsafe { KBox::from_raw(self.ctx) });
    }
}

fn raw_rq<T: Operations>(rq: &Request<T>) -> *mut bindings::request {
    // `Request<T>` is `#[repr(transparent)]` over the C `struct request`.
    core::ptr::from_ref(rq).cast_mut().cast::<bindings::request>()
}

/// Receives a virtio-blk queue's completions.
pub trait BlkCompletion<T: Operations> {
    /// `rq` finished with device `status` (0xff: none written). Called in interrupt context; must end `rq`.
    fn done(rq: InFlight<T>, status: u8);
}

/// A request the device has finished; the driver must [`end`](InFlight::end) it.
pub struct InFlight<T: Operations> {
    rq: NonNull<bindings::request>,
    _t: PhantomData<T>,
}

impl<T: Operations> InFlight<T> {
    /// Ends the request: `Ok` completes it, `Err(e)` fails it with `e`.
    pub fn end(self, res: Result) {
        let err = match res {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
        // SAFETY: the device gave the request back; we hold the reference `BlkQueue::add` took over from the block
        // layer (its `ARef` was turned into this handle), so ending it here is ours to do, once.
        unsafe { bindings::ovc_vblk_end(self.rq.as_ptr(), err) };
    }
}

/// The request virtqueue of a virtio-blk device. Dropping it resets the device and deletes the queue: only after
/// the disk over it is gone.
pub struct BlkQueue<T: Operations> {
    q: NonNull<bindings::ovc_vblk_queue>,
    _t: PhantomData<T>,
}

// SAFETY: the C queue serialises ring access with its own spinlock; the handle is just a pointer.
unsafe impl<T: Operations> Send for BlkQueue<T> {}
// SAFETY: as above.
unsafe impl<T: Operations> Sync for BlkQueue<T> {}

impl<T: Operations> BlkQueue<T> {
    unsafe extern "C" fn done_cb<C: BlkCompletion<T>>(rq: *mut bindings::request, status: u8) {
        if let Some(rq) = NonNull::new(rq) {
            C::done(InFlight { rq, _t: PhantomData }, status);
        }
    }

    /// Sets up the request queues of `dev` (as many as it offers with multi-queue, at most `max_queues`) with
    /// scatterlists of `max_segs` entries; completions go to `C`. The disk's tag set must have
    /// [`queues`](Self::queues) hardware queues: requests of hardware queue `i` go to virtqueue `i`.
    pub fn new<C: BlkCompletion<T>>(dev: &Device, max_segs: u32, max_queues: u32) -> Result<Self> {
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `dev` is being probed (its driver data is ours); `done_cb` stays valid for the queue's life.
        let q = unsafe {
            bindings::ovc_vblk_queue_new(dev.0.as_ptr(), max_segs, max_queues, Some(Self::done_cb::<C>), &mut err)
        };
        let e = if err < 0 { Error::from_errno(err) } else { ENOMEM };
        NonNull::new(q).map(|q| Self { q, _t: PhantomData }).ok_or(e)
    }

    /// Number of request virtqueues.
    pub fn queues(&self) -> u32 {
        // SAFETY: `q` is live until `drop`.
        unsafe { bindings::ovc_vblk_queue_count(self.q.as_ptr()) }
    }

    /// Descriptors in the smallest ring.
    pub fn ring_size(&self) -> u32 {
        // SAFETY: `q` is live until `drop`.
        unsafe { bindings::ovc_vblk_queue_ring_size(self.q.as_ptr()) }
    }

    /// Lets the device run (DRIVER_OK).
    pub fn ready(&self) {
        // SAFETY: `q` is live until `drop`.
        unsafe { bindings::ovc_vblk_queue_ready(self.q.as_ptr()) };
    }

    /// Maps `rq`'s data; returns its number of data segments.
    pub fn map(&self, rq: &Request<T>) -> Result<u32> {
        // SAFETY: `q` is live; `rq` is a started request we own (its tag is reserved for it).
        let n = unsafe { bindings::ovc_vblk_map(self.q.as_ptr(), raw_rq(rq)) };
        u32::try_from(n).map_err(|_| Error::from_errno(n))
    }

    /// Adds `rq` behind header `hdr`, followed either by its data (mapped by [`map`](Self::map) into `nsegs`
    /// segments; the device writes them if `data_in`) or, for a request without data (`nsegs` 0), by `payload`
    /// (copied; the ranges of a discard or write-zeroes, at most [`PAYLOAD_MAX`] bytes). On success the device owns
    /// the request until it comes back as [`InFlight`]; on failure it is handed back with the error (and the device
    /// is notified of what was added before). The device is notified when `last` is set (the block layer's batch
    /// ends with this request); otherwise a later `add` with `last` or a [`kick`](Self::kick) must follow.
    pub fn add(
        &self,
        rq: ARef<Request<T>>,
        hdr: &[u8; 16],
        nsegs: u32,
        data_in: bool,
        payload: &[u8],
        last: bool,
    ) -> Result<(), (Error, ARef<Request<T>>)> {
        let Ok(payload_len) = u32::try_from(payload.len()) else {
            return Err((EINVAL, rq));
        };
        // SAFETY: `q` is live; `rq` is owned by us and mapped; `hdr` is 16 readable bytes and `payload`
        // `payload_len` readable bytes, both copied (the helper refuses a payload over PAYLOAD_MAX).
        let ret = unsafe {
            bindings::ovc_vblk_add(
                self.q.as_ptr(),
                raw_rq(&rq),
                hdr.as_ptr(),
                nsegs,
                i32::from(data_in),
                payload.as_ptr(),
                payload_len,
                i32::from(last),
            )
        };
        if ret == 0 {
            // The device holds the request now: keep its reference alive until `InFlight::end`.
            let _ = ARef::into_raw(rq);
            Ok(())
        } else {
            Err((Error::from_errno(ret), rq))
        }
    }

    /// Notifies the device of requests added without `last` (blk-mq's `commit_rqs`).
    pub fn kick(&self) {
        // SAFETY: `q` is live until `drop`.
        unsafe { bindings::ovc_vblk_kick(self.q.as_ptr()) };
    }
}

impl<T: Operations> Drop for BlkQueue<T> {
    fn drop(&mut self) {
        // SAFETY: created in `new`, freed once; the owner drops it only after the disk (and so every request) is
        // gone.
        unsafe { bindings::ovc_vblk_queue_free(self.q.as_ptr()) };
    }
}

/// Largest payload [`BlkQueue::add`] takes.
pub const PAYLOAD_MAX: usize = bindings::OVC_VBLK_PAYLOAD_MAX as usize;

/// Queue limits of a [`BlkDisk`].
pub type BlkLimits = bindings::ovc_vblk_limits;

/// A blk-mq disk of a virtio device, added on creation and removed (after its requests finish) when dropped.
pub struct BlkDisk<T: Operations> {
    disk: NonNull<bindings::gendisk>,
    data: *mut c_void,
    _tagset: Arc<TagSet<T>>,
}

// SAFETY: the disk is driven through thread-safe block-layer calls; `data` is a `QueueData` (which is `Sync`)
// released once in `drop`.
unsafe impl<T: Operations> Send for BlkDisk<T> where T::QueueData: Send {}
// SAFETY: `&BlkDisk` gives access to nothing.
unsafe impl<T: Operations> Sync for BlkDisk<T> where T::QueueData: Send {}

impl<T: Operations> BlkDisk<T> {
    /// Creates and adds disk `name` of `sectors` × 512 bytes with `lim`, as a child of `dev`.
    pub fn new(
        dev: &Device,
        name: &CStr,
        sectors: u64,
        lim: &BlkLimits,
        tagset: Arc<TagSet<T>>,
        queue_data: T::QueueData,
    ) -> Result<Self> {
        let data = queue_data.into_foreign();
        // `TagSet<T>` is `#[repr(transparent)]` over the C `struct blk_mq_tag_set`.
        let set = Arc::as_ptr(&tagset).cast::<bindings::blk_mq_tag_set>().cast_mut();
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `dev` is being probed; `set` is a live tag set kept alive by `tagset` (dropped after the disk);
        // `data` is the queue data the Operations callbacks borrow, released only after the disk is removed; `name`
        // is NUL-terminated; `lim` is read during the call.
        let disk = unsafe {
            bindings::ovc_vblk_disk_add(dev.0.as_ptr(), set, data, sectors, lim, name.as_char_ptr(), &mut err)
        };
        match NonNull::new(disk) {
            Some(disk) => Ok(Self { disk, data, _tagset: tagset }),
            None => {
                // SAFETY: `data` came from `into_foreign` above and no disk uses it.
                drop(unsafe { T::QueueData::from_foreign(data) });
                Err(if err < 0 { Error::from_errno(err) } else { ENOMEM })
            }
        }
    }
}

impl<T: Operations> Drop for BlkDisk<T> {
    fn drop(&mut self) {
        // SAFETY: added in `new`, removed once; `del_gendisk` waits for every request in flight, so no callback
        // borrows `data` afterwards.
        unsafe { bindings::ovc_vblk_disk_remove(self.disk.as_ptr()) };
        // SAFETY: `data` came from `into_foreign` in `new` and is converted back exactly once, here.
        drop(unsafe { T::QueueData::from_foreign(self.data) });
    }
}

/// Length of the virtio-net header in front of every packet.
pub const NET_HDR_LEN: usize = bindings::OVC_VNET_HDR_LEN as usize;

/// A frame to transmit (offsets from its Ethernet header), as the stack handed it over.
pub type NetTxMeta = bindings::ovc_vnet_txmeta;
/// `NetTxMeta::gso` values.
pub mod net_gso {
    use super::bindings;
    /// An ordinary frame.
    pub const NONE: u32 = bindings::OVC_VNET_GSO_NONE;
    /// TCP/IPv4 segmentation.
    pub const TCP4: u32 = bindings::OVC_VNET_GSO_TCP4;
    /// TCP/IPv6 segmentation.
    pub const TCP6: u32 = bindings::OVC_VNET_GSO_TCP6;
}

/// Checksum state of a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetRxCsum {
    /// The stack verifies it.
    None,
    /// The device verified it.
    Valid,
    /// Partial: (start, offset) from the Ethernet header.
    Partial(u16, u16),
}

/// Segmentation offload of a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetRxGso {
    /// One frame.
    None,
    /// TCP/IPv4 for segments of this many payload bytes.
    Tcp4(u16),
    /// TCP/IPv6 for segments of this many payload bytes.
    Tcp6(u16),
}

/// What the header of a received packet says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRxInfo {
    /// Checksum state.
    pub csum: NetRxCsum,
    /// Segmentation offload.
    pub gso: NetRxGso,
    /// Ring buffers the packet spans (mergeable buffers), at least 1.
    pub buffers: u16,
}

/// The receive filter a [`VirtioNet`] interface asks of its device (control queue, `VIRTIO_NET_F_CTRL_RX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRxFilter {
    /// Every frame passes.
    pub promisc: bool,
    /// Every multicast frame passes.
    pub allmulti: bool,
    /// Bytes of `MAC_TABLE_SET` data written to the table buffer.
    pub table_len: usize,
}

/// The decisions of a [`VirtioNet`] interface: per packet (`tx_hdr`, `rx_hdr`: softirq context, must not sleep)
/// and for the receive filter (`rx_filter`: process context, under the control queue's lock, must not sleep).
pub trait NetHeaders: Send + Sync + 'static {
    /// The header for frame `m`; an error drops the frame (counted as a transmit drop).
    fn tx_hdr(&self, m: &NetTxMeta) -> Result<[u8; NET_HDR_LEN]>;
    /// What the header `hdr` of a received packet, whose first buffer holds `len` bytes (header included), says;
    /// an error drops the packet (counted as a receive drop).
    fn rx_hdr(&self, hdr: &[u8; NET_HDR_LEN], len: u32) -> Result<NetRxInfo>;
    /// The filter for an interface in promiscuous/all-multicast mode or not, whose addresses are `addrs`
    /// (`n_uc` unicast then `n_mc` multicast, 6 bytes each); the `MAC_TABLE_SET` data goes to `table`.
    fn rx_filter(
        &self,
        promisc: bool,
        allmulti: bool,
        addrs: &[u8],
        n_uc: usize,
        n_mc: usize,
        table: &mut [u8],
    ) -> Result<NetRxFilter>;
}

/// How a [`VirtioNet`] interface is set up.
pub struct NetParams {
    /// MAC address; `None`: a random one.
    pub mac: Option<[u8; 6]>,
    /// MTU and the largest MTU the operator may set.
    pub mtu: u32,
    /// Largest MTU.
    pub max_mtu: u32,
    /// Receive buffer size (header + largest frame).
    pub rx_buf_len: u32,
    /// The transmit queue stops while fewer ring descriptors are free.
    pub tx_stop_free: u32,
    /// `OVC_VNET_OFF_*` bits.
    pub offloads: u32,
    /// Queue pairs to drive (1 without `VIRTIO_NET_F_MQ`).
    pub pairs: u32,
}

/// Offload bits of [`NetParams::offloads`].
pub mod net_off {
    use super::bindings;
    /// Scatter-gather.
    pub const SG: u32 = bindings::OVC_VNET_OFF_SG;
    /// Transmit checksum.
    pub const HW_CSUM: u32 = bindings::OVC_VNET_OFF_HW_CSUM;
    /// TCP/IPv4 segmentation.
    pub const TSO4: u32 = bindings::OVC_VNET_OFF_TSO4;
    /// TCP/IPv6 segmentation.
    pub const TSO6: u32 = bindings::OVC_VNET_OFF_TSO6;
    /// Receive checksum.
    pub const RX_CSUM: u32 = bindings::OVC_VNET_OFF_RX_CSUM;
}

/// What closing a [`VirtioNet`] found.
#[derive(Clone, Copy, Debug)]
pub struct NetCloseReport {
    /// Receive buffers still in the ring (taken back and unmapped).
    pub rx_taken_back: u32,
    /// Transmitted frames not yet reclaimed (taken back and unmapped).
    pub tx_taken_back: u32,
    /// Buffers unaccounted for afterwards: a leaked DMA mapping if not 0.
    pub unaccounted: isize,
}

/// Largest number of fragments of a transmitted frame.
pub fn net_max_frags() -> u32 {
    // SAFETY: reads a constant.
    unsafe { bindings::ovc_vnet_max_frags() }
}

/// A virtio-net device driven as a registered Ethernet interface. Dropping it (or [`close`](Self::close))
/// unregisters the interface, resets the device and takes back every buffer.
pub struct VirtioNet<H: NetHeaders> {
    n: Option<NonNull<bindings::ovc_vnet>>,
    // Released after the interface is gone (field order: `n` is freed in `drop`/`close` first).
    _h: Arc<H>,
}

// SAFETY: the C side serialises its data path itself; the handle is a pointer used only for setup/teardown calls.
unsafe impl<H: NetHeaders> Send for VirtioNet<H> {}
// SAFETY: `&VirtioNet` only reads the name and ring sizes.
unsafe impl<H: NetHeaders> Sync for VirtioNet<H> {}

impl<H: NetHeaders> VirtioNet<H> {
    const OPS: bindings::ovc_vnet_ops = bindings::ovc_vnet_ops {
        tx_hdr: Some(Self::tx_hdr_cb),
        rx_hdr: Some(Self::rx_hdr_cb),
        rx_filter: Some(Self::rx_filter_cb),
    };

    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn rx_filter_cb(
        ctx: *const c_void,
        flags: u32,
        addrs: *const u8,
        n_uc: u32,
        n_mc: u32,
        table: *mut u8,
        table_len: u32,
        f: *mut bindings::ovc_vnet_rxfilter,
    ) -> i32 {
        // SAFETY: as in `tx_hdr_cb`.
        let Some(h) = (unsafe { ctx.cast::<H>().as_ref() }) else { return EINVAL.to_errno() };
        let (n_uc, n_mc) = (n_uc as usize, n_mc as usize);
        let Some(len) = n_uc.checked_add(n_mc).and_then(|n| n.checked_mul(6)) else { return EINVAL.to_errno() };
        let addrs: &[u8] = if len == 0 || addrs.is_null() {
            &[]
        } else {
            // SAFETY: the C caller passes `(n_uc + n_mc) * 6` readable bytes at `addrs`, valid for the call.
            unsafe { core::slice::from_raw_parts(addrs, len) }
        };
        if table.is_null() {
            return EINVAL.to_errno();
        }
        // SAFETY: the C caller passes `table_len` writable bytes at `table` (the control buffer, under its lock),
        // not aliased by `addrs`.
        let table = unsafe { core::slice::from_raw_parts_mut(table, table_len as usize) };
        // SAFETY: `f` is a valid out-pointer for the call.
        let Some(f) = (unsafe { f.as_mut() }) else { return EINVAL.to_errno() };
        let promisc = flags & bindings::OVC_VNET_RX_PROMISC != 0;
        let allmulti = flags & bindings::OVC_VNET_RX_ALLMULTI != 0;
        match h.rx_filter(promisc, allmulti, addrs, n_uc, n_mc, table) {
            Ok(r) => {
                f.promisc = i32::from(r.promisc);
                f.allmulti = i32::from(r.allmulti);
                f.table_len = u32::try_from(r.table_len).unwrap_or(0);
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn tx_hdr_cb(ctx: *const c_void, m: *const bindings::ovc_vnet_txmeta, hdr: *mut u8) -> i32 {
        // SAFETY: `ctx` is the `H` kept alive by `_h` until the interface is gone (no callback runs after).
        let Some(h) = (unsafe { ctx.cast::<H>().as_ref() }) else { return EINVAL.to_errno() };
        // SAFETY: `m` is valid for the call.
        let Some(m) = (unsafe { m.as_ref() }) else { return EINVAL.to_errno() };
        match h.tx_hdr(m) {
            Ok(b) => {
                // SAFETY: the C caller passes `OVC_VNET_HDR_LEN` writable bytes.
                unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), hdr, NET_HDR_LEN) };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn rx_hdr_cb(
        ctx: *const c_void,
        hdr: *const u8,
        len: u32,
        m: *mut bindings::ovc_vnet_rxmeta,
    ) -> i32 {
        // SAFETY: as in `tx_hdr_cb`.
        let Some(h) = (unsafe { ctx.cast::<H>().as_ref() }) else { return EINVAL.to_errno() };
        // SAFETY: the C caller passes a receive buffer of at least `OVC_VNET_HDR_LEN` bytes (rx_buf_len is checked
        // to be larger), valid for the call.
        let Some(hdr) = (unsafe { hdr.cast::<[u8; NET_HDR_LEN]>().as_ref() }) else { return EINVAL.to_errno() };
        // SAFETY: `m` is a valid out-pointer for the call.
        let Some(m) = (unsafe { m.as_mut() }) else { return EINVAL.to_errno() };
        let info = match h.rx_hdr(hdr, len) {
            Ok(i) => i,
            Err(e) => return e.to_errno(),
        };
        match info.csum {
            NetRxCsum::None => m.csum = bindings::OVC_VNET_RX_CSUM_NONE,
            NetRxCsum::Valid => m.csum = bindings::OVC_VNET_RX_CSUM_VALID,
            NetRxCsum::Partial(start, off) => {
                m.csum = bindings::OVC_VNET_RX_CSUM_PARTIAL;
                m.csum_start = u32::from(start);
                m.csum_offset = u32::from(off);
            }
        }
        (m.gso, m.gso_size) = match info.gso {
            NetRxGso::None => (bindings::OVC_VNET_GSO_NONE, 0),
            NetRxGso::Tcp4(size) => (bindings::OVC_VNET_GSO_TCP4, u32::from(size)),
            NetRxGso::Tcp6(size) => (bindings::OVC_VNET_GSO_TCP6, u32::from(size)),
        };
        m.buffers = u32::from(info.buffers);
        0
    }

    /// Drives `dev` as interface `name` (a `%d` pattern is numbered by the kernel). Sleeps.
    pub fn new(dev: &Device, name: &CStr, p: &NetParams, headers: Arc<H>) -> Result<Self> {
        let raw = bindings::ovc_vnet_params {
            name: name.as_char_ptr(),
            mac: p.mac.unwrap_or([0; 6]),
            random_mac: i32::from(p.mac.is_none()),
            mtu: p.mtu,
            max_mtu: p.max_mtu,
            rx_buf_len: p.rx_buf_len,
            tx_stop_free: p.tx_stop_free,
            offloads: p.offloads,
            pairs: p.pairs,
        };
        let ctx = Arc::as_ptr(&headers).cast::<c_void>();
        let mut err: kernel::ffi::c_int = 0;
        // SAFETY: `dev` is being probed (its driver data is ours); `raw` and `name` are read during the call;
        // `OPS` is static; `ctx` stays valid until the interface is freed (`_h` is released after that).
        let n = unsafe { bindings::ovc_vnet_new(dev.0.as_ptr(), &raw, &Self::OPS, ctx, &mut err) };
        match NonNull::new(n) {
            Some(n) => Ok(Self { n: Some(n), _h: headers }),
            None => Err(if err < 0 { Error::from_errno(err) } else { ENOMEM }),
        }
    }

    /// The interface's name (`bnet0`), or an empty string after close.
    pub fn name(&self) -> &CStr {
        match self.n {
            // SAFETY: the interface is registered while `n` is set; its name is NUL-terminated.
            Some(n) => unsafe { CStr::from_char_ptr(bindings::ovc_vnet_name(n.as_ptr())) },
            None => c"",
        }
    }

    /// Frames dropped because [`NetHeaders`] refused their header: (received, transmitted).
    pub fn header_errors(&self) -> (u64, u64) {
        let (mut rx, mut tx) = (0, 0);
        if let Some(n) = self.n {
            // SAFETY: live while `n` is set; the out-pointers are valid.
            unsafe { bindings::ovc_vnet_header_errors(n.as_ptr(), &mut rx, &mut tx) };
        }
        (rx as u64, tx as u64)
    }

    /// Ring sizes (receive, transmit).
    pub fn rings(&self) -> (u32, u32) {
        match self.n {
            // SAFETY: live while `n` is set.
            Some(n) => unsafe { (bindings::ovc_vnet_rx_ring(n.as_ptr()), bindings::ovc_vnet_tx_ring(n.as_ptr())) },
            None => (0, 0),
        }
    }

    /// Queue pairs in use (fewer than asked for if the device refused the number).
    pub fn queue_pairs(&self) -> u32 {
        match self.n {
            // SAFETY: live while `n` is set.
            Some(n) => unsafe { bindings::ovc_vnet_queue_pairs(n.as_ptr()) },
            None => 0,
        }
    }

    /// Unregisters the interface, resets the device, takes back every buffer; says what it found.
    pub fn close(mut self) -> NetCloseReport {
        self.free()
    }

    fn free(&mut self) -> NetCloseReport {
        let mut r = NetCloseReport { rx_taken_back: 0, tx_taken_back: 0, unaccounted: 0 };
        if let Some(n) = self.n.take() {
            // SAFETY: created in `new`, freed once (`n` was taken); afterwards no callback uses `ctx`.
            r.unaccounted = unsafe { bindings::ovc_vnet_free(n.as_ptr(), &mut r.rx_taken_back, &mut r.tx_taken_back) };
        }
        r
    }
}

impl<H: NetHeaders> Drop for VirtioNet<H> {
    fn drop(&mut self) {
        let _ = self.free();
    }
}
