/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Block-device helpers (blk.c): what a Rust blk-mq driver needs beyond the kernel crate's block::mq — a gendisk
 * whose fops carry THIS_MODULE (so an open device pins the module), request data copies, ending a request with an
 * error, a WQ_MEM_RECLAIM workqueue, memalloc scopes, and page-sized I/O on a local store (file or block device).
 * Part of overcast_helpers.h.
 */
#ifndef OVERCAST_HELPERS_BLK_H
#define OVERCAST_HELPERS_BLK_H

struct request;
struct gendisk;
struct blk_mq_tag_set;
struct workqueue_struct;
struct ovc_blk_store;
struct file;

/* Operation of a request, as reported by ovc_blk_rq_info(). */
#define OVC_BLK_OP_READ 0
#define OVC_BLK_OP_WRITE 1
#define OVC_BLK_OP_FLUSH 2
#define OVC_BLK_OP_DISCARD 3
#define OVC_BLK_OP_WRITE_ZEROES 4
#define OVC_BLK_OP_OTHER 5

struct ovc_blk_rq_info {
	unsigned int op;          /* OVC_BLK_OP_* */
	unsigned int len;         /* bytes */
	unsigned long long pos;   /* byte offset on the device */
	int no_unmap;             /* write-zeroes: the caller wants the space kept allocated (REQ_NOUNMAP) */
};

/* Fills *info for rq (a request the driver owns). */
void ovc_blk_rq_info(struct request *rq, struct ovc_blk_rq_info *info);

/* One range of sectors of a discard or write-zeroes request. */
struct ovc_blk_range {
	unsigned long long sector; /* 512-byte sectors */
	unsigned int sectors;
};
/*
 * The ranges of a discard or write-zeroes request rq into out[0..max): one per bio of a discard the block layer
 * merged from several (queue limit max_discard_segments > 1), else the request's own. Returns their number, or
 * -E2BIG if there are more than max (nothing beyond max is written) or -EINVAL if max is 0.
 */
int ovc_blk_rq_ranges(struct request *rq, struct ovc_blk_range *out, unsigned int max);
/*
 * Copies len bytes between buf and the request's data, starting off bytes into the request.
 * to_rq != 0: buf -> request (reads); to_rq == 0: request -> buf (writes). Returns the bytes copied.
 */
unsigned int ovc_blk_rq_copy(struct request *rq, unsigned int off, void *buf, unsigned int len, int to_rq);
/*
 * Ends rq with errno err (negative) if the Rust block::mq abstraction holds exactly one reference to it (its
 * per-request refcount is 2), exactly as Request::end_ok does for success. Returns 0, or -EBUSY (nothing done).
 */
int ovc_blk_rq_end_err(struct request *rq, int err);

/*
 * Allocates a blk-mq disk over set (a live tag set) with 4 KiB logical and physical blocks, discard support,
 * capacity sectors (512 B), name (NUL-terminated), queuedata, and fops owned by this module, and adds it.
 * Returns the disk or NULL (*err is the negative errno).
 */
struct gendisk *ovc_blk_disk_add(struct blk_mq_tag_set *set, void *queuedata, unsigned long long sectors,
				 const char *name, int *err);
/* del_gendisk + put_disk. */
void ovc_blk_disk_remove(struct gendisk *disk);
/* How many openers the whole disk has (swapon, mkswap, a shell's fd). */
unsigned int ovc_blk_disk_openers(struct gendisk *disk);
/* Drops the clean pages of the whole disk's page cache (invalidate_bdev): after its content changed under its
 * openers by other means than a write through it (a page-map import), none of them reads a stale cached page. */
void ovc_blk_disk_drop_cache(struct gendisk *disk);

/* alloc_workqueue(name, WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_UNBOUND, 0): it can make progress when memory is short. */
struct workqueue_struct *ovc_blk_wq_alloc(const char *name);
void ovc_blk_wq_destroy(struct workqueue_struct *wq);
/* Waits until every work item queued so far has finished. */
void ovc_blk_wq_flush(struct workqueue_struct *wq);

/* Takes a module reference that is never put: for a device that must outlive its configuration (still open). */
void ovc_blk_module_pin(void);

/* Enter/leave a scope in which allocations do no I/O (NOIO) and, if reserves != 0, may use the memalloc reserves. */
unsigned int ovc_blk_memalloc_enter(int reserves);
void ovc_blk_memalloc_leave(unsigned int cookie);

/*
 * Opens path (a regular file or a block device) read-write as a local page store; O_DIRECT when the file supports
 * it. *size receives its size in bytes, *direct whether O_DIRECT is used. NULL on failure (*err = -errno).
 */
struct ovc_blk_store *ovc_blk_store_open(const char *path, unsigned long long *size, int *direct, int *err);
/* Reads (write == 0) or writes len <= 4096 bytes of buf at byte offset pos. 0 or -errno (short I/O is -EIO). */
int ovc_blk_store_rw(struct ovc_blk_store *s, void *buf, unsigned int len, unsigned long long pos, int write);
/*
 * Runs of consecutive pages written with one I/O: ovc_blk_store_runs allocates the store's OVC_STORE_RUN run pages
 * (0 or -ENOMEM; once); ovc_blk_store_run_page gives run page i (< OVC_STORE_RUN) to fill, NULL if there is none;
 * ovc_blk_store_write_run writes run pages 0..n (1 <= n <= OVC_STORE_RUN) at pos in one vfs write. 0 or -errno.
 */
#define OVC_STORE_RUN 128
int ovc_blk_store_runs(struct ovc_blk_store *s);
void *ovc_blk_store_run_page(struct ovc_blk_store *s, unsigned int i);
int ovc_blk_store_write_run(struct ovc_blk_store *s, unsigned int n, unsigned long long pos);
/* fsync of the store. 0 or -errno. */
int ovc_blk_store_flush(struct ovc_blk_store *s);
void ovc_blk_store_close(struct ovc_blk_store *s);

/*
 * A regular file read or written sequentially from the kernel (e.g. a device's page-map export). write == 0 opens
 * path read-only; write != 0 creates or truncates it (mode 0600). NULL on failure (*err = -errno; -EINVAL when path
 * is not a regular file).
 */
struct file *ovc_blk_file_open(const char *path, int write, int *err);
/* Reads (write == 0) or writes up to len bytes at *pos, advancing *pos. Bytes transferred (0 at end of file) or -errno. */
long ovc_blk_file_rw(struct file *f, void *buf, unsigned int len, unsigned long long *pos, int write);
void ovc_blk_file_close(struct file *f);

#endif /* OVERCAST_HELPERS_BLK_H */
