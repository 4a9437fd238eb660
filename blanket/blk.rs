// SPDX-License-Identifier: GPL-2.0

//! `blanket_blk`: the Blanket virtio-blk driver (dissertation §4.2.2). It binds the provider's virtio-blk device
//! (only when the operator binds it: the C virtio_blk driver keeps every device it already has) and gives Dom0 a
//! blk-mq disk `/dev/bvd<N>` with flush, discard and write-zeroes. Feature negotiation, queue limits, request
//! headers, range payloads and status handling are blanket/core's; the virtqueue and DMA mechanics are the kernel's
//! virtio core's, through rust/overcast/virtio.rs.

use crate::core_logic::blkreq::{self, DevCaps, Op, Range, RangeOp};
use crate::core_logic::features::{self, bit, DeviceKind, Features};
use crate::overcast::blk::{rq_info, rq_ranges, RqOp, RqRange};
use crate::overcast::virtio::{self, BlkCompletion, BlkDisk, BlkLimits, BlkQueue, Device, Driver, InFlight};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::block::mq::{Operations, Request, TagSet};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, ArcBorrow};

// A request's encoded ranges fit the slot the C queue copies them into.
const _: () = assert!(blkreq::MAX_PAYLOAD <= virtio::PAYLOAD_MAX);

/// Most disks bound at once (`bvd0` .. `bvd63`).
const MAX_DISKS: u32 = 64;
/// Most request queues per disk (the device's `num_queues` and the number of possible CPUs limit it further).
const MAX_QUEUES: u32 = 16;

/// The registered driver: hands out disk numbers, lowest free first, so a device rebound gets its name back.
pub(crate) struct BlkDriver {
    names: AtomicU64,
}

impl BlkDriver {
    pub(crate) fn new() -> Self {
        Self { names: AtomicU64::new(0) }
    }

    fn take_index(&self) -> Option<u32> {
        let mut cur = self.names.load(Ordering::Relaxed);
        loop {
            let free = (!cur).trailing_zeros();
            if free >= MAX_DISKS {
                return None;
            }
            match self.names.compare_exchange(cur, cur | (1u64 << free), Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(free),
                Err(now) => cur = now,
            }
        }
    }

    fn release_index(&self, i: u32) {
        if i < MAX_DISKS {
            self.names.fetch_and(!(1u64 << i), Ordering::AcqRel);
        }
    }
}

/// What the request path needs: the queue and what the device negotiated.
pub(crate) struct Shared {
    queue: BlkQueue<BlkOps>,
    caps: DevCaps,
}

/// One bound device. Field order is drop order: the disk goes first (waiting for its requests), then the queue
/// (resetting the device) once the last reference to `Shared` is gone.
pub(crate) struct BlkDev {
    _disk: BlkDisk<BlkOps>,
    _shared: Arc<Shared>,
    index: u32,
}

/// The device's requested feature table (device-specific bits of blanket/core's supported set).
pub(crate) fn feature_table() -> ([u32; 24], usize) {
    features::device_table(DeviceKind::Blk)
}

impl Driver for BlkDriver {
    type Data = BlkDev;

    fn validate(&self, dev: &Device, offered: u64, _accepted: u64) -> Result<u64> {
        match features::negotiate(DeviceKind::Blk, Features(offered)) {
            Ok(f) => Ok(f.0),
            Err(e) => {
                pr_err!("blanket_blk: {}: not bound: {}\n", dev.name(), e.message());
                Err(Error::from_errno(-e.errno()))
            }
        }
    }

    fn probe(&self, dev: &Device) -> Result<KBox<BlkDev>> {
        let index = self.take_index().ok_or_else(|| {
            pr_err!(
                "blanket_blk: {}: not bound: {} blanket disks exist already; unbind one first\n",
                dev.name(),
                MAX_DISKS
            );
            ENOSPC
        })?;
        match self.probe_as(dev, index) {
            Ok(d) => Ok(d),
            Err(e) => {
                self.release_index(index);
                Err(e)
            }
        }
    }

    fn remove(&self, dev: &Device, data: KBox<BlkDev>) {
        let index = data.index;
        drop(data);
        self.release_index(index);
        pr_info!("blanket_blk: {}: bvd{} removed\n", dev.name(), index);
    }
}

impl BlkDriver {
    fn probe_as(&self, dev: &Device, index: u32) -> Result<KBox<BlkDev>> {
        let cfg = dev.blk_config();
        let indirect = dev.has_feature(bit::RING_INDIRECT_DESC);
        let bad_config = |e: blkreq::ConfigError| {
            pr_err!(
                "blanket_blk: {}: not bound: unusable configuration ({:?}); check the provider's virtio-blk settings\n",
                dev.name(),
                e
            );
            Error::from_errno(-e.errno())
        };
        // Scatterlists as long as the device allows (the ring may shorten the limit below, never lengthen it).
        let sg_len = blkreq::queue_limits(cfg.seg_max, 0, 0, u32::MAX, true).map_err(bad_config)?.max_segments;
        let queue = BlkQueue::<BlkOps>::new::<BlkOps>(dev, sg_len, MAX_QUEUES).inspect_err(|e| {
            pr_err!("blanket_blk: {}: not bound: no request virtqueue ({:?})\n", dev.name(), e);
        })?;
        let queues = queue.queues();
        // A segment must also fit one DMA mapping (swiotlb's bounce limit in a Xen PV Dom0).
        let seg_size = blkreq::min_nonzero(cfg.size_max, cfg.max_dma);
        let lim = blkreq::queue_limits(cfg.seg_max, seg_size, cfg.blk_size, queue.ring_size(), indirect)
            .map_err(bad_config)?;
        let caps = DevCaps {
            flush: dev.has_feature(bit::BLK_FLUSH),
            discard: dev
                .has_feature(bit::BLK_DISCARD)
                .then(|| blkreq::range_limits(cfg.max_discard_sectors, cfg.max_discard_seg)),
            write_zeroes: dev
                .has_feature(bit::BLK_WRITE_ZEROES)
                .then(|| blkreq::range_limits(cfg.max_write_zeroes_sectors, cfg.max_write_zeroes_seg)),
            read_only: dev.has_feature(bit::BLK_RO),
            max_descs: u16::try_from(lim.max_segments.saturating_add(2)).unwrap_or(u16::MAX),
        };
        let shared = Arc::new(Shared { queue, caps }, GFP_KERNEL)?;
        shared.queue.ready();
        let tagset = Arc::pin_init(TagSet::new(queues, lim.depth, 1), GFP_KERNEL)?;
        let name = CString::try_from_fmt(fmt!("bvd{}", index))?;
        let limits = BlkLimits {
            logical_block_size: lim.logical_block_size,
            max_segments: lim.max_segments,
            max_segment_size: lim.max_segment_size,
            max_hw_sectors: lim.max_hw_sectors,
            write_cache: i32::from(caps.flush),
            read_only: i32::from(caps.read_only),
            max_discard_sectors: caps.discard.map_or(0, |d| d.max_sectors),
            max_discard_segments: caps.discard.map_or(0, |d| d.max_ranges),
            discard_granularity: blkreq::discard_granularity(cfg.discard_sector_alignment, lim.logical_block_size),
            max_write_zeroes_sectors: caps.write_zeroes.map_or(0, |w| w.max_sectors),
        };
        let disk = BlkDisk::new(dev, &name, cfg.capacity, &limits, tagset, shared.clone());
        let disk = disk.inspect_err(|e| {
            pr_err!("blanket_blk: {}: not bound: adding disk {} failed ({:?})\n", dev.name(), &*name, e);
        })?;
        pr_info!(
            "blanket_blk: {}: bvd{}: {} sectors, block {}, {} segments of <= {} B, {} queue(s) of depth {}, flush {}, discard {}, write-zeroes {}, ro {}, indirect {}\n",
            dev.name(),
            index,
            cfg.capacity,
            lim.logical_block_size,
            lim.max_segments,
            lim.max_segment_size,
            queues,
            lim.depth,
            caps.flush,
            caps.discard.is_some(),
            caps.write_zeroes.is_some(),
            caps.read_only,
            indirect
        );
        Ok(KBox::new(BlkDev { _disk: disk, _shared: shared, index }, GFP_KERNEL)?)
    }
}

/// blk-mq operations of a blanket disk.
pub(crate) struct BlkOps;

#[vtable]
impl Operations for BlkOps {
    type QueueData = Arc<Shared>;

    fn queue_rq(shared: ArcBorrow<'_, Shared>, rq: ARef<Request<Self>>, is_last: bool) -> Result {
        let info = rq_info(&rq);
        let op = match info.op {
            RqOp::Read => Op::Read,
            RqOp::Write => Op::Write,
            RqOp::Flush => Op::Flush,
            RqOp::Discard => return Self::queue_ranges(&shared, rq, RangeOp::Discard, is_last),
            RqOp::WriteZeroes => {
                let op = RangeOp::WriteZeroes { unmap: !info.no_unmap };
                return Self::queue_ranges(&shared, rq, op, is_last);
            }
            RqOp::Other => return Err(EOPNOTSUPP),
        };
        let segs = shared.queue.map(&rq)?;
        let segs16 = u16::try_from(segs).map_err(|_| E2BIG)?;
        let plan = blkreq::plan(&shared.caps, op, info.pos >> 9, segs16, u64::from(info.len))
            .map_err(|e| Error::from_errno(-e.errno()))?;
        Self::add(&shared, rq, &plan.header.encode(), segs, plan.data_device_writes, &[], is_last)
    }
    fn commit_rqs(shared: ArcBorrow<'_, Shared>) {
        shared.queue.kick();
    }

    fn complete(_rq: ARef<Request<Self>>) {
        // Requests are ended from the virtqueue callback (BlkCompletion::done); blk_mq_complete_request is unused.
    }
}

impl BlkOps {
    /// A discard or write-zeroes: its ranges, encoded by blanket/core, go to the device as the request's payload.
    fn queue_ranges(shared: &Shared, rq: ARef<Request<Self>>, op: RangeOp, is_last: bool) -> Result {
        let mut raw = [RqRange { sector: 0, sectors: 0 }; blkreq::MAX_RANGES as usize];
        let n = rq_ranges(&rq, &mut raw)?;
        let mut ranges = [Range::default(); blkreq::MAX_RANGES as usize];
        for (r, w) in ranges.iter_mut().zip(raw.iter().take(n)) {
            *r = Range { sector: w.sector, sectors: w.sectors };
        }
        let mut payload = [0u8; blkreq::MAX_PAYLOAD];
        let (plan, len) = blkreq::plan_ranges(&shared.caps, op, ranges.get(..n).ok_or(E2BIG)?, &mut payload)
            .map_err(|e| Error::from_errno(-e.errno()))?;
        let payload = payload.get(..len).ok_or(EINVAL)?;
        Self::add(shared, rq, &plan.header.encode(), 0, false, payload, is_last)
    }

    /// Adds a planned request to its virtqueue; one notification per batch of the block layer (`is_last`, or
    /// commit_rqs when a batch ends early).
    fn add(
        shared: &Shared,
        rq: ARef<Request<Self>>,
        hdr: &[u8; 16],
        segs: u32,
        data_in: bool,
        payload: &[u8],
        is_last: bool,
    ) -> Result {
        match shared.queue.add(rq, hdr, segs, data_in, payload, is_last) {
            Ok(()) => Ok(()),
            // Ring full: BLK_STS_RESOURCE, the block layer dispatches it again when a request completes.
            Err((e, _rq)) if e == ENOSPC => Err(ENOMEM),
            Err((e, _rq)) => Err(e),
        }
    }
}

impl BlkCompletion<BlkOps> for BlkOps {
    fn done(rq: InFlight<BlkOps>, status: u8) {
        rq.end(blkreq::check_status(status).map_err(|e| Error::from_errno(-e.errno())));
    }
}

/// virtio device id the driver binds.
pub(crate) const DEVICE_ID: u32 = virtio::ID_BLOCK;
