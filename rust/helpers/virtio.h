/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio helpers (virtio.c): a virtio driver whose validate/probe/remove are Rust callbacks, and the mechanics of a
 * virtio-blk request queue (one virtqueue, per-tag header/status/scatterlist slots, DMA through the virtio core's
 * DMA API path) and its blk-mq disk. The decisions (which features, which limits, which request header, what a
 * status means) are the Rust driver's. Part of overcast_helpers.h.
 */
#ifndef OVERCAST_HELPERS_VIRTIO_H
#define OVERCAST_HELPERS_VIRTIO_H

struct virtio_device;
struct request;
struct gendisk;
struct blk_mq_tag_set;
struct ovc_virtio_driver;
struct ovc_vblk_queue;

/*
 * Callbacks of one virtio driver, implemented in Rust; ctx is the pointer given at registration.
 * validate: offered = the device's feature bits 0..63; *accept holds on entry the bits the virtio core accepted
 *           (driver table & device, plus transport bits) and on return the bits to keep (bits can only be
 *           dropped). 0 or a negative errno (the device is then not bound).
 * probe:    returns the driver's data for vdev, or NULL with *err set to a negative errno.
 * remove:   vdev is going away (unbind, rmmod, hot-unplug); release drvdata. The device must be reset by then.
 */
struct ovc_virtio_driver_ops {
	int (*validate)(const void *ctx, struct virtio_device *vdev, unsigned long long offered,
			unsigned long long *accept);
	void *(*probe)(const void *ctx, struct virtio_device *vdev, int *err);
	void (*remove)(const void *ctx, struct virtio_device *vdev, void *drvdata);
};

/*
 * Registers a virtio driver name for virtio device id device_id whose feature table is features[0..nfeatures)
 * (device-specific bits; the virtio core adds the transport bits the device offers). NULL with *err on failure.
 */
struct ovc_virtio_driver *ovc_virtio_driver_register(const char *name, unsigned int device_id,
						     const unsigned int *features, unsigned int nfeatures,
						     const struct ovc_virtio_driver_ops *ops, const void *ctx,
						     int *err);
/* Unregisters (removing every bound device first) and frees. */
void ovc_virtio_driver_unregister(struct ovc_virtio_driver *drv);

/* Whether feature bit is negotiated. */
int ovc_virtio_has_feature(struct virtio_device *vdev, unsigned int bit);
/* The device's name on the virtio bus ("virtio3"). */
const char *ovc_virtio_dev_name(struct virtio_device *vdev);

/* virtio-blk configuration fields (virtio 1.2 §5.2.4); a field whose feature was not negotiated reads as 0. */
struct ovc_vblk_config {
	unsigned long long capacity; /* 512-byte sectors */
	unsigned int size_max;       /* VIRTIO_BLK_F_SIZE_MAX */
	unsigned int seg_max;        /* VIRTIO_BLK_F_SEG_MAX */
	unsigned int blk_size;       /* VIRTIO_BLK_F_BLK_SIZE */
	unsigned int max_dma;        /* largest single DMA mapping (virtio_max_dma_size: swiotlb's under Xen) */
	unsigned int max_discard_sectors;      /* VIRTIO_BLK_F_DISCARD: sectors per range */
	unsigned int max_discard_seg;          /* VIRTIO_BLK_F_DISCARD: ranges per request */
	unsigned int discard_sector_alignment; /* VIRTIO_BLK_F_DISCARD: sectors */
	unsigned int max_write_zeroes_sectors; /* VIRTIO_BLK_F_WRITE_ZEROES: sectors per range */
	unsigned int max_write_zeroes_seg;     /* VIRTIO_BLK_F_WRITE_ZEROES: ranges per request */
};
void ovc_vblk_read_config(struct virtio_device *vdev, struct ovc_vblk_config *cfg);

/*
 * Called (in interrupt context, under the queue's lock) for every request the device has finished, with the
 * status byte the device wrote (0xff if it wrote none). The callee ends the request.
 */
typedef void (*ovc_vblk_done_fn)(struct request *rq, unsigned char status);

/*
 * Finds vdev's request virtqueues — as many as the device offers with VIRTIO_BLK_F_MQ, at most max_queues and one
 * per possible CPU; one without MQ — and allocates, per ring slot of each, a DMA-able 16-byte header + status byte
 * and a scatterlist of max_segs entries. Request of blk-mq hardware queue i go to virtqueue i. done is called for
 * completions. NULL with *err on failure. Only one queue set per device (the probe owns vdev's driver data).
 */
struct ovc_vblk_queue *ovc_vblk_queue_new(struct virtio_device *vdev, unsigned int max_segs, unsigned int max_queues,
					  ovc_vblk_done_fn done, int *err);
/* Number of request virtqueues (= blk-mq hardware queues to create). */
unsigned int ovc_vblk_queue_count(struct ovc_vblk_queue *q);
/* Number of descriptors of the smallest ring. */
unsigned int ovc_vblk_queue_ring_size(struct ovc_vblk_queue *q);
/* Sets DRIVER_OK: the device may now use the queue. */
void ovc_vblk_queue_ready(struct ovc_vblk_queue *q);
/*
 * Maps rq's data into rq's slot (by hardware queue and tag). Returns the number of data segments (0 for a request
 * without data), or -EINVAL (hardware queue or tag beyond the rings) / -E2BIG (more segments than max_segs).
 */
int ovc_vblk_map(struct ovc_vblk_queue *q, struct request *rq);
/* Largest payload (a discard or write-zeroes request's ranges) ovc_vblk_add copies into a slot. */
#define OVC_VBLK_PAYLOAD_MAX 128
/*
 * Adds rq to the ring as header (hdr, 16 bytes, copied into the slot), then either nsegs data segments mapped by
 * ovc_vblk_map (device-writable if data_in) or, if payload_len is not 0, payload[0..payload_len) copied into the
 * slot (device-readable; nsegs must be 0), then status. Notifies the device if last (the block layer's batch ends
 * here) or if the add failed; otherwise a later add with last or ovc_vblk_kick must follow. 0, -ENOSPC (ring full:
 * retry later) or -errno (-EINVAL: both data and payload, or a payload over OVC_VBLK_PAYLOAD_MAX).
 */
int ovc_vblk_add(struct ovc_vblk_queue *q, struct request *rq, const unsigned char *hdr, unsigned int nsegs,
		 int data_in, const unsigned char *payload, unsigned int payload_len, int last);
/* Notifies the device of requests added without last (blk-mq's commit_rqs), on every virtqueue. */
void ovc_vblk_kick(struct ovc_vblk_queue *q);
/*
 * Resets the device (no more interrupts, DMA or completions), deletes the virtqueue and frees the slots. Requests
 * still in the ring are not completed: call after the disk is gone.
 */
void ovc_vblk_queue_free(struct ovc_vblk_queue *q);

/* Ends rq with a negative errno, or 0 for success. */
void ovc_vblk_end(struct request *rq, int err);

/* Queue limits of a disk, chosen by the driver. */
struct ovc_vblk_limits {
	unsigned int logical_block_size;
	unsigned int max_segments;
	unsigned int max_segment_size; /* 0: block layer default */
	unsigned int max_hw_sectors;
	int write_cache;               /* device has a volatile cache: the block layer sends flushes */
	int read_only;
	unsigned int max_discard_sectors;      /* 0: no discard */
	unsigned int max_discard_segments;
	unsigned int discard_granularity;      /* bytes */
	unsigned int max_write_zeroes_sectors; /* 0: no write-zeroes */
};
/*
 * Allocates a blk-mq disk over set (a live tag set), named name, with capacity sectors (512 B) and lim, as a child
 * of vdev, and adds it. NULL with *err on failure.
 */
struct gendisk *ovc_vblk_disk_add(struct virtio_device *vdev, struct blk_mq_tag_set *set, void *queuedata,
				  unsigned long long sectors, const struct ovc_vblk_limits *lim, const char *name,
				  int *err);
/* del_gendisk (waits for the requests in flight) + put_disk. */
void ovc_vblk_disk_remove(struct gendisk *disk);

/* ---- virtio-net (blanket_net) ---------------------------------------------------------------------------------- */

struct ovc_vnet;

/* Length of the header in front of every packet (virtio_net_hdr_v1: VERSION_1 is required). */
#define OVC_VNET_HDR_LEN 12

/* virtio-net configuration fields (virtio 1.2 §5.1.4); has_mac / mtu are 0 when the feature was not negotiated. */
struct ovc_vnet_config {
	unsigned char mac[6];
	int has_mac;
	unsigned int mtu;
	unsigned int max_pairs;	/* max_virtqueue_pairs with VIRTIO_NET_F_MQ, else 0 */
	unsigned int cpus;	/* online CPUs */
};
void ovc_vnet_read_config(struct virtio_device *vdev, struct ovc_vnet_config *cfg);

/* Segmentation offload of a transmitted frame (ovc_vnet_txmeta.gso). */
#define OVC_VNET_GSO_NONE 0
#define OVC_VNET_GSO_TCP4 1
#define OVC_VNET_GSO_TCP6 2
#define OVC_VNET_GSO_OTHER 3

/* A frame to transmit, as the stack handed it over (offsets from the Ethernet header). */
struct ovc_vnet_txmeta {
	int csum_partial;
	unsigned int csum_start;
	unsigned int csum_offset;
	unsigned int gso;      /* OVC_VNET_GSO_* */
	unsigned int gso_size;
	unsigned int hdr_len;  /* Ethernet + IP + TCP headers of a GSO frame */
	int ecn;
	unsigned int len;
};

/* Checksum state of a received frame (ovc_vnet_rxmeta.csum). */
#define OVC_VNET_RX_CSUM_NONE 0
#define OVC_VNET_RX_CSUM_VALID 1
#define OVC_VNET_RX_CSUM_PARTIAL 2

struct ovc_vnet_rxmeta {
	unsigned int csum;     /* OVC_VNET_RX_CSUM_* */
	unsigned int csum_start;
	unsigned int csum_offset;
	unsigned int gso;      /* OVC_VNET_GSO_NONE, _TCP4 or _TCP6 */
	unsigned int gso_size;
	unsigned int buffers;  /* ring buffers the packet spans (mergeable buffers), >= 1 */
};

/*
 * Per-packet decisions, implemented in Rust (called in softirq context, must not sleep).
 * tx_hdr: fills hdr (OVC_VNET_HDR_LEN bytes) for frame m; 0, or a negative errno: the frame is dropped.
 * rx_hdr: parses the header hdr of a received packet whose first buffer holds len bytes (header included); 0 and
 *         *m, or a negative errno: the packet is dropped.
 */
/* Interface flags for rx_filter. */
#define OVC_VNET_RX_PROMISC 1
#define OVC_VNET_RX_ALLMULTI 2

/* The receive filter the device is asked for (control queue, VIRTIO_NET_F_CTRL_RX). */
struct ovc_vnet_rxfilter {
	int promisc;
	int allmulti;
	unsigned int table_len;	/* bytes of MAC_TABLE_SET data written to the table buffer */
};

/* Most queue pairs a device may have for blanket_net to bind it (all their virtqueues are set up). */
#define OVC_VNET_DEVICE_PAIRS_MAX 64

/* Room for the MAC_TABLE_SET data (both tables of 64 entries: 2 * (4 + 64 * 6)). */
#define OVC_VNET_TABLE_MAX 776

/*
 * rx_filter (process context, under the control queue's lock): the filter for interface flags OVC_VNET_RX_*, and
 * the interface's addresses addrs (n_uc unicast then n_mc multicast, 6 bytes each); writes the MAC_TABLE_SET data
 * to table (table_len bytes of room). 0 and *f, or a negative errno: the filter is left as it was.
 */
struct ovc_vnet_ops {
	int (*tx_hdr)(const void *ctx, const struct ovc_vnet_txmeta *m, unsigned char *hdr);
	int (*rx_hdr)(const void *ctx, const unsigned char *hdr, unsigned int len, struct ovc_vnet_rxmeta *m);
	int (*rx_filter)(const void *ctx, unsigned int flags, const unsigned char *addrs, unsigned int n_uc,
			 unsigned int n_mc, unsigned char *table, unsigned int table_len, struct ovc_vnet_rxfilter *f);
};

/* Offloads the interface advertises (ovc_vnet_params.offloads). */
#define OVC_VNET_OFF_SG 1
#define OVC_VNET_OFF_HW_CSUM 2
#define OVC_VNET_OFF_TSO4 4
#define OVC_VNET_OFF_TSO6 8
#define OVC_VNET_OFF_RX_CSUM 16

struct ovc_vnet_params {
	const char *name;          /* interface name or pattern ("bnet%d") */
	unsigned char mac[6];
	int random_mac;            /* ignore mac, use a random one */
	unsigned int mtu;
	unsigned int max_mtu;
	unsigned int rx_buf_len;   /* receive buffer: header + largest frame */
	unsigned int tx_stop_free; /* stop the transmit queue while fewer ring descriptors are free */
	unsigned int offloads;     /* OVC_VNET_OFF_* */
	unsigned int pairs;        /* queue pairs to drive (1..max_pairs; 1 without VIRTIO_NET_F_MQ) */
};

/* Most fragments a transmitted frame can have (MAX_SKB_FRAGS). */
unsigned int ovc_vnet_max_frags(void);

/*
 * Finds vdev's receive and transmit virtqueues (2k and 2k+1 for queue pair k) and, with VIRTIO_NET_F_CTRL_VQ, the
 * control queue (after the device's last pair) and tells the device how many pairs are used (VIRTIO_NET_F_MQ),
 * fills the receive ring with DMA-mapped buffers, sets DRIVER_OK and registers the interface (carrier from the
 * device's status, or on). NULL with *err on failure (nothing left behind).
 */
struct ovc_vnet *ovc_vnet_new(struct virtio_device *vdev, const struct ovc_vnet_params *p,
			      const struct ovc_vnet_ops *ops, const void *ctx, int *err);
/* Frames dropped because tx_hdr / rx_hdr refused them (also counted in the interface's tx/rx drops). */
void ovc_vnet_header_errors(struct ovc_vnet *n, unsigned long *rx, unsigned long *tx);
/* The interface's name (after registration: "bnet0"). */
const char *ovc_vnet_name(struct ovc_vnet *n);
/* Ring sizes (receive, transmit) of queue pair 0. */
unsigned int ovc_vnet_rx_ring(struct ovc_vnet *n);
unsigned int ovc_vnet_tx_ring(struct ovc_vnet *n);
/* Queue pairs in use. */
unsigned int ovc_vnet_queue_pairs(struct ovc_vnet *n);
/*
 * Unregisters the interface (waits for transmitters and polls), resets the device, takes back every buffer still
 * in the rings (unmapping it), deletes the virtqueues. *rx_left / *tx_left: buffers taken back that way;
 * the return value: buffers still unaccounted for afterwards (0 unless a mapping leaked).
 */
long ovc_vnet_free(struct ovc_vnet *n, unsigned int *rx_left, unsigned int *tx_left);

#endif /* OVERCAST_HELPERS_VIRTIO_H */
