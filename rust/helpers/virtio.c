// SPDX-License-Identifier: GPL-2.0
/*
 * virtio helpers for Overcast's Rust modules (declared in virtio.h). Included by each module that uses them.
 *
 * Every buffer handed to the device goes through virtqueue_add_sgs(), i.e. the virtio core's DMA API path: in a Xen
 * PV Dom0 that is swiotlb-xen, which translates Dom0's pseudo-physical frames to machine frames (dissertation
 * §4.2.2). The per-slot headers and status bytes are kmalloc memory (DMA-able), never stack or vmalloc memory.
 */
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/moduleparam.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <linux/virtio_net.h>
#include <linux/workqueue.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/unaligned.h>
#include <linux/virtio.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include "overcast_helpers.h"

struct ovc_virtio_driver {
	struct virtio_driver drv;
	struct virtio_device_id ids[2];
	unsigned int *features;
	const struct ovc_virtio_driver_ops *ops;
	const void *ctx;
	char name[32];
};

/* vdev->priv of a device bound through these helpers. */
struct ovc_virtio_priv {
	void *drvdata;
	struct ovc_vblk_queue *blkq;
	struct ovc_vnet *vnet;
};

static struct ovc_virtio_driver *ovc_virtio_drv_of(struct virtio_device *vdev)
{
	return container_of(drv_to_virtio(vdev->dev.driver), struct ovc_virtio_driver, drv);
}

static int ovc_virtio_validate(struct virtio_device *vdev)
{
	struct ovc_virtio_driver *d = ovc_virtio_drv_of(vdev);
	u64 offered[VIRTIO_FEATURES_U64S] = {};
	u64 accept = vdev->features;
	unsigned int bit;
	int ret;

	virtio_get_features(vdev, offered);
	ret = d->ops->validate(d->ctx, vdev, offered[0], &accept);
	if (ret)
		return ret;
	/* __virtio_test_bit: virtio_has_feature() BUGs on device bits outside the driver's table. */
	for (bit = 0; bit < 64; bit++)
		if (__virtio_test_bit(vdev, bit) && !(accept & BIT_ULL(bit)))
			__virtio_clear_bit(vdev, bit);
	return 0;
}

static int ovc_virtio_probe(struct virtio_device *vdev)
{
	struct ovc_virtio_driver *d = ovc_virtio_drv_of(vdev);
	struct ovc_virtio_priv *p = kzalloc(sizeof(*p), GFP_KERNEL);
	int err = 0;

	if (!p)
		return -ENOMEM;
	vdev->priv = p;
	/*
	 * Configuration changes (a net device's link state) reach the driver only while reporting is enabled, and the
	 * flag outlives a driver: the C virtio_net disables it when its interface closes, also when it is unbound, and
	 * the core does not enable it again for the next driver. Changes are still held back until probe returns.
	 */
	virtio_config_driver_enable(vdev);
	p->drvdata = d->ops->probe(d->ctx, vdev, &err);
	if (!p->drvdata) {
		vdev->priv = NULL;
		kfree(p);
		return err < 0 ? err : -ENODEV;
	}
	return 0;
}

static void ovc_vnet_config_changed(struct ovc_vnet *n);
static int ovc_vnet_reset_prepare(struct ovc_vnet *n);
static int ovc_vnet_reset_done(struct ovc_vnet *n);
static int ovc_vblk_reset_prepare(struct ovc_vblk_queue *q);
static int ovc_vblk_reset_done(struct ovc_vblk_queue *q);

/* Configuration interrupt (interrupt context): a net device's link state is read in process context. */
static void ovc_virtio_config_changed(struct virtio_device *vdev)
{
	struct ovc_virtio_priv *p = vdev->priv;

	if (p && p->vnet)
		ovc_vnet_config_changed(p->vnet);
}

/*
 * A reset of the whole device, by the virtio core (virtio_device_reset_prepare/_done: a PCI function reset, or our
 * own recovery of a stalled device — a net device's transmit watchdog, a disk's request timeout, blanket/reset).
 */
static int ovc_virtio_reset_prepare(struct virtio_device *vdev)
{
	struct ovc_virtio_priv *p = vdev->priv;

	if (p && p->vnet)
		return ovc_vnet_reset_prepare(p->vnet);
	return p && p->blkq ? ovc_vblk_reset_prepare(p->blkq) : -EOPNOTSUPP;
}

static int ovc_virtio_reset_done(struct virtio_device *vdev)
{
	struct ovc_virtio_priv *p = vdev->priv;

	if (p && p->vnet)
		return ovc_vnet_reset_done(p->vnet);
	return p && p->blkq ? ovc_vblk_reset_done(p->blkq) : -EOPNOTSUPP;
}

static void ovc_virtio_remove(struct virtio_device *vdev)
{
	struct ovc_virtio_driver *d = ovc_virtio_drv_of(vdev);
	struct ovc_virtio_priv *p = vdev->priv;

	d->ops->remove(d->ctx, vdev, p->drvdata);
	vdev->priv = NULL;
	kfree(p);
}

struct ovc_virtio_driver *ovc_virtio_driver_register(const char *name, unsigned int device_id,
						     const unsigned int *features, unsigned int nfeatures,
						     const struct ovc_virtio_driver_ops *ops, const void *ctx,
						     int *err)
{
	struct ovc_virtio_driver *d = kzalloc(sizeof(*d), GFP_KERNEL);
	int ret;

	if (!d) {
		*err = -ENOMEM;
		return NULL;
	}
	d->features = kmemdup_array(features, nfeatures, sizeof(*features), GFP_KERNEL);
	if (nfeatures && !d->features) {
		kfree(d);
		*err = -ENOMEM;
		return NULL;
	}
	strscpy(d->name, name, sizeof(d->name));
	d->ops = ops;
	d->ctx = ctx;
	d->ids[0].device = device_id;
	d->ids[0].vendor = VIRTIO_DEV_ANY_ID;
	d->drv.driver.name = d->name;
	d->drv.id_table = d->ids;
	d->drv.feature_table = d->features;
	d->drv.feature_table_size = nfeatures;
	d->drv.validate = ovc_virtio_validate;
	d->drv.probe = ovc_virtio_probe;
	d->drv.remove = ovc_virtio_remove;
	d->drv.config_changed = ovc_virtio_config_changed;
	d->drv.reset_prepare = ovc_virtio_reset_prepare;
	d->drv.reset_done = ovc_virtio_reset_done;
	ret = register_virtio_driver(&d->drv);
	if (ret) {
		kfree(d->features);
		kfree(d);
		*err = ret;
		return NULL;
	}
	*err = 0;
	return d;
}

void ovc_virtio_driver_unregister(struct ovc_virtio_driver *drv)
{
	if (!drv)
		return;
	unregister_virtio_driver(&drv->drv);
	kfree(drv->features);
	kfree(drv);
}

int ovc_virtio_has_feature(struct virtio_device *vdev, unsigned int bit)
{
	return bit < 64 && __virtio_test_bit(vdev, bit);
}

const char *ovc_virtio_dev_name(struct virtio_device *vdev)
{
	return dev_name(&vdev->dev);
}

void ovc_vblk_read_config(struct virtio_device *vdev, struct ovc_vblk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	virtio_cread(vdev, struct virtio_blk_config, capacity, &cfg->capacity);
	if (__virtio_test_bit(vdev, VIRTIO_BLK_F_SIZE_MAX))
		virtio_cread(vdev, struct virtio_blk_config, size_max, &cfg->size_max);
	if (__virtio_test_bit(vdev, VIRTIO_BLK_F_SEG_MAX))
		virtio_cread(vdev, struct virtio_blk_config, seg_max, &cfg->seg_max);
	if (__virtio_test_bit(vdev, VIRTIO_BLK_F_BLK_SIZE))
		virtio_cread(vdev, struct virtio_blk_config, blk_size, &cfg->blk_size);
	cfg->max_dma = min_t(size_t, virtio_max_dma_size(vdev), UINT_MAX);
	if (__virtio_test_bit(vdev, VIRTIO_BLK_F_DISCARD)) {
		virtio_cread(vdev, struct virtio_blk_config, max_discard_sectors, &cfg->max_discard_sectors);
		virtio_cread(vdev, struct virtio_blk_config, max_discard_seg, &cfg->max_discard_seg);
		virtio_cread(vdev, struct virtio_blk_config, discard_sector_alignment, &cfg->discard_sector_alignment);
	}
	if (__virtio_test_bit(vdev, VIRTIO_BLK_F_WRITE_ZEROES)) {
		virtio_cread(vdev, struct virtio_blk_config, max_write_zeroes_sectors, &cfg->max_write_zeroes_sectors);
		virtio_cread(vdev, struct virtio_blk_config, max_write_zeroes_seg, &cfg->max_write_zeroes_seg);
	}
}

/*
 * A recovery work's device lock: true with it held, or false after scheduling the work again in 100 ms. The lock
 * excludes unbinding; removal holds it while it cancels the work, so the work only tries it.
 */
static bool ovc_virtio_lock_or_later(struct device *d, struct delayed_work *dw)
{
	if (device_trylock(d))
		return true;
	schedule_delayed_work(dw, HZ / 10);
	return false;
}

/*
 * The device-visible part of a slot: header (device-readable) and status (device-writable). Aligned so that no
 * slot straddles a page: under swiotlb-xen a buffer crossing a page boundary is bounced (copied) on every request.
 */
struct ovc_vblk_dma {
	u8 hdr[16];
	u8 status;
} __aligned(32);

/* One request virtqueue with its per-slot DMA memory. Tags are per hardware queue, so the slots are too. */
struct ovc_vblk_vq {
	struct virtqueue *vq;
	spinlock_t lock;
	unsigned int nslots;
	unsigned long completed;    /* requests the device answered (under lock): a reset that helped shows here */
	struct list_head withheld;  /* fault_blk_stall: requests kept from the device (under lock, rq->queuelist) */
	struct ovc_vblk_dma *dma;   /* nslots, kmalloc (DMA-able) */
	u8 *payload;                /* nslots * OVC_VBLK_PAYLOAD_MAX, kmalloc (DMA-able): discard/write-zeroes ranges */
	struct scatterlist *sg;     /* nslots * max_segs, CPU-only */
} ____cacheline_aligned_in_smp;

/*
 * Recovery of a stalled disk. The block layer times a request out after the disk's io_timeout
 * (/sys/block/bvdN/queue/io_timeout, 30 s by default); the timeout handler first looks at the rings (an answer
 * whose interrupt was lost completes there), otherwise schedules reset_work and lets the timer run again. The work
 * goes through the virtio core (virtio_device_reset_prepare/_done) holding the device lock, as blanket_net's does:
 * prepare quiesces the disk's queue, resets the device, completes what it had answered and hands every request
 * still in a ring back to the block layer (requeued, not failed); done finds the virtqueues again, sets DRIVER_OK
 * and lets the requests run again. `blanket/reset` starts the same work.
 *
 * A device that stalls again and again is given up: after OVC_VBLK_FUTILE_RESETS timeout resets in a row with no
 * request answered in between, or a reset that fails, the disk is marked dead — the device is reset, what is in
 * its rings fails with an I/O error, later requests fail at once — and the operator unbinds it. While the disk is
 * being removed (or before it is fully added) there is no reset: a timed-out request fails the same way, so that
 * removal, which waits for every request, cannot wait for a device that never answers.
 *
 * reset_lock serialises the timeout handler's look at the rings with a reset deleting and finding them.
 */
#define OVC_VBLK_FUTILE_RESETS 3

struct ovc_vblk_queue {
	struct virtio_device *vdev;
	ovc_vblk_done_fn done;
	unsigned int max_segs;
	unsigned int nvqs;
	struct ovc_vblk_vq *vqs;    /* nvqs: blk-mq hardware queue i uses vqs[i] */
	struct gendisk *disk;       /* from ovc_vblk_disk_add until ovc_vblk_disk_remove */
	struct delayed_work reset_work;
	struct mutex reset_lock;
	bool vqs_live;              /* the virtqueues exist (not between a reset's prepare and done); reset_lock */
	bool quiesced;              /* a reset quiesced the disk's queue (device lock) */
	bool added;                 /* the disk is fully added: timeouts may reset */
	bool dying;                 /* the disk is being removed: no more resets */
	bool dead;                  /* given up: requests fail */
	unsigned int futile;        /* timeout resets in a row with nothing answered in between (device lock) */
	unsigned long completed_at_reset, timeouts_at_reset;
	atomic_long_t resets, timeouts;
};

/*
 * Fault injection for the lab's recovery test: while set, blanket_blk keeps new requests from the device (they wait
 * on the virtqueue's withheld list, never in its ring), so they stall as with a hung device, also across resets.
 * A reset takes them back like the requests in the ring.
 */
static bool fault_blk_stall;
module_param(fault_blk_stall, bool, 0644);
MODULE_PARM_DESC(fault_blk_stall, "testing only: keep new blanket_blk requests from the device (simulates a stalled disk)");

/* Completes what the device answered on v (the virtqueue callback; also the timeout handler's and a reset's look). */
static void ovc_vblk_vq_poll(struct ovc_vblk_queue *q, struct ovc_vblk_vq *v)
{
	struct virtqueue *vq = v->vq;
	struct request *rq;
	unsigned long flags;
	unsigned int len;

	spin_lock_irqsave(&v->lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((rq = virtqueue_get_buf(vq, &len)) != NULL) {
			u8 status = rq->tag >= 0 && (unsigned int)rq->tag < v->nslots ? v->dma[rq->tag].status : 0xff;

			v->completed++;
			q->done(rq, status);
		}
		if (unlikely(virtqueue_is_broken(vq)))
			break;
	} while (!virtqueue_enable_cb(vq));
	spin_unlock_irqrestore(&v->lock, flags);
}

static void ovc_vblk_vq_done(struct virtqueue *vq)
{
	struct ovc_virtio_priv *p = vq->vdev->priv;
	struct ovc_vblk_queue *q = p ? p->blkq : NULL;

	if (!q || vq->index >= q->nvqs)
		return;
	ovc_vblk_vq_poll(q, &q->vqs[vq->index]);
}

/*
 * With the device reset (no interrupts, DMA or answers any more): completes what it answered, then hands each
 * request still in a ring to put() — requeued by a reset, failed when the disk is given up. Returns how many it
 * handed over; *answered counts the others.
 */
static unsigned int ovc_vblk_take_back(struct ovc_vblk_queue *q, void (*put)(struct ovc_vblk_queue *, struct request *),
				       unsigned int *answered)
{
	unsigned int i, n = 0;

	*answered = 0;
	for (i = 0; i < q->nvqs; i++) {
		struct ovc_vblk_vq *v = &q->vqs[i];
		unsigned long before = v->completed;
		struct request *rq;
		unsigned long flags;

		ovc_vblk_vq_poll(q, v);
		*answered += v->completed - before;
		/* Under the lock: a disk being given up is not quiesced, and an add may still be running. */
		spin_lock_irqsave(&v->lock, flags);
		while ((rq = virtqueue_detach_unused_buf(v->vq)) != NULL) {
			put(q, rq);
			n++;
		}
		while ((rq = list_first_entry_or_null(&v->withheld, struct request, queuelist)) != NULL) {
			list_del_init(&rq->queuelist);
			put(q, rq);
			n++;
		}
		spin_unlock_irqrestore(&v->lock, flags);
	}
	return n;
}

static void ovc_vblk_put_requeue(struct ovc_vblk_queue *q, struct request *rq)
{
	blk_mq_requeue_request(rq, false);
}

static void ovc_vblk_put_fail(struct ovc_vblk_queue *q, struct request *rq)
{
	q->done(rq, VIRTIO_BLK_S_IOERR);
}

static const char *ovc_vblk_name(struct ovc_vblk_queue *q)
{
	return q->disk ? q->disk->disk_name : "(no disk)";
}

/* Gives the disk up (reset_lock held): resets the device once and fails what is in its rings. */
static void ovc_vblk_give_up(struct ovc_vblk_queue *q, const char *why)
{
	unsigned int answered, failed;

	if (!READ_ONCE(q->dead)) {
		WRITE_ONCE(q->dead, true);
		virtio_reset_device(q->vdev);
		dev_err(&q->vdev->dev, "blanket_blk: %s: %s: its requests now fail with I/O errors; unbind and bind the device again (Documentation/blanket.md, \"Recovery\")\n",
			ovc_vblk_name(q), why);
	}
	if (!q->vqs_live)
		return;
	failed = ovc_vblk_take_back(q, ovc_vblk_put_fail, &answered);
	if (failed || answered)
		dev_err(&q->vdev->dev, "blanket_blk: %s: %u requests failed, %u answered before the reset completed\n",
			ovc_vblk_name(q), failed, answered);
}

/* The gendisk's virtio device's queue (the disk is a child of the virtio device). */
static struct ovc_vblk_queue *ovc_vblk_of_disk(struct gendisk *disk)
{
	struct device *parent = disk ? disk_to_dev(disk)->parent : NULL;
	struct ovc_virtio_priv *p = parent ? dev_to_virtio(parent)->priv : NULL;

	return p ? p->blkq : NULL;
}

/* blk-mq's timeout callback, added to the kernel crate's operations by ovc_vblk_disk_add. Process context. */
static enum blk_eh_timer_return ovc_vblk_timeout(struct request *rq)
{
	struct ovc_vblk_queue *q = ovc_vblk_of_disk(rq->q->disk);
	unsigned int i;
	bool polled;

	if (!q)
		return BLK_EH_RESET_TIMER;
	mutex_lock(&q->reset_lock);
	/* An answer whose interrupt was lost completes here. */
	polled = q->vqs_live;
	if (polled)
		for (i = 0; i < q->nvqs; i++)
			ovc_vblk_vq_poll(q, &q->vqs[i]);
	/* Answered just now, or handed back to the block layer by a reset in progress: no longer ours. */
	if (blk_mq_rq_state(rq) != MQ_RQ_IN_FLIGHT) {
		mutex_unlock(&q->reset_lock);
		if (polled)
			dev_warn_ratelimited(&q->vdev->dev, "blanket_blk: %s: a request was answered as it timed out (late, or its interrupt was lost)\n",
					     ovc_vblk_name(q));
		return BLK_EH_DONE;
	}
	/* Sent again (a reset requeued it while this handler waited for the lock): a new deadline runs. */
	if (time_before(jiffies, READ_ONCE(rq->deadline))) {
		mutex_unlock(&q->reset_lock);
		return BLK_EH_RESET_TIMER;
	}
	atomic_long_inc(&q->timeouts);
	if (READ_ONCE(q->dying) || READ_ONCE(q->dead) || !READ_ONCE(q->added)) {
		ovc_vblk_give_up(q, READ_ONCE(q->dead) ? "given up earlier" :
			       "a request timed out while the disk is added or removed");
		mutex_unlock(&q->reset_lock);
		return BLK_EH_DONE;
	}
	mutex_unlock(&q->reset_lock);
	dev_err_ratelimited(&q->vdev->dev, "blanket_blk: %s: request at sector %llu (%u bytes) not answered in %u ms: resetting the device; its requests are retried after the reset\n",
			    ovc_vblk_name(q), (unsigned long long)blk_rq_pos(rq), blk_rq_bytes(rq),
			    jiffies_to_msecs(rq->timeout));
	schedule_delayed_work(&q->reset_work, 0);
	return BLK_EH_RESET_TIMER;
}

static unsigned long ovc_vblk_completed(struct ovc_vblk_queue *q)
{
	unsigned long n = 0;
	unsigned int i;

	for (i = 0; i < q->nvqs; i++)
		n += READ_ONCE(q->vqs[i].completed);
	return n;
}

/*
 * The recovery work (a request timeout, blanket/reset). The device lock excludes unbinding; removal sets dying and
 * cancels this work, so the work only tries the lock and comes back later.
 */
static void ovc_vblk_reset_work(struct work_struct *w)
{
	struct ovc_vblk_queue *q = container_of(to_delayed_work(w), struct ovc_vblk_queue, reset_work);
	struct device *d = &q->vdev->dev;
	unsigned long completed, timeouts;
	int ret;

	if (READ_ONCE(q->dying))
		return;
	if (!ovc_virtio_lock_or_later(d, &q->reset_work))
		return;
	if (READ_ONCE(q->dead) || READ_ONCE(q->dying)) {
		device_unlock(d);
		return;
	}
	completed = ovc_vblk_completed(q);
	timeouts = atomic_long_read(&q->timeouts);
	if (timeouts != q->timeouts_at_reset && completed == q->completed_at_reset)
		q->futile++;
	else
		q->futile = 0;
	q->completed_at_reset = completed;
	q->timeouts_at_reset = timeouts;
	if (q->futile >= OVC_VBLK_FUTILE_RESETS) {
		mutex_lock(&q->reset_lock);
		ovc_vblk_give_up(q, "the device stalled again after " __stringify(OVC_VBLK_FUTILE_RESETS) " resets in a row");
		mutex_unlock(&q->reset_lock);
		device_unlock(d);
		return;
	}
	ret = virtio_device_reset_prepare(q->vdev);
	if (!ret)
		ret = virtio_device_reset_done(q->vdev);
	if (ret) {
		mutex_lock(&q->reset_lock);
		ovc_vblk_give_up(q, "the device reset failed");
		mutex_unlock(&q->reset_lock);
		dev_err(d, "blanket_blk: %s: reset error %d\n", ovc_vblk_name(q), ret);
	}
	/* A failed reset leaves the queue quiesced: let the requeued requests run, and fail (the disk is dead). */
	if (q->quiesced) {
		q->quiesced = false;
		blk_mq_unquiesce_queue(q->disk->queue);
		blk_mq_kick_requeue_list(q->disk->queue);
	}
	device_unlock(d);
}

static void ovc_vblk_free_vqs(struct ovc_vblk_queue *q)
{
	unsigned int i;

	for (i = 0; i < q->nvqs; i++) {
		kfree(q->vqs[i].dma);
		kfree(q->vqs[i].payload);
		kvfree(q->vqs[i].sg);
	}
	kfree(q->vqs);
}

/*
 * Finds the q->nvqs request virtqueues. The first time (again false) also allocates each one's slots; after a
 * reset the rings must be at least as large as before (the tag set was sized by them).
 */
static int ovc_vblk_find_vqs(struct ovc_vblk_queue *q, bool again)
{
	struct virtio_device *vdev = q->vdev;
	struct irq_affinity desc = { 0, };
	struct virtqueue_info *info;
	struct virtqueue **vqs;
	unsigned int i;
	int ret;

	info = kcalloc(q->nvqs, sizeof(*info), GFP_KERNEL);
	vqs = kcalloc(q->nvqs, sizeof(*vqs), GFP_KERNEL);
	if (!info || !vqs) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < q->nvqs; i++) {
		info[i].callback = ovc_vblk_vq_done;
		info[i].name = "requests";
	}
	ret = virtio_find_vqs(vdev, q->nvqs, vqs, info, &desc);
	if (ret)
		goto out;
	for (i = 0; i < q->nvqs; i++) {
		struct ovc_vblk_vq *v = &q->vqs[i];
		unsigned int size = virtqueue_get_vring_size(vqs[i]);

		v->vq = vqs[i];
		if (again) {
			if (size < v->nslots) {
				dev_err(&vdev->dev, "blanket_blk: after the reset ring %u has %u descriptors, was %u\n", i,
					size, v->nslots);
				ret = -EIO;
			}
			continue;
		}
		spin_lock_init(&v->lock);
		INIT_LIST_HEAD(&v->withheld);
		v->nslots = size;
		v->dma = kcalloc(v->nslots, sizeof(*v->dma), GFP_KERNEL);
		v->sg = kvcalloc(array_size(v->nslots, q->max_segs), sizeof(*v->sg), GFP_KERNEL);
		/* OVC_VBLK_PAYLOAD_MAX divides the page size and kmalloc aligns to it: no payload straddles a page. */
		v->payload = kcalloc(v->nslots, OVC_VBLK_PAYLOAD_MAX, GFP_KERNEL);
		if (!v->dma || !v->sg || !v->payload)
			ret = -ENOMEM;
	}
	if (ret)
		vdev->config->del_vqs(vdev);
out:
	kfree(info);
	kfree(vqs);
	return ret;
}

struct ovc_vblk_queue *ovc_vblk_queue_new(struct virtio_device *vdev, unsigned int max_segs, unsigned int max_queues,
					  ovc_vblk_done_fn done, int *err)
{
	struct ovc_virtio_priv *p = vdev->priv;
	struct ovc_vblk_queue *q;
	u16 num = 1;
	int ret;

	if (!p || p->blkq || max_segs == 0) {
		*err = -EINVAL;
		return NULL;
	}
	/* VIRTIO_BLK_F_MQ: the device says how many request queues it has; one per possible CPU at most. */
	if (!virtio_cread_feature(vdev, VIRTIO_BLK_F_MQ, struct virtio_blk_config, num_queues, &num) && num == 0) {
		dev_err(&vdev->dev, "blanket_blk: device offers MQ with zero queues; fix the provider's num-queues\n");
		*err = -EINVAL;
		return NULL;
	}
	num = max_t(unsigned int, 1, min3((unsigned int)num, max_queues ? max_queues : 1, nr_cpu_ids));
	q = kzalloc(sizeof(*q), GFP_KERNEL);
	if (q)
		q->vqs = kcalloc(num, sizeof(*q->vqs), GFP_KERNEL);
	if (!q || !q->vqs) {
		ret = -ENOMEM;
		goto fail;
	}
	q->vdev = vdev;
	q->done = done;
	q->max_segs = max_segs;
	q->nvqs = num;
	INIT_DELAYED_WORK(&q->reset_work, ovc_vblk_reset_work);
	mutex_init(&q->reset_lock);
	ret = ovc_vblk_find_vqs(q, false);
	if (ret)
		goto fail;
	q->vqs_live = true;
	p->blkq = q;
	*err = 0;
	return q;

fail:
	if (q && q->vqs)
		ovc_vblk_free_vqs(q);
	kfree(q);
	*err = ret;
	return NULL;
}

/* The virtio core's reset_prepare (device lock held): see the recovery comment above. */
static int ovc_vblk_reset_prepare(struct ovc_vblk_queue *q)
{
	unsigned int answered, retried;

	if (!q->disk || !READ_ONCE(q->added) || READ_ONCE(q->dying) || READ_ONCE(q->dead))
		return -EBUSY;
	if (!q->quiesced) {
		q->quiesced = true;
		blk_mq_quiesce_queue(q->disk->queue);
	}
	mutex_lock(&q->reset_lock);
	if (!q->vqs_live) {
		/* A reset whose done failed earlier: the device is reset again by the core. */
		mutex_unlock(&q->reset_lock);
		return 0;
	}
	/* No more interrupts, DMA or answers from here. */
	virtio_reset_device(q->vdev);
	retried = ovc_vblk_take_back(q, ovc_vblk_put_requeue, &answered);
	q->vdev->config->del_vqs(q->vdev);
	q->vqs_live = false;
	mutex_unlock(&q->reset_lock);
	dev_info(&q->vdev->dev, "blanket_blk: %s: device reset: %u answered requests completed, %u to be retried\n",
		 ovc_vblk_name(q), answered, retried);
	return 0;
}

static int ovc_vblk_reset_done(struct ovc_vblk_queue *q)
{
	int ret;

	if (!q->disk || !q->quiesced)
		return -EBUSY;
	mutex_lock(&q->reset_lock);
	ret = ovc_vblk_find_vqs(q, true);
	if (!ret)
		q->vqs_live = true;
	mutex_unlock(&q->reset_lock);
	if (ret)
		return ret;
	/* The device may be notified only after DRIVER_OK (the core would set it after this callback). */
	virtio_device_ready(q->vdev);
	q->quiesced = false;
	blk_mq_unquiesce_queue(q->disk->queue);
	blk_mq_kick_requeue_list(q->disk->queue);
	atomic_long_inc(&q->resets);
	dev_info(&q->vdev->dev, "blanket_blk: %s: device reset done: queues found again, requests retried\n",
		 ovc_vblk_name(q));
	return 0;
}

unsigned int ovc_vblk_queue_count(struct ovc_vblk_queue *q)
{
	return q->nvqs;
}

unsigned int ovc_vblk_queue_ring_size(struct ovc_vblk_queue *q)
{
	unsigned int i, n = UINT_MAX;

	for (i = 0; i < q->nvqs; i++)
		n = min(n, q->vqs[i].nslots);
	return q->nvqs ? n : 0;
}

void ovc_vblk_queue_ready(struct ovc_vblk_queue *q)
{
	virtio_device_ready(q->vdev);
}

/* The virtqueue of rq's hardware queue, or NULL if rq's hardware queue or tag is beyond what the queue has. */
static struct ovc_vblk_vq *ovc_vblk_vq_of(struct ovc_vblk_queue *q, struct request *rq)
{
	struct ovc_vblk_vq *v;

	if (!rq->mq_hctx || rq->mq_hctx->queue_num >= q->nvqs)
		return NULL;
	v = &q->vqs[rq->mq_hctx->queue_num];
	if (rq->tag < 0 || (unsigned int)rq->tag >= v->nslots)
		return NULL;
	return v;
}

int ovc_vblk_map(struct ovc_vblk_queue *q, struct request *rq)
{
	unsigned int nsegs = blk_rq_nr_phys_segments(rq);
	struct ovc_vblk_vq *v = ovc_vblk_vq_of(q, rq);
	struct scatterlist *sg;

	if (!v)
		return -EINVAL;
	if (!nsegs)
		return 0;
	if (nsegs > q->max_segs)
		return -E2BIG;
	sg = v->sg + (size_t)rq->tag * q->max_segs;
	/* Only the entries this request can use: clearing all max_segs (8 KiB) per request showed in profiles. */
	sg_init_table(sg, nsegs);
	return blk_rq_map_sg(rq, sg);
}

int ovc_vblk_add(struct ovc_vblk_queue *q, struct request *rq, const unsigned char *hdr, unsigned int nsegs,
		 int data_in, const unsigned char *payload, unsigned int payload_len, int last)
{
	struct ovc_vblk_vq *v = ovc_vblk_vq_of(q, rq);
	struct scatterlist hdr_sg, pay_sg, status_sg, *sgs[3], *data;
	struct ovc_vblk_dma *dma;
	unsigned int out = 0, in = 0;
	unsigned long flags;
	bool notify;
	int ret;

	if (!v || nsegs > q->max_segs || payload_len > OVC_VBLK_PAYLOAD_MAX || (payload_len && nsegs))
		return -EINVAL;
	dma = &v->dma[rq->tag];
	data = v->sg + (size_t)rq->tag * q->max_segs;
	memcpy(dma->hdr, hdr, sizeof(dma->hdr));
	dma->status = 0xff;
	sg_init_one(&hdr_sg, dma->hdr, sizeof(dma->hdr));
	sg_init_one(&status_sg, &dma->status, sizeof(dma->status));
	sgs[out++] = &hdr_sg;
	if (payload_len) {
		u8 *slot = v->payload + (size_t)rq->tag * OVC_VBLK_PAYLOAD_MAX;

		memcpy(slot, payload, payload_len);
		sg_init_one(&pay_sg, slot, payload_len);
		sgs[out++] = &pay_sg;
	}
	if (nsegs && !data_in)
		sgs[out++] = data;
	if (nsegs && data_in)
		sgs[out + in++] = data;
	sgs[out + in++] = &status_sg;

	spin_lock_irqsave(&v->lock, flags);
	/* Given up (the device is reset, the rings may be gone): fail at once. Under the lock, see take_back. */
	if (unlikely(READ_ONCE(q->dead))) {
		spin_unlock_irqrestore(&v->lock, flags);
		return -EIO;
	}
	if (unlikely(READ_ONCE(fault_blk_stall))) {
		list_add_tail(&rq->queuelist, &v->withheld);
		spin_unlock_irqrestore(&v->lock, flags);
		return 0;
	}
	ret = virtqueue_add_sgs(v->vq, sgs, out, in, rq, GFP_ATOMIC);
	/*
	 * One notification per batch (the block layer's last request, or ovc_vblk_kick from commit_rqs): each is a
	 * trap to the device. A failed add notifies too, so that what was added before it is not left waiting.
	 */
	notify = (ret || last) && virtqueue_kick_prepare(v->vq);
	spin_unlock_irqrestore(&v->lock, flags);
	if (notify)
		virtqueue_notify(v->vq);
	return ret;
}

void ovc_vblk_kick(struct ovc_vblk_queue *q)
{
	unsigned long flags;
	unsigned int i;
	bool notify;

	if (READ_ONCE(q->dead))
		return;
	/* commit_rqs does not say which hardware queue ended its batch early: kick_prepare is cheap on the others. */
	for (i = 0; i < q->nvqs; i++) {
		struct ovc_vblk_vq *v = &q->vqs[i];

		spin_lock_irqsave(&v->lock, flags);
		notify = virtqueue_kick_prepare(v->vq);
		spin_unlock_irqrestore(&v->lock, flags);
		if (notify)
			virtqueue_notify(v->vq);
	}
}

void ovc_vblk_queue_free(struct ovc_vblk_queue *q)
{
	struct ovc_virtio_priv *p;

	if (!q)
		return;
	WRITE_ONCE(q->dying, true);
	cancel_delayed_work_sync(&q->reset_work);
	p = q->vdev->priv;
	virtio_reset_device(q->vdev);
	if (p)
		p->blkq = NULL;
	if (q->vqs_live)
		q->vdev->config->del_vqs(q->vdev);
	ovc_vblk_free_vqs(q);
	kfree(q);
}

void ovc_vblk_end(struct request *rq, int err)
{
	blk_mq_end_request(rq, errno_to_blk_status(err));
}

static const struct block_device_operations ovc_vblk_fops = {
	.owner = THIS_MODULE,
};

/*
 * The Blanket drivers' own sysfs directory, `blanket/` under the disk (/sys/block/bvdN/blanket) and under the
 * interface (/sys/class/net/bnetN/blanket): the same names whatever the provider's device is (Documentation/
 * blanket.md, "One interface whatever the cloud", §4.1). backend: the bottom half in use; provider: the device it
 * drives; features: the negotiated feature bits (hex, bits 0-63); queues / ring: request queues and descriptors;
 * resets: "RESETS TIMEOUTS" (device resets done, requests timed out); reset (write 1): reset the device now.
 */
static u64 ovc_virtio_negotiated(struct virtio_device *vdev)
{
	u64 f = 0;
	unsigned int bit;

	for (bit = 0; bit < 64; bit++)
		if (__virtio_test_bit(vdev, bit))
			f |= BIT_ULL(bit);
	return f;
}

static struct virtio_device *ovc_vblk_sysfs_vdev(struct device *dev)
{
	return dev_to_virtio(dev->parent);
}

static ssize_t backend_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "virtio-blk\n");
}

static ssize_t provider_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", dev_name(&ovc_vblk_sysfs_vdev(dev)->dev));
}

static ssize_t features_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%016llx\n", ovc_virtio_negotiated(ovc_vblk_sysfs_vdev(dev)));
}

static ssize_t queues_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_virtio_priv *p = ovc_vblk_sysfs_vdev(dev)->priv;

	return sysfs_emit(buf, "%u\n", p && p->blkq ? p->blkq->nvqs : 0);
}

static ssize_t ring_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_virtio_priv *p = ovc_vblk_sysfs_vdev(dev)->priv;

	return sysfs_emit(buf, "%u\n", p && p->blkq ? ovc_vblk_queue_ring_size(p->blkq) : 0);
}

static ssize_t resets_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_virtio_priv *p = ovc_vblk_sysfs_vdev(dev)->priv;

	if (!p || !p->blkq)
		return -ENODEV;
	return sysfs_emit(buf, "%ld %ld\n", atomic_long_read(&p->blkq->resets), atomic_long_read(&p->blkq->timeouts));
}

/* Operator control: "1" resets the provider's device as a request timeout would (asynchronously). */
static ssize_t reset_store(struct device *dev, struct device_attribute *attr, const char *buf, size_t len)
{
	struct ovc_virtio_priv *p = ovc_vblk_sysfs_vdev(dev)->priv;
	struct ovc_vblk_queue *q = p ? p->blkq : NULL;
	bool v;

	if (!q)
		return -ENODEV;
	if (kstrtobool(buf, &v) || !v) {
		dev_err(&q->vdev->dev, "blanket_blk: %s: blanket/reset: write 1 to reset the device (got something else); nothing done\n",
			ovc_vblk_name(q));
		return -EINVAL;
	}
	if (READ_ONCE(q->dead)) {
		dev_err(&q->vdev->dev, "blanket_blk: %s: blanket/reset: the disk was given up; unbind and bind the device instead\n",
			ovc_vblk_name(q));
		return -EIO;
	}
	dev_info(&q->vdev->dev, "blanket_blk: %s: device reset requested through blanket/reset\n", ovc_vblk_name(q));
	schedule_delayed_work(&q->reset_work, 0);
	return len;
}

static DEVICE_ATTR_RO(backend);
static DEVICE_ATTR_RO(provider);
static DEVICE_ATTR_RO(features);
static DEVICE_ATTR_RO(queues);
static DEVICE_ATTR_RO(ring);
static DEVICE_ATTR_RO(resets);
static DEVICE_ATTR_WO(reset);

static struct attribute *ovc_vblk_blanket_attrs[] = {
	&dev_attr_backend.attr, &dev_attr_provider.attr, &dev_attr_features.attr, &dev_attr_queues.attr,
	&dev_attr_ring.attr, &dev_attr_resets.attr, &dev_attr_reset.attr, NULL,
};

static const struct attribute_group ovc_vblk_blanket_group = {
	.name = "blanket",
	.attrs = ovc_vblk_blanket_attrs,
};

static const struct attribute_group *ovc_vblk_groups[] = { &ovc_vblk_blanket_group, NULL };

/*
 * The kernel crate's blk-mq operations have no timeout callback; the disk's queue gets a copy of them with
 * ovc_vblk_timeout added (the queue takes its operations from the tag set when it is allocated). One copy per
 * module: every blanket disk's tag set has the same operations.
 */
static struct blk_mq_ops ovc_vblk_mq_ops;
static DEFINE_MUTEX(ovc_vblk_mq_ops_lock);

static int ovc_vblk_add_timeout(struct blk_mq_tag_set *set)
{
	int ret = 0;

	mutex_lock(&ovc_vblk_mq_ops_lock);
	if (!ovc_vblk_mq_ops.queue_rq) {
		ovc_vblk_mq_ops = *set->ops;
		ovc_vblk_mq_ops.timeout = ovc_vblk_timeout;
	}
	if (set->ops == &ovc_vblk_mq_ops)
		;
	else if (set->ops->queue_rq == ovc_vblk_mq_ops.queue_rq && !set->ops->timeout)
		set->ops = &ovc_vblk_mq_ops;
	else
		ret = -EINVAL;
	mutex_unlock(&ovc_vblk_mq_ops_lock);
	return ret;
}

struct gendisk *ovc_vblk_disk_add(struct virtio_device *vdev, struct blk_mq_tag_set *set, void *queuedata,
				  unsigned long long sectors, const struct ovc_vblk_limits *lim, const char *name,
				  int *err)
{
	struct ovc_virtio_priv *p = vdev->priv;
	struct ovc_vblk_queue *q = p ? p->blkq : NULL;
	struct queue_limits ql = {
		.logical_block_size = lim->logical_block_size,
		.max_segments = lim->max_segments,
		.max_segment_size = lim->max_segment_size,
		.max_hw_sectors = lim->max_hw_sectors,
	};
	struct gendisk *disk;
	int ret;

	if (!q || q->disk) {
		*err = -EINVAL;
		return NULL;
	}
	ret = ovc_vblk_add_timeout(set);
	if (ret) {
		dev_err(&vdev->dev, "blanket_blk: the tag set's operations are not blanket_blk's; not adding %s\n", name);
		*err = ret;
		return NULL;
	}
	if (lim->write_cache)
		ql.features |= BLK_FEAT_WRITE_CACHE;
	if (lim->max_discard_sectors) {
		ql.max_hw_discard_sectors = lim->max_discard_sectors;
		ql.max_discard_segments = lim->max_discard_segments;
		ql.discard_granularity = lim->discard_granularity;
	}
	ql.max_write_zeroes_sectors = lim->max_write_zeroes_sectors;
	disk = blk_mq_alloc_disk(set, &ql, queuedata);
	if (IS_ERR(disk)) {
		*err = PTR_ERR(disk);
		return NULL;
	}
	disk->fops = &ovc_vblk_fops;
	strscpy(disk->disk_name, name, DISK_NAME_LEN);
	set_capacity(disk, sectors);
	set_disk_ro(disk, lim->read_only != 0);
	q->disk = disk;
	ret = device_add_disk(&vdev->dev, disk, ovc_vblk_groups);
	if (ret) {
		q->disk = NULL;
		put_disk(disk);
		*err = ret;
		return NULL;
	}
	WRITE_ONCE(q->added, true);
	*err = 0;
	return disk;
}

void ovc_vblk_disk_remove(struct gendisk *disk)
{
	struct ovc_vblk_queue *q = ovc_vblk_of_disk(disk);

	if (q) {
		/* No reset from here on: a request that times out now fails (removal waits for every request). */
		WRITE_ONCE(q->dying, true);
		cancel_delayed_work_sync(&q->reset_work);
		/* A reset that failed half-way left the queue quiesced. */
		if (q->quiesced) {
			q->quiesced = false;
			blk_mq_unquiesce_queue(disk->queue);
		}
	}
	del_gendisk(disk);
	put_disk(disk);
	if (q)
		q->disk = NULL;
}

/* ---- virtio-net (blanket_net) ---------------------------------------------------------------------------------- */

/*
 * One virtio-net device driven as one Ethernet interface: receive queue 0 and transmit queue 1 (one queue pair),
 * each with its NAPI context. The receive ring holds linear skbs of rx_buf_len bytes (header + one whole frame:
 * neither mergeable buffers nor receive segmentation are negotiated); a transmitted skb gets the virtio header
 * pushed into its headroom and goes to the ring as its scatterlist. The skb is each buffer's token, so a buffer
 * taken back (used, or detached at removal) is unmapped by the virtio core and freed here; rx_posted / tx_posted
 * count the buffers in the rings, which is how removal checks that no mapping is left behind.
 *
 * Serialisation (the virtio core requires it per virtqueue): the receive queue is used by its NAPI poll and, with
 * that NAPI disabled, by probe and the refill work; the transmit queue by ndo_start_xmit and the transmit NAPI
 * poll, both under the netdev queue's transmit lock.
 *
 * Control queue (VIRTIO_NET_F_CTRL_VQ, queue 2): commands are sent one at a time under ctrl_lock, from process
 * context, and polled for (as virtio_net does; the device answers at once). The receive filter (CTRL_RX) follows
 * the interface's flags and address lists: ndo_set_rx_mode (atomic) schedules rx_mode_work, which asks the Rust
 * side for the filter and sends it. A command the device does not answer within 2 s marks the queue stuck and
 * resets the device.
 *
 * Link state (VIRTIO_NET_F_STATUS): the configuration interrupt schedules link_work, which sets the carrier from
 * the device's status field. Without STATUS the link is up for as long as the device is bound.
 *
 * Reset (a stalled transmit queue, the operator's blanket/reset, a PCI function reset): reset_prepare detaches the
 * interface, stops both NAPI contexts, resets the device and takes every buffer back; reset_done finds the queues
 * again, refills, sets DRIVER_OK and attaches the interface. Both run under RTNL, as ndo_open/ndo_stop do; while
 * `resetting` is set there are no virtqueues and open/stop only record `up`. The recovery work goes through the
 * virtio core (virtio_device_reset_prepare/_done) holding the device lock, so it excludes unbinding.
 */
/* The control queue's command buffer (kmalloc: DMA-able). */
struct ovc_vnet_ctrl {
	struct virtio_net_ctrl_hdr hdr;
	u8 ack;
	u8 onoff;
	u8 mac[ETH_ALEN];
	u8 table[OVC_VNET_TABLE_MAX];
};

struct ovc_vnet;

/* One queue pair: receive virtqueue 2k, transmit virtqueue 2k+1, each with its NAPI context. */
struct ovc_vnet_q {
	struct ovc_vnet *n;
	unsigned int index;
	struct virtqueue *rvq, *svq;
	struct napi_struct rx_napi, tx_napi;
	unsigned long rx_packets, tx_packets;	/* per-pair counts for blanket/queue_packets */
	struct scatterlist tx_sg[MAX_SKB_FRAGS + 2];
};

struct ovc_vnet {
	struct net_device *dev;
	struct virtio_device *vdev;
	struct ovc_vnet_q *q;		/* pairs of them */
	unsigned int pairs;		/* queue pairs driven (rings filled, NAPI) */
	unsigned int active_pairs;	/* pairs the device and the stack use: pairs, or 1 if the device refused */
	unsigned int max_pairs;		/* the device's max_virtqueue_pairs (1 without MQ): the control queue follows */
	bool vqs_live;			/* the virtqueues exist (not between a reset's prepare and done) */
	bool mergeable;			/* VIRTIO_NET_F_MRG_RXBUF: receive buffers are page fragments */
	struct virtqueue *cvq;
	struct ovc_vnet_ctrl *ctrl;
	struct mutex ctrl_lock;
	bool ctrl_stuck;	/* a command went unanswered: no more until a reset */
	struct work_struct rx_mode_work;
	atomic_long_t ctrl_errors;
	const struct ovc_vnet_ops *ops;
	const void *ctx;
	unsigned int rx_buf_len;
	unsigned int tx_stop_free;
	atomic_t rx_posted, tx_posted;
	atomic_long_t rx_bad, tx_bad;	/* frames dropped for their virtio-net header (the Rust decisions) */
	struct delayed_work refill;
	struct work_struct link_work;
	struct delayed_work reset_work;
	bool up;		/* administratively up (between ndo_open and ndo_stop) */
	bool resetting;		/* between reset_prepare and a successful reset_done: no virtqueues */
	bool dying;		/* being removed: the reset work must not start */
	atomic_long_t resets, tx_timeouts;
};

/* Mergeable receive buffers: page-size fragments, header included (a 64 KiB GSO packet spans 17 of them). */
#define OVC_VNET_MRG_BUF_LEN PAGE_SIZE
/* Bytes of a frame copied into the skb's head (every header); the rest stays in the buffers as page fragments. */
#define OVC_VNET_COPY_LEN 128u
/*
 * A packet in one buffer and no longer than a full Ethernet frame with a VLAN tag is copied whole into a small
 * skb and its buffer freed at once: attached, the 4 KiB buffer would count against the receiving socket's buffer
 * almost three times over for a 1400-byte datagram (truesize), and sockets would drop what they have no room for.
 */
#define OVC_VNET_COPYBREAK 1518u

/*
 * Fault injection for the lab's recovery test: while set, blanket_net withholds its transmit notifications from
 * the device, so the device never sees new frames and the transmit queue stalls as with a hung device.
 */
static bool fault_tx_stall;
module_param(fault_tx_stall, bool, 0644);
MODULE_PARM_DESC(fault_tx_stall, "testing only: withhold blanket_net transmit notifications (simulates a stalled device)");

static void ovc_vnet_tx_notify(struct ovc_vnet_q *q)
{
	if (virtqueue_kick_prepare(q->svq) && !READ_ONCE(fault_tx_stall))
		virtqueue_notify(q->svq);
}

unsigned int ovc_vnet_max_frags(void)
{
	return MAX_SKB_FRAGS;
}

void ovc_vnet_read_config(struct virtio_device *vdev, struct ovc_vnet_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (__virtio_test_bit(vdev, VIRTIO_NET_F_MAC)) {
		virtio_cread_bytes(vdev, offsetof(struct virtio_net_config, mac), cfg->mac, sizeof(cfg->mac));
		cfg->has_mac = 1;
	}
	if (__virtio_test_bit(vdev, VIRTIO_NET_F_MTU)) {
		u16 mtu;

		virtio_cread(vdev, struct virtio_net_config, mtu, &mtu);
		cfg->mtu = mtu;
	}
	if (__virtio_test_bit(vdev, VIRTIO_NET_F_MQ)) {
		u16 pairs;

		virtio_cread(vdev, struct virtio_net_config, max_virtqueue_pairs, &pairs);
		cfg->max_pairs = pairs;
	}
	cfg->cpus = num_online_cpus();
}

/* The queue pair of data virtqueue vq (2k: receive, 2k+1: transmit of pair k). */
static struct ovc_vnet_q *ovc_vnet_q_of(struct virtqueue *vq)
{
	struct ovc_virtio_priv *p = vq->vdev->priv;
	struct ovc_vnet *n = p ? p->vnet : NULL;

	if (!n || vq->index / 2 >= n->pairs)
		return NULL;
	return &n->q[vq->index / 2];
}

/* Virtqueue interrupts: hand the work to NAPI (a no-op while NAPI is disabled; ndo_open schedules it then). */
static void ovc_vnet_rx_cb(struct virtqueue *vq)
{
	struct ovc_vnet_q *q = ovc_vnet_q_of(vq);

	if (!q)
		return;
	virtqueue_disable_cb(vq);
	napi_schedule(&q->rx_napi);
}

static void ovc_vnet_tx_cb(struct virtqueue *vq)
{
	struct ovc_vnet_q *q = ovc_vnet_q_of(vq);

	if (!q)
		return;
	virtqueue_disable_cb(vq);
	napi_schedule(&q->tx_napi);
}

/* Fills a receive ring. False if a buffer could not be allocated or added (the ring may be partly filled). */
static bool ovc_vnet_refill(struct ovc_vnet_q *q, gfp_t gfp)
{
	struct ovc_vnet *n = q->n;
	bool ok = true;

	while (q->rvq->num_free) {
		struct scatterlist sg;
		struct sk_buff *skb;
		void *buf;
		int err;

		if (n->mergeable) {
			/* A page-size fragment: the packet's data stays in it, attached to the skb as a page fragment. */
			buf = netdev_alloc_frag(OVC_VNET_MRG_BUF_LEN);
			if (!buf) {
				ok = false;
				break;
			}
			sg_init_one(&sg, buf, OVC_VNET_MRG_BUF_LEN);
			err = virtqueue_add_inbuf(q->rvq, &sg, 1, buf, gfp);
			if (err)
				skb_free_frag(buf);
		} else {
			skb = __netdev_alloc_skb(n->dev, n->rx_buf_len, gfp);
			if (!skb) {
				ok = false;
				break;
			}
			sg_init_one(&sg, skb->data, n->rx_buf_len);
			err = virtqueue_add_inbuf(q->rvq, &sg, 1, skb, gfp);
			if (err)
				dev_kfree_skb_any(skb);
		}
		if (err) {
			ok = err == -ENOSPC;
			break;
		}
		atomic_inc(&n->rx_posted);
	}
	if (virtqueue_kick_prepare(q->rvq))
		virtqueue_notify(q->rvq);
	return ok;
}

static void ovc_vnet_refill_work(struct work_struct *w)
{
	struct ovc_vnet *n = container_of(to_delayed_work(w), struct ovc_vnet, refill);
	unsigned int i;
	bool ok = true;

	/* Under RTNL, so that reset_prepare (which cancels this work under RTNL too) and ndo_stop cannot interleave. */
	rtnl_lock();
	if (!n->up || n->resetting) {
		rtnl_unlock();
		return;
	}
	for (i = 0; i < n->pairs; i++) {
		struct ovc_vnet_q *q = &n->q[i];

		napi_disable(&q->rx_napi);
		ok &= ovc_vnet_refill(q, GFP_KERNEL);
		napi_enable(&q->rx_napi);
		local_bh_disable();
		napi_schedule(&q->rx_napi);
		local_bh_enable();
	}
	rtnl_unlock();
	if (!ok) {
		netdev_warn(n->dev, "receive buffers: allocation failed, retrying in 0.5 s\n");
		schedule_delayed_work(&n->refill, HZ / 2);
	}
}

/* Hands a received packet (skb->data at its Ethernet header) to the stack with what its header said. */
static void ovc_vnet_deliver(struct ovc_vnet_q *q, struct sk_buff *skb, const struct ovc_vnet_rxmeta *m)
{
	struct net_device *dev = q->n->dev;
	unsigned int flen = skb->len;

	if (m->csum == OVC_VNET_RX_CSUM_VALID)
		skb->ip_summed = CHECKSUM_UNNECESSARY;
	else if (m->csum == OVC_VNET_RX_CSUM_PARTIAL && !skb_partial_csum_set(skb, m->csum_start, m->csum_offset))
		goto drop;
	if (m->gso != OVC_VNET_GSO_NONE) {
		/* One packet for many TCP segments (GUEST_TSO): the stack takes it as GSO, untrusted (DODGY). */
		skb_shinfo(skb)->gso_size = m->gso_size;
		skb_shinfo(skb)->gso_type = (m->gso == OVC_VNET_GSO_TCP4 ? SKB_GSO_TCPV4 : SKB_GSO_TCPV6) | SKB_GSO_DODGY;
		skb_shinfo(skb)->gso_segs = 0;
	}
	skb->protocol = eth_type_trans(skb, dev);
	skb_record_rx_queue(skb, q->index);
	dev_dstats_rx_add(dev, flen);
	q->rx_packets++;
	napi_gro_receive(&q->rx_napi, skb);
	return;
drop:
	dev_dstats_rx_dropped(dev);
	kfree_skb(skb);
}

/* One buffer, one packet (no mergeable buffers): the skb that was posted. */
static void ovc_vnet_receive(struct ovc_vnet_q *q, struct sk_buff *skb, unsigned int len)
{
	struct ovc_vnet *n = q->n;
	struct ovc_vnet_rxmeta m = {};

	if (len > n->rx_buf_len || n->ops->rx_hdr(n->ctx, skb->data, len, &m) || m.buffers != 1) {
		atomic_long_inc(&n->rx_bad);
		dev_dstats_rx_dropped(n->dev);
		kfree_skb(skb);
		return;
	}
	skb_put(skb, len);
	__skb_pull(skb, OVC_VNET_HDR_LEN);
	ovc_vnet_deliver(q, skb, &m);
}

/* Takes up to count more buffers of a packet being dropped from the ring and frees them (mergeable buffers). */
static void ovc_vnet_skip_bufs(struct ovc_vnet_q *q, unsigned int count)
{
	unsigned int len;
	void *buf;

	while (count-- && (buf = virtqueue_get_buf(q->rvq, &len)) != NULL) {
		atomic_dec(&q->n->rx_posted);
		skb_free_frag(buf);
	}
}

/*
 * Mergeable buffers: the first buffer holds the header (num_buffers: how many buffers the packet spans) and the
 * packet's start; the first OVC_VNET_COPY_LEN bytes of the frame are copied into a new skb's head, the rest of
 * every buffer is attached as a page fragment, without copying. A frame of one buffer up to OVC_VNET_COPYBREAK
 * bytes is copied whole.
 */
static void ovc_vnet_receive_mrg(struct ovc_vnet_q *q, void *buf, unsigned int len)
{
	struct ovc_vnet *n = q->n;
	struct ovc_vnet_rxmeta m = {};
	unsigned int i, flen, copy;
	struct sk_buff *skb;
	struct page *page;

	if (len < OVC_VNET_HDR_LEN + ETH_HLEN || len > OVC_VNET_MRG_BUF_LEN || n->ops->rx_hdr(n->ctx, buf, len, &m)) {
		/* Skip the packet's other buffers too, if its header says how many in a way that makes sense. */
		u16 nb = len >= OVC_VNET_HDR_LEN ? get_unaligned_le16(buf + 10) : 1;

		atomic_long_inc(&n->rx_bad);
		skb_free_frag(buf);
		if (nb > 1 && nb <= 64)
			ovc_vnet_skip_bufs(q, nb - 1);
		goto dropped;
	}
	flen = len - OVC_VNET_HDR_LEN;
	copy = m.buffers == 1 && flen <= OVC_VNET_COPYBREAK ? flen : min_t(unsigned int, flen, OVC_VNET_COPY_LEN);
	skb = napi_alloc_skb(&q->rx_napi, copy);
	if (!skb) {
		skb_free_frag(buf);
		ovc_vnet_skip_bufs(q, m.buffers - 1);
		goto dropped;
	}
	skb_put_data(skb, buf + OVC_VNET_HDR_LEN, copy);
	page = virt_to_head_page(buf);
	if (flen > copy)
		skb_add_rx_frag(skb, 0, page, buf + OVC_VNET_HDR_LEN + copy - page_address(page), flen - copy,
				OVC_VNET_MRG_BUF_LEN);
	else
		skb_free_frag(buf);
	for (i = 1; i < m.buffers; i++) {
		void *b = virtqueue_get_buf(q->rvq, &len);

		if (!b) {
			net_warn_ratelimited("%s: the device said a packet spans %u buffers but gave %u: dropped\n",
					     n->dev->name, m.buffers, i);
			goto bad;
		}
		atomic_dec(&n->rx_posted);
		if (len > OVC_VNET_MRG_BUF_LEN || skb_shinfo(skb)->nr_frags >= MAX_SKB_FRAGS) {
			skb_free_frag(b);
			ovc_vnet_skip_bufs(q, m.buffers - i - 1);
			goto bad;
		}
		page = virt_to_head_page(b);
		skb_add_rx_frag(skb, skb_shinfo(skb)->nr_frags, page, b - page_address(page), len, OVC_VNET_MRG_BUF_LEN);
	}
	ovc_vnet_deliver(q, skb, &m);
	return;
bad:
	atomic_long_inc(&n->rx_bad);
	kfree_skb(skb);
dropped:
	dev_dstats_rx_dropped(n->dev);
}

static int ovc_vnet_rx_poll(struct napi_struct *napi, int budget)
{
	struct ovc_vnet_q *q = container_of(napi, struct ovc_vnet_q, rx_napi);
	struct ovc_vnet *n = q->n;
	unsigned int len, opaque;
	int done = 0;
	void *buf;

	while (done < budget && (buf = virtqueue_get_buf(q->rvq, &len)) != NULL) {
		atomic_dec(&n->rx_posted);
		if (n->mergeable)
			ovc_vnet_receive_mrg(q, buf, len);
		else
			ovc_vnet_receive(q, buf, len);
		done++;
	}
	if (done && !ovc_vnet_refill(q, GFP_ATOMIC) && READ_ONCE(n->up))
		schedule_delayed_work(&n->refill, 0);
	if (done < budget && napi_complete_done(napi, done)) {
		/* Re-arm the interrupt; if buffers were used meanwhile, poll again instead of waiting for one. */
		opaque = virtqueue_enable_cb_prepare(q->rvq);
		if (unlikely(virtqueue_poll(q->rvq, opaque)) && napi_schedule_prep(napi)) {
			virtqueue_disable_cb(q->rvq);
			__napi_schedule(napi);
		}
	}
	return done;
}

/* Frees transmitted frames (caller holds the transmit lock). budget: NAPI budget, 0 outside NAPI. */
static void ovc_vnet_reclaim(struct ovc_vnet_q *q, int budget)
{
	struct ovc_vnet *n = q->n;
	struct sk_buff *skb;
	unsigned int len;

	while ((skb = virtqueue_get_buf(q->svq, &len)) != NULL) {
		atomic_dec(&n->tx_posted);
		q->tx_packets++;
		dev_dstats_tx_add(n->dev, skb->len - OVC_VNET_HDR_LEN);
		napi_consume_skb(skb, budget);
	}
}

static int ovc_vnet_tx_poll(struct napi_struct *napi, int budget)
{
	struct ovc_vnet_q *q = container_of(napi, struct ovc_vnet_q, tx_napi);
	struct ovc_vnet *n = q->n;
	struct netdev_queue *txq = netdev_get_tx_queue(n->dev, q->index);
	unsigned int opaque;
	bool done;

	__netif_tx_lock(txq, raw_smp_processor_id());
	virtqueue_disable_cb(q->svq);
	ovc_vnet_reclaim(q, budget);
	if (netif_tx_queue_stopped(txq) && q->svq->num_free >= n->tx_stop_free)
		netif_tx_wake_queue(txq);
	if (!budget) {
		/* netpoll: must not complete */
		__netif_tx_unlock(txq);
		return 0;
	}
	opaque = virtqueue_enable_cb_prepare(q->svq);
	done = napi_complete_done(napi, 0);
	if (!done)
		virtqueue_disable_cb(q->svq);
	__netif_tx_unlock(txq);
	if (done && unlikely(virtqueue_poll(q->svq, opaque)) && napi_schedule_prep(napi)) {
		__netif_tx_lock(txq, raw_smp_processor_id());
		virtqueue_disable_cb(q->svq);
		__netif_tx_unlock(txq);
		__napi_schedule(napi);
	}
	return 0;
}

/*
 * Re-enables transmit interrupts for when most of what is in flight has completed (the event index: one interrupt
 * per batch, not per frame), or schedules the transmit poll at once if that is already the case. Caller holds the
 * transmit lock.
 */
static void ovc_vnet_tx_rearm(struct ovc_vnet_q *q)
{
	if (unlikely(!virtqueue_enable_cb_delayed(q->svq))) {
		virtqueue_disable_cb(q->svq);
		napi_schedule(&q->tx_napi);
	}
}

static netdev_tx_t ovc_vnet_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct ovc_vnet *n = netdev_priv(dev);
	unsigned int qi = skb_get_queue_mapping(skb);
	struct ovc_vnet_q *q = &n->q[qi < n->pairs ? qi : 0];
	struct netdev_queue *txq = netdev_get_tx_queue(dev, q->index);
	struct ovc_vnet_txmeta m = { .len = skb->len };
	unsigned char hdr[OVC_VNET_HDR_LEN];
	bool kick = !netdev_xmit_more();
	int nsg, err;

	/* While frames are being queued, completions are reclaimed here; interrupts are re-armed at the batch's end. */
	virtqueue_disable_cb(q->svq);
	ovc_vnet_reclaim(q, 0);
	if (skb->ip_summed == CHECKSUM_PARTIAL) {
		m.csum_partial = 1;
		m.csum_start = skb_checksum_start_offset(skb);
		m.csum_offset = skb->csum_offset;
	}
	if (skb_is_gso(skb)) {
		unsigned int t = skb_shinfo(skb)->gso_type;

		m.gso = t & SKB_GSO_TCPV4 ? OVC_VNET_GSO_TCP4 : t & SKB_GSO_TCPV6 ? OVC_VNET_GSO_TCP6 : OVC_VNET_GSO_OTHER;
		m.gso_size = skb_shinfo(skb)->gso_size;
		m.hdr_len = m.gso == OVC_VNET_GSO_OTHER ? 0 : skb_tcp_all_headers(skb);
		m.ecn = !!(t & SKB_GSO_TCP_ECN);
	}
	if (n->ops->tx_hdr(n->ctx, &m, hdr)) {
		atomic_long_inc(&n->tx_bad);
		goto drop;
	}
	if (skb_cow_head(skb, OVC_VNET_HDR_LEN))
		goto drop;
	memcpy(__skb_push(skb, OVC_VNET_HDR_LEN), hdr, OVC_VNET_HDR_LEN);
	sg_init_table(q->tx_sg, ARRAY_SIZE(q->tx_sg));
	nsg = skb_to_sgvec(skb, q->tx_sg, 0, skb->len);
	if (nsg <= 0)
		goto drop;
	err = virtqueue_add_outbuf(q->svq, q->tx_sg, nsg, skb, GFP_ATOMIC);
	if (unlikely(err)) {
		/* Cannot happen with the stop threshold below (room for a frame without indirect descriptors);
		 * count it and move on rather than requeue forever. */
		net_warn_ratelimited("%s: transmit ring refused a frame (%d), dropped\n", dev->name, err);
		goto drop;
	}
	atomic_inc(&n->tx_posted);
	skb_tx_timestamp(skb);
	if (q->svq->num_free < n->tx_stop_free) {
		netif_tx_stop_queue(txq);
		/* Completions may have come before the stop, with nobody left to wake the queue: look again. */
		ovc_vnet_reclaim(q, 0);
		if (q->svq->num_free >= n->tx_stop_free)
			netif_tx_start_queue(txq);
		else
			kick = true;
	}
	if (kick) {
		ovc_vnet_tx_rearm(q);
		ovc_vnet_tx_notify(q);
	}
	return NETDEV_TX_OK;
drop:
	dev_dstats_tx_dropped(dev);
	dev_kfree_skb_any(skb);
	/* Frames added before this one with xmit_more must not wait for a later kick, nor for an interrupt. */
	ovc_vnet_tx_rearm(q);
	ovc_vnet_tx_notify(q);
	return NETDEV_TX_OK;
}

/* Starts the data path of an interface that is up (RTNL held; the queues exist). */
static void ovc_vnet_start(struct ovc_vnet *n)
{
	unsigned int i;

	for (i = 0; i < n->pairs; i++) {
		struct ovc_vnet_q *q = &n->q[i];

		/* NAPI is disabled: the receive ring is ours. */
		if (!ovc_vnet_refill(q, GFP_KERNEL))
			schedule_delayed_work(&n->refill, 0);
		napi_enable(&q->rx_napi);
		napi_enable(&q->tx_napi);
		/* Buffers used while the interface was down raised interrupts NAPI ignored: poll once now. */
		local_bh_disable();
		napi_schedule(&q->rx_napi);
		napi_schedule(&q->tx_napi);
		local_bh_enable();
	}
}

/* Stops both NAPI contexts of every pair (RTNL held; they are enabled). */
static void ovc_vnet_napi_off(struct ovc_vnet *n)
{
	unsigned int i;

	for (i = 0; i < n->pairs; i++) {
		napi_disable(&n->q[i].rx_napi);
		napi_disable(&n->q[i].tx_napi);
	}
}

static int ovc_vnet_open(struct net_device *dev)
{
	struct ovc_vnet *n = netdev_priv(dev);

	WRITE_ONCE(n->up, true);
	/* During a reset there are no queues: reset_done starts the data path and wakes the queue. */
	if (n->resetting)
		return 0;
	ovc_vnet_start(n);
	netif_tx_start_all_queues(dev);
	return 0;
}

static int ovc_vnet_stop(struct net_device *dev)
{
	struct ovc_vnet *n = netdev_priv(dev);

	/* The refill work sees this under RTNL and does nothing (it is cancelled, without RTNL, at removal). */
	WRITE_ONCE(n->up, false);
	netif_tx_disable(dev);
	if (n->resetting)
		return 0;
	ovc_vnet_napi_off(n);
	return 0;
}

/* The stack's transmit watchdog: the queue has been stopped for watchdog_timeo. Recover by resetting the device. */
static void ovc_vnet_tx_timeout(struct net_device *dev, unsigned int txqueue)
{
	struct ovc_vnet *n = netdev_priv(dev);
	unsigned int free = txqueue < n->pairs && n->vqs_live ? n->q[txqueue].svq->num_free : 0;

	netdev_err(dev, "transmit queue %u stalled for %u ms (%d frames in the rings, %u descriptors free in its ring): resetting the device\n",
		   txqueue, jiffies_to_msecs(dev->watchdog_timeo), atomic_read(&n->tx_posted), free);
	/* Counted after the log line, so that whoever sees the count finds the line. */
	atomic_long_inc(&n->tx_timeouts);
	schedule_delayed_work(&n->reset_work, 0);
}

static void ovc_vnet_link_work(struct work_struct *w)
{
	struct ovc_vnet *n = container_of(w, struct ovc_vnet, link_work);
	bool up = true;
	u16 status;

	if (__virtio_test_bit(n->vdev, VIRTIO_NET_F_STATUS)) {
		virtio_cread(n->vdev, struct virtio_net_config, status, &status);
		up = status & VIRTIO_NET_S_LINK_UP;
	}
	if (up == netif_carrier_ok(n->dev))
		return;
	if (up) {
		netif_carrier_on(n->dev);
		netdev_info(n->dev, "link up (the provider's device reports it)\n");
	} else {
		netif_carrier_off(n->dev);
		netdev_info(n->dev, "link down (the provider's device reports it): frames are not sent until it is back\n");
	}
}

/*
 * Sends one control command whose data (len bytes, inside n->ctrl) is data, and waits for the device's answer.
 * Caller holds ctrl_lock, in process context. 0, -EIO (refused or broken), -ETIMEDOUT (unanswered: the queue is
 * marked stuck and the device reset) or -ENODEV (no control queue, or stuck).
 */
static int ovc_vnet_ctrl_cmd(struct ovc_vnet *n, u8 class, u8 cmd, void *data, unsigned int len)
{
	struct scatterlist hdr, out, stat, *sgs[3];
	unsigned long deadline;
	unsigned int num = 0, used;
	int ret;

	lockdep_assert_held(&n->ctrl_lock);
	if (!n->cvq || n->ctrl_stuck)
		return -ENODEV;
	n->ctrl->hdr.class = class;
	n->ctrl->hdr.cmd = cmd;
	n->ctrl->ack = ~0;
	sg_init_one(&hdr, &n->ctrl->hdr, sizeof(n->ctrl->hdr));
	sgs[num++] = &hdr;
	if (len) {
		sg_init_one(&out, data, len);
		sgs[num++] = &out;
	}
	sg_init_one(&stat, &n->ctrl->ack, sizeof(n->ctrl->ack));
	sgs[num++] = &stat;
	ret = virtqueue_add_sgs(n->cvq, sgs, num - 1, 1, n->ctrl, GFP_KERNEL);
	if (ret)
		return ret;
	if (unlikely(!virtqueue_kick(n->cvq)))
		goto stuck;
	deadline = jiffies + 2 * HZ;
	while (!virtqueue_get_buf(n->cvq, &used)) {
		if (virtqueue_is_broken(n->cvq) || time_after(jiffies, deadline))
			goto stuck;
		cond_resched();
		cpu_relax();
	}
	return n->ctrl->ack == VIRTIO_NET_OK ? 0 : -EIO;
stuck:
	/* The buffer stays in the ring until the reset takes it back; nothing may reuse it before. */
	n->ctrl_stuck = true;
	atomic_long_inc(&n->ctrl_errors);
	netdev_err(n->dev, "control command %u.%u got no answer from the device: resetting the device\n", class, cmd);
	schedule_delayed_work(&n->reset_work, 0);
	return -ETIMEDOUT;
}

/* Sends the receive filter for the interface's current flags and addresses (RTNL held). */
static void ovc_vnet_apply_rx_mode(struct ovc_vnet *n)
{
	struct net_device *dev = n->dev;
	struct ovc_vnet_rxfilter f = {};
	struct netdev_hw_addr *ha;
	unsigned int n_uc, n_mc, i = 0, flags;
	unsigned char *addrs;
	int ret;

	if (!n->cvq || n->resetting || !__virtio_test_bit(n->vdev, VIRTIO_NET_F_CTRL_RX))
		return;
	netif_addr_lock_bh(dev);
	n_uc = netdev_uc_count(dev);
	n_mc = netdev_mc_count(dev);
	flags = (dev->flags & IFF_PROMISC ? OVC_VNET_RX_PROMISC : 0) | (dev->flags & IFF_ALLMULTI ? OVC_VNET_RX_ALLMULTI : 0);
	addrs = kmalloc_array(n_uc + n_mc + 1, ETH_ALEN, GFP_ATOMIC);
	if (addrs) {
		netdev_for_each_uc_addr(ha, dev)
			memcpy(addrs + ETH_ALEN * i++, ha->addr, ETH_ALEN);
		netdev_for_each_mc_addr(ha, dev)
			memcpy(addrs + ETH_ALEN * i++, ha->addr, ETH_ALEN);
	}
	netif_addr_unlock_bh(dev);
	if (!addrs) {
		/* Pass everything rather than drop frames someone asked for. */
		n_uc = 0;
		n_mc = 0;
		flags = OVC_VNET_RX_PROMISC | OVC_VNET_RX_ALLMULTI;
	}
	mutex_lock(&n->ctrl_lock);
	ret = n->ops->rx_filter(n->ctx, flags, addrs, n_uc, n_mc, n->ctrl->table, sizeof(n->ctrl->table), &f);
	if (!ret) {
		n->ctrl->onoff = !!f.promisc;
		ret = ovc_vnet_ctrl_cmd(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &n->ctrl->onoff, 1);
	}
	if (!ret) {
		n->ctrl->onoff = !!f.allmulti;
		ret = ovc_vnet_ctrl_cmd(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &n->ctrl->onoff, 1);
	}
	if (!ret)
		ret = ovc_vnet_ctrl_cmd(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, n->ctrl->table, f.table_len);
	mutex_unlock(&n->ctrl_lock);
	kfree(addrs);
	if (ret) {
		atomic_long_inc(&n->ctrl_errors);
		netdev_warn(n->dev, "receive filter not applied (%d): the device keeps its previous filter\n", ret);
	} else {
		netdev_dbg(n->dev, "receive filter: promisc %d allmulti %d, %u unicast and %u multicast addresses\n",
			   f.promisc, f.allmulti, n_uc, n_mc);
	}
}

static void ovc_vnet_rx_mode_work(struct work_struct *w)
{
	struct ovc_vnet *n = container_of(w, struct ovc_vnet, rx_mode_work);

	rtnl_lock();
	ovc_vnet_apply_rx_mode(n);
	rtnl_unlock();
}

/* ndo_set_rx_mode: atomic (address list lock held); the commands are sent from rx_mode_work. */
static void ovc_vnet_set_rx_mode(struct net_device *dev)
{
	struct ovc_vnet *n = netdev_priv(dev);

	if (n->cvq && __virtio_test_bit(n->vdev, VIRTIO_NET_F_CTRL_RX))
		schedule_work(&n->rx_mode_work);
}

/* Tells the device the interface's address (RTNL held). */
static int ovc_vnet_send_mac(struct ovc_vnet *n, const u8 *mac)
{
	int ret;

	mutex_lock(&n->ctrl_lock);
	memcpy(n->ctrl->mac, mac, ETH_ALEN);
	ret = ovc_vnet_ctrl_cmd(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, n->ctrl->mac, ETH_ALEN);
	mutex_unlock(&n->ctrl_lock);
	return ret;
}

/*
 * ndo_set_mac_address. With CTRL_MAC_ADDR the device is told first (its filter passes the new address); with a
 * receive filter but no way to change the device's address the change is refused (frames to the new address
 * would be dropped); with neither, the device passes every frame and the change is the interface's alone.
 */
static int ovc_vnet_set_mac_address(struct net_device *dev, void *p)
{
	struct ovc_vnet *n = netdev_priv(dev);
	struct sockaddr *sa = p;
	int ret;

	ret = eth_prepare_mac_addr_change(dev, p);
	if (ret)
		return ret;
	if (__virtio_test_bit(n->vdev, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
		if (n->resetting)
			return -EBUSY;
		ret = ovc_vnet_send_mac(n, sa->sa_data);
		if (ret) {
			netdev_err(dev, "the device refused the new MAC address (%d); the address is unchanged\n", ret);
			return ret;
		}
	} else if (__virtio_test_bit(n->vdev, VIRTIO_NET_F_CTRL_RX)) {
		netdev_err(dev, "the device filters by MAC address but cannot be given a new one (no VIRTIO_NET_F_CTRL_MAC_ADDR); the address is unchanged\n");
		return -EOPNOTSUPP;
	}
	eth_commit_mac_addr_change(dev, p);
	return 0;
}

static void ovc_vnet_config_changed(struct ovc_vnet *n)
{
	schedule_work(&n->link_work);
}

/*
 * The recovery work (transmit watchdog, blanket/reset). The device lock excludes unbinding; removal holds it while
 * it cancels this work, so the work only tries it and comes back later.
 */
static void ovc_vnet_reset_work(struct work_struct *w)
{
	struct ovc_vnet *n = container_of(to_delayed_work(w), struct ovc_vnet, reset_work);
	struct device *d = &n->vdev->dev;
	int ret;

	if (READ_ONCE(n->dying))
		return;
	if (!ovc_virtio_lock_or_later(d, &n->reset_work))
		return;
	ret = virtio_device_reset_prepare(n->vdev);
	if (!ret)
		ret = virtio_device_reset_done(n->vdev);
	device_unlock(d);
	if (ret)
		netdev_err(n->dev, "device reset failed (%d): the interface stays detached; unbind and bind the device again (Documentation/blanket.md)\n",
			   ret);
}

static void ovc_vnet_del_vqs(struct ovc_vnet *n)
{
	unsigned int i;

	n->vdev->config->del_vqs(n->vdev);
	for (i = 0; i < n->pairs; i++) {
		n->q[i].rvq = NULL;
		n->q[i].svq = NULL;
	}
	n->cvq = NULL;
	n->vqs_live = false;
}

static void ovc_vnet_rx_cb(struct virtqueue *vq);
static void ovc_vnet_tx_cb(struct virtqueue *vq);

/*
 * Finds the virtqueues: every pair the device has (the control queue's index is 2 * max_pairs, and the virtio core
 * numbers only the queues it is asked for), callbacks only for the pairs in use, then the control queue.
 */
static int ovc_vnet_find_vqs(struct ovc_vnet *n)
{
	bool has_cvq = __virtio_test_bit(n->vdev, VIRTIO_NET_F_CTRL_VQ);
	unsigned int nvqs = 2 * n->max_pairs + has_cvq, i;
	struct virtqueue_info *info = kcalloc(nvqs, sizeof(*info), GFP_KERNEL);
	struct virtqueue **vqs = kcalloc(nvqs, sizeof(*vqs), GFP_KERNEL);
	int ret = -ENOMEM;

	if (!info || !vqs)
		goto out;
	for (i = 0; i < n->max_pairs; i++) {
		info[2 * i].name = "input";
		info[2 * i + 1].name = "output";
		if (i < n->pairs) {
			info[2 * i].callback = ovc_vnet_rx_cb;
			info[2 * i + 1].callback = ovc_vnet_tx_cb;
		}
	}
	if (has_cvq)
		info[nvqs - 1].name = "control";	/* polled: no callback */
	ret = virtio_find_vqs(n->vdev, nvqs, vqs, info, NULL);
	if (ret)
		goto out;
	for (i = 0; i < n->pairs; i++) {
		n->q[i].rvq = vqs[2 * i];
		n->q[i].svq = vqs[2 * i + 1];
	}
	n->cvq = has_cvq ? vqs[nvqs - 1] : NULL;
	n->ctrl_stuck = false;
	n->vqs_live = true;
	if (virtqueue_get_vring_size(n->q[0].svq) < n->tx_stop_free) {
		/* The transmit queue would stop after its first frame and never wake. */
		dev_err(&n->vdev->dev, "transmit ring of %u descriptors is smaller than one frame may need (%u); not binding\n",
			virtqueue_get_vring_size(n->q[0].svq), n->tx_stop_free);
		ovc_vnet_del_vqs(n);
		ret = -EINVAL;
	}
out:
	kfree(info);
	kfree(vqs);
	return ret;
}

/*
 * Tells the device how many queue pairs are used (VIRTIO_NET_F_MQ; until then it uses one). On failure the driver
 * uses one pair too. Before register_netdev, or under RTNL.
 */
static int ovc_vnet_send_pairs(struct ovc_vnet *n, unsigned int count)
{
	__le16 *pairs;
	int ret;

	mutex_lock(&n->ctrl_lock);
	pairs = (__le16 *)n->ctrl->table;
	*pairs = cpu_to_le16(count);
	ret = ovc_vnet_ctrl_cmd(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, pairs, sizeof(*pairs));
	mutex_unlock(&n->ctrl_lock);
	return ret;
}

static void ovc_vnet_set_pairs(struct ovc_vnet *n)
{
	int ret;

	if (n->active_pairs < 2)
		return;
	ret = ovc_vnet_send_pairs(n, n->active_pairs);
	if (!ret)
		return;
	atomic_long_inc(&n->ctrl_errors);
	dev_warn(&n->vdev->dev, "the device refused %u queue pairs (%d): using one\n", n->active_pairs, ret);
	netif_set_real_num_tx_queues(n->dev, 1);
	netif_set_real_num_rx_queues(n->dev, 1);
	/* Pairs 1.. keep their buffers (taken back at removal) and NAPI contexts, unused. */
	n->active_pairs = 1;
}

/*
 * Transmit queue per CPU (XPS): CPU c sends on pair c mod pairs, so a flow stays on one queue and, since the back end
 * answers on the queue a flow came from, on one receive queue too.
 */
static void ovc_vnet_set_xps(struct ovc_vnet *n)
{
#ifdef CONFIG_XPS
	cpumask_var_t mask;
	unsigned int i, cpu;

	if (n->active_pairs < 2 || !zalloc_cpumask_var(&mask, GFP_KERNEL))
		return;
	for (i = 0; i < n->active_pairs; i++) {
		cpumask_clear(mask);
		for_each_possible_cpu(cpu)
			if (cpu % n->active_pairs == i)
				cpumask_set_cpu(cpu, mask);
		if (netif_set_xps_queue(n->dev, mask, i))
			netdev_warn(n->dev, "transmit queue %u: CPU map not set; the stack picks queues by flow hash\n", i);
	}
	free_cpumask_var(mask);
#endif
}

static long ovc_vnet_drain(struct ovc_vnet *n, unsigned int *rx_left, unsigned int *tx_left);

static int ovc_vnet_reset_prepare(struct ovc_vnet *n)
{
	unsigned int rl, tl;
	long left;

	rtnl_lock();
	if (n->resetting) {
		/* A reset that failed earlier: nothing is running, the device is reset again by the core. */
		rtnl_unlock();
		return 0;
	}
	n->resetting = true;
	netif_tx_lock_bh(n->dev);
	netif_device_detach(n->dev);
	netif_tx_unlock_bh(n->dev);
	if (n->up)
		ovc_vnet_napi_off(n);
	rtnl_unlock();
	cancel_delayed_work_sync(&n->refill);
	/* No more interrupts, DMA or used buffers from here. */
	virtio_reset_device(n->vdev);
	left = ovc_vnet_drain(n, &rl, &tl);
	ovc_vnet_del_vqs(n);
	netdev_info(n->dev, "device reset: %u receive and %u transmit buffers taken back, %ld unaccounted\n", rl, tl,
		    left);
	return 0;
}

static int ovc_vnet_reset_done(struct ovc_vnet *n)
{
	unsigned int i;
	int ret = ovc_vnet_find_vqs(n);

	if (ret)
		return ret;
	/* The device may be notified only after DRIVER_OK (the core would set it after this callback). */
	virtio_device_ready(n->vdev);
	rtnl_lock();
	if (n->up) {
		ovc_vnet_start(n);
	} else {
		for (i = 0; i < n->pairs; i++)
			if (!ovc_vnet_refill(&n->q[i], GFP_KERNEL))
				ret = -ENOMEM;
	}
	if (ret) {
		rtnl_unlock();
		virtio_reset_device(n->vdev);
		ovc_vnet_drain(n, &(unsigned int){ 0 }, &(unsigned int){ 0 });
		ovc_vnet_del_vqs(n);
		return ret;
	}
	n->resetting = false;
	/* The device forgot the pairs, address and filter it was given: give them again. */
	if (n->active_pairs > 1)
		ovc_vnet_set_pairs(n);
	if (__virtio_test_bit(n->vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) && ovc_vnet_send_mac(n, n->dev->dev_addr))
		netdev_warn(n->dev, "after the reset the device refused the interface's MAC address\n");
	ovc_vnet_apply_rx_mode(n);
	netif_device_attach(n->dev);
	rtnl_unlock();
	atomic_long_inc(&n->resets);
	schedule_work(&n->link_work);
	netdev_info(n->dev, "device reset done: queues found again, receive rings refilled, interface attached\n");
	return 0;
}

/*
 * ethtool: driver and provider device (-i), link (the carrier), and the queue pairs in use (-l / -L, "combined"
 * channels only: a pair is one receive and one transmit queue). -L N tells the device to use N pairs
 * (VQ_PAIRS_SET) and then the stack; the pairs above N keep their rings and NAPI contexts, idle. At most the pairs
 * driven since bind (min(device's pairs, CPUs, 16)).
 */
static void ovc_vnet_get_drvinfo(struct net_device *dev, struct ethtool_drvinfo *info)
{
	struct ovc_vnet *n = netdev_priv(dev);

	strscpy(info->driver, "blanket_net", sizeof(info->driver));
	strscpy(info->bus_info, dev_name(&n->vdev->dev), sizeof(info->bus_info));
}

static void ovc_vnet_get_channels(struct net_device *dev, struct ethtool_channels *ch)
{
	struct ovc_vnet *n = netdev_priv(dev);

	ch->max_combined = n->pairs;
	ch->combined_count = n->active_pairs;
}

/* Under RTNL (ethtool). */
static int ovc_vnet_set_channels(struct net_device *dev, struct ethtool_channels *ch)
{
	struct ovc_vnet *n = netdev_priv(dev);
	unsigned int want = ch->combined_count;
	int ret;

	if (ch->rx_count || ch->tx_count || ch->other_count) {
		netdev_err(dev, "ethtool -L: blanket_net has combined channels only (queue pairs): use 'combined N'; nothing changed\n");
		return -EINVAL;
	}
	if (want < 1 || want > n->pairs) {
		netdev_err(dev, "ethtool -L: %u queue pairs asked, 1..%u possible (set at bind from the device's pairs and the CPUs); nothing changed\n",
			   want, n->pairs);
		return -EINVAL;
	}
	if (want == n->active_pairs)
		return 0;
	if (n->resetting || !n->vqs_live) {
		netdev_err(dev, "ethtool -L: the device is being reset; try again\n");
		return -EBUSY;
	}
	ret = ovc_vnet_send_pairs(n, want);
	if (ret) {
		atomic_long_inc(&n->ctrl_errors);
		netdev_err(dev, "ethtool -L: the device refused %u queue pairs (%d); still using %u\n", want, ret,
			   n->active_pairs);
		return ret;
	}
	netif_set_real_num_tx_queues(dev, want);
	netif_set_real_num_rx_queues(dev, want);
	n->active_pairs = want;
	ovc_vnet_set_xps(n);
	netdev_info(dev, "using %u of %u queue pairs (ethtool -L)\n", want, n->pairs);
	return 0;
}

static const struct ethtool_ops ovc_vnet_ethtool_ops = {
	.get_drvinfo = ovc_vnet_get_drvinfo,
	.get_link = ethtool_op_get_link,
	.get_channels = ovc_vnet_get_channels,
	.set_channels = ovc_vnet_set_channels,
};

static const struct net_device_ops ovc_vnet_netdev_ops = {
	.ndo_open = ovc_vnet_open,
	.ndo_stop = ovc_vnet_stop,
	.ndo_start_xmit = ovc_vnet_xmit,
	.ndo_validate_addr = eth_validate_addr,
	.ndo_tx_timeout = ovc_vnet_tx_timeout,
	.ndo_set_rx_mode = ovc_vnet_set_rx_mode,
	.ndo_set_mac_address = ovc_vnet_set_mac_address,
};

/* Takes back every buffer left in the rings (device reset first) and returns how many were still unaccounted. */
static long ovc_vnet_drain(struct ovc_vnet *n, unsigned int *rx_left, unsigned int *tx_left)
{
	struct sk_buff *skb;
	unsigned int i;
	void *buf;

	*rx_left = 0;
	*tx_left = 0;
	if (!n->vqs_live)	/* a reset took the queues (and their buffers) already */
		return (long)atomic_read(&n->rx_posted) + atomic_read(&n->tx_posted);
	for (i = 0; i < n->pairs; i++) {
		while ((buf = virtqueue_detach_unused_buf(n->q[i].rvq)) != NULL) {
			atomic_dec(&n->rx_posted);
			(*rx_left)++;
			if (n->mergeable)
				skb_free_frag(buf);
			else
				dev_kfree_skb(buf);
		}
		while ((skb = virtqueue_detach_unused_buf(n->q[i].svq)) != NULL) {
			atomic_dec(&n->tx_posted);
			(*tx_left)++;
			dev_kfree_skb(skb);
		}
	}
	/* An unanswered control command: its buffer is n->ctrl, ours, not freed here. */
	while (n->cvq && virtqueue_detach_unused_buf(n->cvq))
		;
	return (long)atomic_read(&n->rx_posted) + atomic_read(&n->tx_posted);
}

static struct ovc_vnet *ovc_vnet_sysfs(struct device *dev)
{
	return netdev_priv(to_net_dev(dev));
}

static ssize_t net_backend_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "virtio-net\n");
}

static ssize_t net_provider_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", dev_name(&ovc_vnet_sysfs(dev)->vdev->dev));
}

static ssize_t net_features_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%016llx\n", ovc_virtio_negotiated(ovc_vnet_sysfs(dev)->vdev));
}

static ssize_t net_queues_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", ovc_vnet_sysfs(dev)->active_pairs);
}

/* Frames received and transmitted per queue pair: one line "RX TX" per pair. */
static ssize_t net_queue_packets_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_vnet *n = ovc_vnet_sysfs(dev);
	unsigned int i;
	int len = 0;

	for (i = 0; i < n->pairs; i++)
		len += sysfs_emit_at(buf, len, "%lu %lu\n", READ_ONCE(n->q[i].rx_packets), READ_ONCE(n->q[i].tx_packets));
	return len;
}

static ssize_t net_ring_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_vnet *n = ovc_vnet_sysfs(dev);
	ssize_t ret;

	/* RTNL: a reset replaces the queues under it. */
	rtnl_lock();
	ret = n->vqs_live ? sysfs_emit(buf, "%u %u\n", virtqueue_get_vring_size(n->q[0].rvq),
					virtqueue_get_vring_size(n->q[0].svq))
			  : sysfs_emit(buf, "0 0\n");
	rtnl_unlock();
	return ret;
}

static ssize_t net_header_errors_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_vnet *n = ovc_vnet_sysfs(dev);

	return sysfs_emit(buf, "%ld %ld\n", atomic_long_read(&n->rx_bad), atomic_long_read(&n->tx_bad));
}

static ssize_t net_resets_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_vnet *n = ovc_vnet_sysfs(dev);

	return sysfs_emit(buf, "%ld %ld\n", atomic_long_read(&n->resets), atomic_long_read(&n->tx_timeouts));
}

static ssize_t net_control_errors_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct ovc_vnet *n = ovc_vnet_sysfs(dev);

	return sysfs_emit(buf, "%ld\n", atomic_long_read(&n->ctrl_errors));
}

/* Operator control: "1" resets the provider's device as the transmit watchdog would (asynchronously). */
static ssize_t net_reset_store(struct device *dev, struct device_attribute *attr, const char *buf, size_t len)
{
	struct ovc_vnet *n = ovc_vnet_sysfs(dev);
	bool v;

	if (kstrtobool(buf, &v) || !v) {
		netdev_err(n->dev, "blanket/reset: write 1 to reset the device (got something else); nothing done\n");
		return -EINVAL;
	}
	netdev_info(n->dev, "device reset requested through blanket/reset\n");
	schedule_delayed_work(&n->reset_work, 0);
	return len;
}

static struct device_attribute ovc_vnet_attrs_list[] = {
	__ATTR(backend, 0444, net_backend_show, NULL),
	__ATTR(provider, 0444, net_provider_show, NULL),
	__ATTR(features, 0444, net_features_show, NULL),
	__ATTR(queues, 0444, net_queues_show, NULL),
	__ATTR(ring, 0444, net_ring_show, NULL),
	__ATTR(header_errors, 0444, net_header_errors_show, NULL),
	__ATTR(resets, 0444, net_resets_show, NULL),
	__ATTR(reset, 0200, NULL, net_reset_store),
	__ATTR(control_errors, 0444, net_control_errors_show, NULL),
	__ATTR(queue_packets, 0444, net_queue_packets_show, NULL),
};

static struct attribute *ovc_vnet_blanket_attrs[] = {
	&ovc_vnet_attrs_list[0].attr, &ovc_vnet_attrs_list[1].attr, &ovc_vnet_attrs_list[2].attr,
	&ovc_vnet_attrs_list[3].attr, &ovc_vnet_attrs_list[4].attr, &ovc_vnet_attrs_list[5].attr,
	&ovc_vnet_attrs_list[6].attr, &ovc_vnet_attrs_list[7].attr, &ovc_vnet_attrs_list[8].attr,
	&ovc_vnet_attrs_list[9].attr, NULL,
};

static const struct attribute_group ovc_vnet_blanket_group = {
	.name = "blanket",
	.attrs = ovc_vnet_blanket_attrs,
};

struct ovc_vnet *ovc_vnet_new(struct virtio_device *vdev, const struct ovc_vnet_params *p,
			      const struct ovc_vnet_ops *ops, const void *ctx, int *err)
{
	struct ovc_virtio_priv *vp = vdev->priv;
	struct ovc_vnet_config cfg;
	struct ovc_vnet_q *q;
	netdev_features_t f = 0;
	unsigned int rl, tl, i;
	struct net_device *dev;
	struct ovc_vnet *n;
	int ret;

	ovc_vnet_read_config(vdev, &cfg);
	if (!cfg.max_pairs)
		cfg.max_pairs = 1;
	if (!vp || vp->vnet || !ops || !ops->tx_hdr || !ops->rx_hdr || !ops->rx_filter ||
	    p->rx_buf_len < OVC_VNET_HDR_LEN + ETH_HLEN || p->mtu < ETH_MIN_MTU || p->mtu > p->max_mtu ||
	    !p->pairs || p->pairs > cfg.max_pairs) {
		*err = -EINVAL;
		return NULL;
	}
	if (cfg.max_pairs > OVC_VNET_DEVICE_PAIRS_MAX) {
		/* Every pair's queues must exist for the control queue to have its index. */
		dev_err(&vdev->dev, "device has %u queue pairs; blanket_net sets up at most %u: not binding (configure fewer queues on the provider's side)\n",
			cfg.max_pairs, OVC_VNET_DEVICE_PAIRS_MAX);
		*err = -EINVAL;
		return NULL;
	}
	dev = alloc_netdev_mqs(sizeof(*n), p->name, NET_NAME_ENUM, ether_setup, p->pairs, p->pairs);
	if (!dev) {
		*err = -ENOMEM;
		return NULL;
	}
	n = netdev_priv(dev);
	n->dev = dev;
	n->vdev = vdev;
	n->pairs = p->pairs;
	n->active_pairs = p->pairs;
	n->max_pairs = cfg.max_pairs;
	n->mergeable = __virtio_test_bit(vdev, VIRTIO_NET_F_MRG_RXBUF);
	n->q = kcalloc(n->pairs, sizeof(*n->q), GFP_KERNEL);
	if (!n->q) {
		free_netdev(dev);
		*err = -ENOMEM;
		return NULL;
	}
	n->ops = ops;
	n->ctx = ctx;
	n->rx_buf_len = p->rx_buf_len;
	n->tx_stop_free = max(p->tx_stop_free, 1u);
	atomic_set(&n->rx_posted, 0);
	atomic_set(&n->tx_posted, 0);
	atomic_long_set(&n->rx_bad, 0);
	atomic_long_set(&n->tx_bad, 0);
	atomic_long_set(&n->resets, 0);
	atomic_long_set(&n->tx_timeouts, 0);
	atomic_long_set(&n->ctrl_errors, 0);
	mutex_init(&n->ctrl_lock);
	INIT_WORK(&n->rx_mode_work, ovc_vnet_rx_mode_work);
	n->ctrl = kzalloc(sizeof(*n->ctrl), GFP_KERNEL);
	if (!n->ctrl) {
		kfree(n->q);
		free_netdev(dev);
		*err = -ENOMEM;
		return NULL;
	}
	INIT_DELAYED_WORK(&n->refill, ovc_vnet_refill_work);
	INIT_WORK(&n->link_work, ovc_vnet_link_work);
	INIT_DELAYED_WORK(&n->reset_work, ovc_vnet_reset_work);
	dev->netdev_ops = &ovc_vnet_netdev_ops;
	dev->ethtool_ops = &ovc_vnet_ethtool_ops;
	dev->watchdog_timeo = 5 * HZ;
	dev->priv_flags |= IFF_LIVE_ADDR_CHANGE;
	/* Secondary unicast addresses go to the device's filter table rather than turning promiscuous mode on. */
	if (__virtio_test_bit(vdev, VIRTIO_NET_F_CTRL_RX))
		dev->priv_flags |= IFF_UNICAST_FLT;
	dev->pcpu_stat_type = NETDEV_PCPU_STAT_DSTATS;
	/* The stack leaves room for the virtio header, so xmit pushes it without reallocating the skb's head. */
	dev->needed_headroom = OVC_VNET_HDR_LEN;
	SET_NETDEV_DEV(dev, &vdev->dev);
	dev->sysfs_groups[0] = &ovc_vnet_blanket_group;
	if (p->offloads & OVC_VNET_OFF_SG)
		f |= NETIF_F_SG;
	if (p->offloads & OVC_VNET_OFF_HW_CSUM)
		f |= NETIF_F_HW_CSUM;
	if (p->offloads & OVC_VNET_OFF_TSO4)
		f |= NETIF_F_TSO;
	if (p->offloads & OVC_VNET_OFF_TSO6)
		f |= NETIF_F_TSO6;
	if (p->offloads & OVC_VNET_OFF_RX_CSUM)
		f |= NETIF_F_RXCSUM;
	dev->hw_features |= f;
	dev->features |= f;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = p->max_mtu;
	dev->mtu = p->mtu;
	if (p->random_mac)
		eth_hw_addr_random(dev);
	else
		eth_hw_addr_set(dev, p->mac);
	for (i = 0; i < n->pairs; i++) {
		n->q[i].n = n;
		n->q[i].index = i;
		netif_napi_add(dev, &n->q[i].rx_napi, ovc_vnet_rx_poll);
		netif_napi_add_tx(dev, &n->q[i].tx_napi, ovc_vnet_tx_poll);
	}

	vp->vnet = n;
	ret = ovc_vnet_find_vqs(n);
	if (ret)
		goto err_free;
	/* The device may be notified only after DRIVER_OK; NAPI is still disabled, so the rings are ours. */
	virtio_device_ready(vdev);
	for (i = 0; i < n->pairs; i++) {
		if (!ovc_vnet_refill(&n->q[i], GFP_KERNEL) || !atomic_read(&n->rx_posted)) {
			ret = -ENOMEM;
			goto err_reset;
		}
	}
	ovc_vnet_set_pairs(n);
	ovc_vnet_set_xps(n);
	/* A random address (the device gave none) is the device's too, when it can be told. */
	if (p->random_mac && __virtio_test_bit(vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) && ovc_vnet_send_mac(n, dev->dev_addr))
		dev_warn(&vdev->dev, "the device refused the interface's random MAC address\n");
	/* Carrier off until link_work has read the device's status (on at once without VIRTIO_NET_F_STATUS). */
	netif_carrier_off(dev);
	ret = register_netdev(dev);
	if (ret)
		goto err_reset;
	schedule_work(&n->link_work);
	flush_work(&n->link_work);
	*err = 0;
	return n;

err_reset:
	virtio_reset_device(vdev);
	cancel_work_sync(&n->link_work);
	ovc_vnet_drain(n, &rl, &tl);
	ovc_vnet_del_vqs(n);
err_free:
	vp->vnet = NULL;
	/* A control command that went unanswered during probe scheduled a reset. */
	WRITE_ONCE(n->dying, true);
	cancel_delayed_work_sync(&n->reset_work);
	cancel_work_sync(&n->link_work);
	kfree(n->ctrl);
	q = n->q;
	free_netdev(dev);	/* deletes the NAPI contexts, which live in q */
	kfree(q);
	*err = ret;
	return NULL;
}

void ovc_vnet_header_errors(struct ovc_vnet *n, unsigned long *rx, unsigned long *tx)
{
	*rx = atomic_long_read(&n->rx_bad);
	*tx = atomic_long_read(&n->tx_bad);
}

const char *ovc_vnet_name(struct ovc_vnet *n)
{
	return n->dev->name;
}

unsigned int ovc_vnet_rx_ring(struct ovc_vnet *n)
{
	return n->vqs_live ? virtqueue_get_vring_size(n->q[0].rvq) : 0;
}

unsigned int ovc_vnet_queue_pairs(struct ovc_vnet *n)
{
	return n->active_pairs;
}

unsigned int ovc_vnet_tx_ring(struct ovc_vnet *n)
{
	return n->vqs_live ? virtqueue_get_vring_size(n->q[0].svq) : 0;
}

long ovc_vnet_free(struct ovc_vnet *n, unsigned int *rx_left, unsigned int *tx_left)
{
	struct virtio_device *vdev = n->vdev;
	struct ovc_virtio_priv *vp = vdev->priv;
	struct ovc_vnet_q *q;
	long leaked;

	/* No reset from here on (removal holds the device lock, so a pending reset work gives up on it). */
	WRITE_ONCE(n->dying, true);
	cancel_delayed_work_sync(&n->reset_work);
	/* Closes the interface (ndo_stop: NAPI off, transmit stopped) and waits for every user. */
	unregister_netdev(n->dev);
	cancel_delayed_work_sync(&n->refill);
	cancel_work_sync(&n->link_work);
	cancel_work_sync(&n->rx_mode_work);
	/* No more interrupts, DMA or used buffers from here. */
	virtio_reset_device(vdev);
	leaked = ovc_vnet_drain(n, rx_left, tx_left);
	if (vp)
		vp->vnet = NULL;
	if (n->vqs_live)
		ovc_vnet_del_vqs(n);
	kfree(n->ctrl);
	q = n->q;
	free_netdev(n->dev);	/* deletes the NAPI contexts, which live in q */
	kfree(q);
	return leaked;
}
