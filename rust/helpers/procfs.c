// SPDX-License-Identifier: GPL-2.0
/*
 * procfs for Overcast's Rust modules: a /proc file whose read renders through a Rust `show` callback and whose
 * write is handed, as one kernel buffer, to a Rust `write` callback. Included by each module that uses it.
 */
#include <linux/err.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/uaccess.h>

#include "overcast_helpers.h"

struct ovc_proc_entry {
	struct proc_dir_entry *pde;
	const struct ovc_proc_ops *ops;
	const void *ctx;
};

static int ovc_proc_seq_show(struct seq_file *m, void *v)
{
	struct ovc_proc_entry *e = m->private;
	char *buf;
	long n;

	if (!e->ops->show)
		return -EINVAL;
	buf = kvmalloc(OVC_PROC_SHOW_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	n = e->ops->show(e->ctx, buf, OVC_PROC_SHOW_SIZE);
	if (n > OVC_PROC_SHOW_SIZE)
		n = -EOVERFLOW;
	if (n > 0)
		seq_write(m, buf, n);
	kvfree(buf);
	return n < 0 ? (int)n : 0;
}

static int ovc_proc_open(struct inode *inode, struct file *file)
{
	return single_open(file, ovc_proc_seq_show, pde_data(inode));
}

static ssize_t ovc_proc_write(struct file *file, const char __user *ubuf, size_t len, loff_t *ppos)
{
	struct ovc_proc_entry *e = pde_data(file_inode(file));
	char *kbuf;
	long ret;

	if (!e->ops->write)
		return -EINVAL;
	if (len > OVC_PROC_MAX_WRITE)
		return -E2BIG;
	kbuf = memdup_user(ubuf, len);
	if (IS_ERR(kbuf))
		return PTR_ERR(kbuf);
	ret = e->ops->write(e->ctx, kbuf, len);
	kfree(kbuf);
	return ret < 0 ? ret : (ssize_t)len;
}

static const struct proc_ops ovc_proc_fops = {
	.proc_open = ovc_proc_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = ovc_proc_write,
};

struct proc_dir_entry *ovc_proc_mkdir(const char *name, struct proc_dir_entry *parent)
{
	return proc_mkdir(name, parent);
}

void ovc_proc_rmdir(struct proc_dir_entry *dir)
{
	proc_remove(dir);
}

struct ovc_proc_entry *ovc_proc_create(const char *name, unsigned short mode, struct proc_dir_entry *parent,
				       const struct ovc_proc_ops *ops, const void *ctx)
{
	struct ovc_proc_entry *e = kzalloc(sizeof(*e), GFP_KERNEL);

	if (!e)
		return NULL;
	e->ops = ops;
	e->ctx = ctx;
	e->pde = proc_create_data(name, mode, parent, &ovc_proc_fops, e);
	if (!e->pde) {
		kfree(e);
		return NULL;
	}
	return e;
}

void ovc_proc_remove(struct ovc_proc_entry *entry)
{
	if (!entry)
		return;
	/* proc_remove() waits for every open/read/write in flight to leave our fops. */
	proc_remove(entry->pde);
	kfree(entry);
}
