/* SPDX-License-Identifier: GPL-2.0 */
/* procfs helpers (procfs.c): /proc files served by Rust callbacks. Part of overcast_helpers.h. */
#ifndef OVERCAST_HELPERS_PROCFS_H
#define OVERCAST_HELPERS_PROCFS_H

struct proc_dir_entry;
struct ovc_proc_entry;

/* Largest write accepted by an Overcast /proc file; longer writes fail with -E2BIG before reaching Rust. */
#define OVC_PROC_MAX_WRITE 4096
/*
 * Size of the buffer a /proc file's `show` callback renders into (kvmalloc'ed per read). 64 KiB: /proc/vw/list
 * of a full vwire table (256 entries, up to ~150 bytes a line with IPv6 addresses) needs ~38 KiB; 4 KiB held
 * only ~65 IPv4 entries and a longer list failed with EOVERFLOW.
 */
#define OVC_PROC_SHOW_SIZE 65536

/*
 * Callbacks of one /proc file, implemented in Rust.
 * show:  render the file into buf (capacity cap); return the length written, or a negative errno.
 * write: handle one write of len bytes (a kernel copy, not NUL-terminated); return 0 or a negative errno.
 */
struct ovc_proc_ops {
	long (*show)(const void *ctx, char *buf, unsigned long cap);
	long (*write)(const void *ctx, const char *buf, unsigned long len);
};

/* proc_mkdir(); parent NULL means /proc. Returns NULL on failure. */
struct proc_dir_entry *ovc_proc_mkdir(const char *name, struct proc_dir_entry *parent);
/* Removes a directory made by ovc_proc_mkdir() and everything left under it. */
void ovc_proc_rmdir(struct proc_dir_entry *dir);
/*
 * Creates a file under parent whose reads call ops->show and whose writes call ops->write, with ctx.
 * Returns NULL on failure (-ENOMEM or a name clash: the kernel logs which).
 */
struct ovc_proc_entry *ovc_proc_create(const char *name, unsigned short mode, struct proc_dir_entry *parent,
				       const struct ovc_proc_ops *ops, const void *ctx);
/*
 * Removes the file and waits until no reader or writer is inside ops; afterwards ctx is no longer used.
 */
void ovc_proc_remove(struct ovc_proc_entry *entry);

#endif /* OVERCAST_HELPERS_PROCFS_H */
