// SPDX-License-Identifier: GPL-2.0
/*
 * Block-device helpers for Overcast's Rust modules (declared in blk.h). Included by each module that uses them.
 */
#include <linux/bio.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/bvec.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/module.h>
#include <linux/refcount.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/workqueue.h>

#include "overcast_helpers.h"

void ovc_blk_rq_info(struct request *rq, struct ovc_blk_rq_info *info)
{
	switch (req_op(rq)) {
	case REQ_OP_READ:
		info->op = OVC_BLK_OP_READ;
		break;
	case REQ_OP_WRITE:
		info->op = OVC_BLK_OP_WRITE;
		break;
	case REQ_OP_FLUSH:
		info->op = OVC_BLK_OP_FLUSH;
		break;
	case REQ_OP_DISCARD:
		info->op = OVC_BLK_OP_DISCARD;
		break;
	case REQ_OP_WRITE_ZEROES:
		info->op = OVC_BLK_OP_WRITE_ZEROES;
		break;
	default:
		info->op = OVC_BLK_OP_OTHER;
		break;
	}
	info->len = blk_rq_bytes(rq);
	info->pos = (unsigned long long)blk_rq_pos(rq) << SECTOR_SHIFT;
	info->no_unmap = !!(rq->cmd_flags & REQ_NOUNMAP);
}

int ovc_blk_rq_ranges(struct request *rq, struct ovc_blk_range *out, unsigned int max)
{
	unsigned int n = 0;
	struct bio *bio;

	if (!max)
		return -EINVAL;
	if (req_op(rq) != REQ_OP_DISCARD || blk_rq_nr_discard_segments(rq) == 1) {
		out[0].sector = blk_rq_pos(rq);
		out[0].sectors = blk_rq_sectors(rq);
		return 1;
	}
	__rq_for_each_bio(bio, rq) {
		if (n == max)
			return -E2BIG;
		out[n].sector = bio->bi_iter.bi_sector;
		out[n].sectors = bio_sectors(bio);
		n++;
	}
	return n;
}

unsigned int ovc_blk_rq_copy(struct request *rq, unsigned int off, void *buf, unsigned int len, int to_rq)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int at = 0, done = 0;

	if (!rq->bio)
		return 0;
	rq_for_each_segment(bv, rq, iter) {
		unsigned int seg_start = at, seg_end = at + bv.bv_len;
		unsigned int from, n;

		at = seg_end;
		if (seg_end <= off)
			continue;
		if (done >= len)
			break;
		from = off + done > seg_start ? off + done - seg_start : 0;
		n = min(bv.bv_len - from, len - done);
		if (n == 0)
			continue;
		{
			struct bio_vec part = bv;

			part.bv_offset += from;
			part.bv_len = n;
			if (to_rq)
				memcpy_to_bvec(&part, (const char *)buf + done);
			else
				memcpy_from_bvec((char *)buf + done, &part);
		}
		done += n;
	}
	return done;
}

int ovc_blk_rq_end_err(struct request *rq, int err)
{
	/* The Rust abstraction keeps a refcount_t at the start of the request's PDU: 2 = in flight, one ARef. */
	refcount_t *ref = blk_mq_rq_to_pdu(rq);

	if (atomic_cmpxchg(&ref->refs, 2, 0) != 2)
		return -EBUSY;
	blk_mq_end_request(rq, errno_to_blk_status(err));
	return 0;
}

static const struct block_device_operations ovc_blk_fops = {
	.owner = THIS_MODULE,
};

struct gendisk *ovc_blk_disk_add(struct blk_mq_tag_set *set, void *queuedata, unsigned long long sectors,
				 const char *name, int *err)
{
	struct queue_limits lim = {
		.logical_block_size = 4096,
		.physical_block_size = 4096,
		.max_hw_discard_sectors = 1024,
		.discard_granularity = 4096,
	};
	struct gendisk *disk;
	int ret;

	disk = blk_mq_alloc_disk(set, &lim, queuedata);
	if (IS_ERR(disk)) {
		*err = PTR_ERR(disk);
		return NULL;
	}
	disk->fops = &ovc_blk_fops;
	strscpy(disk->disk_name, name, DISK_NAME_LEN);
	set_capacity(disk, sectors);
	ret = device_add_disk(NULL, disk, NULL);
	if (ret) {
		put_disk(disk);
		*err = ret;
		return NULL;
	}
	*err = 0;
	return disk;
}

void ovc_blk_disk_remove(struct gendisk *disk)
{
	del_gendisk(disk);
	put_disk(disk);
}

unsigned int ovc_blk_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
}

void ovc_blk_disk_drop_cache(struct gendisk *disk)
{
	invalidate_bdev(disk->part0);
}

struct workqueue_struct *ovc_blk_wq_alloc(const char *name)
{
	return alloc_workqueue("%s", WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_UNBOUND, 0, name);
}

void ovc_blk_wq_destroy(struct workqueue_struct *wq)
{
	destroy_workqueue(wq);
}

void ovc_blk_wq_flush(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
}

void ovc_blk_module_pin(void)
{
	__module_get(THIS_MODULE);
}

unsigned int ovc_blk_memalloc_enter(int reserves)
{
	unsigned int noio = memalloc_noio_save();
	unsigned int noreclaim = reserves ? memalloc_noreclaim_save() : 0;

	/* Two cookies of one bit-field each (PF_MEMALLOC_NOIO, PF_MEMALLOC), kept apart in one word. */
	return (noio ? 1u : 0u) | (noreclaim ? 2u : 0u) | (reserves ? 4u : 0u);
}

void ovc_blk_memalloc_leave(unsigned int cookie)
{
	if (cookie & 4u)
		memalloc_noreclaim_restore((cookie & 2u) ? PF_MEMALLOC : 0);
	memalloc_noio_restore((cookie & 1u) ? PF_MEMALLOC_NOIO : 0);
}

struct ovc_blk_store {
	struct file *file;
	struct page *page;
	/* The run pages (ovc_blk_store_runs), or all NULL. */
	struct page *run[OVC_STORE_RUN];
	/* The vector of a run write (2 KiB: not on the writer's stack). */
	struct bio_vec bv[OVC_STORE_RUN];
};

struct ovc_blk_store *ovc_blk_store_open(const char *path, unsigned long long *size, int *direct, int *err)
{
	struct ovc_blk_store *s = kzalloc(sizeof(*s), GFP_KERNEL);
	struct file *f;

	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->page = alloc_page(GFP_KERNEL);
	if (!s->page) {
		kfree(s);
		*err = -ENOMEM;
		return NULL;
	}
	*direct = 1;
	f = filp_open(path, O_RDWR | O_LARGEFILE | O_DIRECT, 0);
	if (IS_ERR(f) && PTR_ERR(f) == -EINVAL) {
		*direct = 0;
		f = filp_open(path, O_RDWR | O_LARGEFILE, 0);
	}
	if (IS_ERR(f)) {
		__free_page(s->page);
		kfree(s);
		*err = PTR_ERR(f);
		return NULL;
	}
	if (!S_ISREG(file_inode(f)->i_mode) && !S_ISBLK(file_inode(f)->i_mode)) {
		filp_close(f, NULL);
		__free_page(s->page);
		kfree(s);
		*err = -EINVAL;
		return NULL;
	}
	s->file = f;
	*size = i_size_read(f->f_mapping->host);
	*err = 0;
	return s;
}

int ovc_blk_store_rw(struct ovc_blk_store *s, void *buf, unsigned int len, unsigned long long pos, int write)
{
	struct bio_vec bv;
	struct iov_iter it;
	loff_t off = pos;
	ssize_t n;

	if (len > PAGE_SIZE)
		return -EINVAL;
	bvec_set_page(&bv, s->page, len, 0);
	if (write) {
		memcpy(page_address(s->page), buf, len);
		iov_iter_bvec(&it, ITER_SOURCE, &bv, 1, len);
		n = vfs_iter_write(s->file, &it, &off, 0);
	} else {
		iov_iter_bvec(&it, ITER_DEST, &bv, 1, len);
		n = vfs_iter_read(s->file, &it, &off, 0);
		if (n == len)
			memcpy(buf, page_address(s->page), len);
	}
	if (n < 0)
		return n;
	return n == len ? 0 : -EIO;
}

static void ovc_blk_store_free_runs(struct ovc_blk_store *s)
{
	unsigned int i;

	for (i = 0; i < OVC_STORE_RUN; i++) {
		if (s->run[i])
			__free_page(s->run[i]);
		s->run[i] = NULL;
	}
}

int ovc_blk_store_runs(struct ovc_blk_store *s)
{
	unsigned int i;

	if (s->run[0])
		return 0;
	for (i = 0; i < OVC_STORE_RUN; i++) {
		s->run[i] = alloc_page(GFP_KERNEL);
		if (!s->run[i]) {
			ovc_blk_store_free_runs(s);
			return -ENOMEM;
		}
	}
	return 0;
}

void *ovc_blk_store_run_page(struct ovc_blk_store *s, unsigned int i)
{
	if (i >= OVC_STORE_RUN || !s->run[i])
		return NULL;
	return page_address(s->run[i]);
}

int ovc_blk_store_write_run(struct ovc_blk_store *s, unsigned int n, unsigned long long pos)
{
	struct iov_iter it;
	loff_t off = pos;
	size_t len = (size_t)n * PAGE_SIZE;
	unsigned int i;
	ssize_t w;

	if (n == 0 || n > OVC_STORE_RUN || !s->run[0])
		return -EINVAL;
	for (i = 0; i < n; i++)
		bvec_set_page(&s->bv[i], s->run[i], PAGE_SIZE, 0);
	iov_iter_bvec(&it, ITER_SOURCE, s->bv, n, len);
	w = vfs_iter_write(s->file, &it, &off, 0);
	if (w < 0)
		return w;
	return w == len ? 0 : -EIO;
}

int ovc_blk_store_flush(struct ovc_blk_store *s)
{
	return vfs_fsync(s->file, 0);
}

void ovc_blk_store_close(struct ovc_blk_store *s)
{
	if (!s)
		return;
	filp_close(s->file, NULL);
	__free_page(s->page);
	ovc_blk_store_free_runs(s);
	kfree(s);
}

struct file *ovc_blk_file_open(const char *path, int write, int *err)
{
	int flags = write ? (O_WRONLY | O_CREAT | O_TRUNC | O_LARGEFILE) : (O_RDONLY | O_LARGEFILE);
	struct file *f = filp_open(path, flags, 0600);

	if (IS_ERR(f)) {
		*err = PTR_ERR(f);
		return NULL;
	}
	if (!S_ISREG(file_inode(f)->i_mode)) {
		filp_close(f, NULL);
		*err = -EINVAL;
		return NULL;
	}
	*err = 0;
	return f;
}

long ovc_blk_file_rw(struct file *f, void *buf, unsigned int len, unsigned long long *pos, int write)
{
	loff_t off = *pos;
	ssize_t n;

	if (write)
		n = kernel_write(f, buf, len, &off);
	else
		n = kernel_read(f, buf, len, &off);
	if (n > 0)
		*pos = off;
	return n;
}

void ovc_blk_file_close(struct file *f)
{
	if (f)
		filp_close(f, NULL);
}
