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
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
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
	p->drvdata = d->ops->probe(d->ctx, vdev, &err);
	if (!p->drvdata) {
		vdev->priv = NULL;
		kfree(p);
		return err < 0 ? err : -ENODEV;
	}
	return 0;
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
}

/*
 * The device-visible part of a slot: header (device-readable) and status (device-writable). Aligned so that no
 * slot straddles a page: under swiotlb-xen a buffer crossing a page boundary is bounced (copied) on every request.
 */
struct ovc_vblk_dma {
	u8 hdr[16];
	u8 status;
} __aligned(32);

struct ovc_vblk_queue {
	struct virtio_device *vdev;
	struct virtqueue *vq;
	spinlock_t lock;
	ovc_vblk_done_fn done;
	unsigned int nslots;
	unsigned int max_segs;
	struct ovc_vblk_dma *dma;   /* nslots, kmalloc (DMA-able) */
	struct scatterlist *sg;     /* nslots * max_segs, CPU-only */
};

static void ovc_vblk_vq_done(struct virtqueue *vq)
{
	struct ovc_virtio_priv *p = vq->vdev->priv;
	struct ovc_vblk_queue *q = p ? p->blkq : NULL;
	struct request *rq;
	unsigned long flags;
	unsigned int len;

	if (!q)
		return;
	spin_lock_irqsave(&q->lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((rq = virtqueue_get_buf(vq, &len)) != NULL) {
			u8 status = rq->tag >= 0 && (unsigned int)rq->tag < q->nslots ? q->dma[rq->tag].status : 0xff;

			q->done(rq, status);
		}
		if (unlikely(virtqueue_is_broken(vq)))
			break;
	} while (!virtqueue_enable_cb(vq));
	spin_unlock_irqrestore(&q->lock, flags);
}

struct ovc_vblk_queue *ovc_vblk_queue_new(struct virtio_device *vdev, unsigned int max_segs, ovc_vblk_done_fn done,
					  int *err)
{
	struct ovc_virtio_priv *p = vdev->priv;
	struct ovc_vblk_queue *q;

	if (!p || p->blkq || max_segs == 0) {
		*err = -EINVAL;
		return NULL;
	}
	q = kzalloc(sizeof(*q), GFP_KERNEL);
	if (!q) {
		*err = -ENOMEM;
		return NULL;
	}
	spin_lock_init(&q->lock);
	q->vdev = vdev;
	q->done = done;
	q->max_segs = max_segs;
	q->vq = virtio_find_single_vq(vdev, ovc_vblk_vq_done, "requests");
	if (IS_ERR(q->vq)) {
		*err = PTR_ERR(q->vq);
		kfree(q);
		return NULL;
	}
	q->nslots = virtqueue_get_vring_size(q->vq);
	q->dma = kcalloc(q->nslots, sizeof(*q->dma), GFP_KERNEL);
	q->sg = kvcalloc(array_size(q->nslots, max_segs), sizeof(*q->sg), GFP_KERNEL);
	if (!q->dma || !q->sg) {
		vdev->config->del_vqs(vdev);
		kfree(q->dma);
		kvfree(q->sg);
		kfree(q);
		*err = -ENOMEM;
		return NULL;
	}
	p->blkq = q;
	*err = 0;
	return q;
}

unsigned int ovc_vblk_queue_ring_size(struct ovc_vblk_queue *q)
{
	return q->nslots;
}

void ovc_vblk_queue_ready(struct ovc_vblk_queue *q)
{
	virtio_device_ready(q->vdev);
}

int ovc_vblk_map(struct ovc_vblk_queue *q, struct request *rq)
{
	unsigned int nsegs = blk_rq_nr_phys_segments(rq);
	struct scatterlist *sg;

	if (rq->tag < 0 || (unsigned int)rq->tag >= q->nslots)
		return -EINVAL;
	if (!nsegs)
		return 0;
	if (nsegs > q->max_segs)
		return -E2BIG;
	sg = q->sg + (size_t)rq->tag * q->max_segs;
	/* Only the entries this request can use: clearing all max_segs (8 KiB) per request showed in profiles. */
	sg_init_table(sg, nsegs);
	return blk_rq_map_sg(rq, sg);
}

int ovc_vblk_add(struct ovc_vblk_queue *q, struct request *rq, const unsigned char *hdr, unsigned int nsegs,
		 int data_in, int last)
{
	struct scatterlist hdr_sg, status_sg, *sgs[3];
	struct ovc_vblk_dma *dma;
	unsigned int out = 0, in = 0;
	unsigned long flags;
	bool notify;
	int ret;

	if (rq->tag < 0 || (unsigned int)rq->tag >= q->nslots || nsegs > q->max_segs)
		return -EINVAL;
	dma = &q->dma[rq->tag];
	memcpy(dma->hdr, hdr, sizeof(dma->hdr));
	dma->status = 0xff;
	sg_init_one(&hdr_sg, dma->hdr, sizeof(dma->hdr));
	sg_init_one(&status_sg, &dma->status, sizeof(dma->status));
	sgs[out++] = &hdr_sg;
	if (nsegs && !data_in)
		sgs[out++] = q->sg + (size_t)rq->tag * q->max_segs;
	if (nsegs && data_in)
		sgs[out + in++] = q->sg + (size_t)rq->tag * q->max_segs;
	sgs[out + in++] = &status_sg;

	spin_lock_irqsave(&q->lock, flags);
	ret = virtqueue_add_sgs(q->vq, sgs, out, in, rq, GFP_ATOMIC);
	/*
	 * One notification per batch (the block layer's last request, or ovc_vblk_kick from commit_rqs): each is a
	 * trap to the device. A failed add notifies too, so that what was added before it is not left waiting.
	 */
	notify = (ret || last) && virtqueue_kick_prepare(q->vq);
	spin_unlock_irqrestore(&q->lock, flags);
	if (notify)
		virtqueue_notify(q->vq);
	return ret;
}

void ovc_vblk_kick(struct ovc_vblk_queue *q)
{
	unsigned long flags;
	bool notify;

	spin_lock_irqsave(&q->lock, flags);
	notify = virtqueue_kick_prepare(q->vq);
	spin_unlock_irqrestore(&q->lock, flags);
	if (notify)
		virtqueue_notify(q->vq);
}

void ovc_vblk_queue_free(struct ovc_vblk_queue *q)
{
	struct ovc_virtio_priv *p;

	if (!q)
		return;
	p = q->vdev->priv;
	virtio_reset_device(q->vdev);
	if (p)
		p->blkq = NULL;
	q->vdev->config->del_vqs(q->vdev);
	kfree(q->dma);
	kvfree(q->sg);
	kfree(q);
}

void ovc_vblk_rq_info(struct request *rq, unsigned int *op, unsigned long long *sector, unsigned int *bytes)
{
	switch (req_op(rq)) {
	case REQ_OP_READ:
		*op = OVC_VBLK_OP_READ;
		break;
	case REQ_OP_WRITE:
		*op = OVC_VBLK_OP_WRITE;
		break;
	case REQ_OP_FLUSH:
		*op = OVC_VBLK_OP_FLUSH;
		break;
	default:
		*op = OVC_VBLK_OP_OTHER;
		break;
	}
	*sector = blk_rq_pos(rq);
	*bytes = blk_rq_bytes(rq);
}

void ovc_vblk_end(struct request *rq, int err)
{
	blk_mq_end_request(rq, errno_to_blk_status(err));
}

static const struct block_device_operations ovc_vblk_fops = {
	.owner = THIS_MODULE,
};

struct gendisk *ovc_vblk_disk_add(struct virtio_device *vdev, struct blk_mq_tag_set *set, void *queuedata,
				  unsigned long long sectors, const struct ovc_vblk_limits *lim, const char *name,
				  int *err)
{
	struct queue_limits ql = {
		.logical_block_size = lim->logical_block_size,
		.max_segments = lim->max_segments,
		.max_segment_size = lim->max_segment_size,
		.max_hw_sectors = lim->max_hw_sectors,
	};
	struct gendisk *disk;
	int ret;

	if (lim->write_cache)
		ql.features |= BLK_FEAT_WRITE_CACHE;
	disk = blk_mq_alloc_disk(set, &ql, queuedata);
	if (IS_ERR(disk)) {
		*err = PTR_ERR(disk);
		return NULL;
	}
	disk->fops = &ovc_vblk_fops;
	strscpy(disk->disk_name, name, DISK_NAME_LEN);
	set_capacity(disk, sectors);
	set_disk_ro(disk, lim->read_only != 0);
	ret = device_add_disk(&vdev->dev, disk, NULL);
	if (ret) {
		put_disk(disk);
		*err = ret;
		return NULL;
	}
	*err = 0;
	return disk;
}

void ovc_vblk_disk_remove(struct gendisk *disk)
{
	del_gendisk(disk);
	put_disk(disk);
}
