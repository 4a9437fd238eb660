/* SPDX-License-Identifier: GPL-2.0 */
/*
 * net_device helpers (net.c): Ethernet interfaces whose transmit is served by Rust, and sk_buff basics.
 * Part of overcast_helpers.h: C basic types and opaque structs only.
 */
#ifndef OVERCAST_HELPERS_NET_H
#define OVERCAST_HELPERS_NET_H

struct net_device;
struct sk_buff;

/* Longest interface name, without the NUL (IFNAMSIZ - 1). */
#define OVC_IFNAME_MAX 15

/*
 * Callbacks of one interface, implemented in Rust.
 * xmit: the interface was handed a frame (skb->data at the Ethernet header, VLAN tags in the data). The callee owns
 *       skb and must consume or free it on every path. Called in softirq or process context with BH disabled,
 *       inside an RCU read-side section; may run on several CPUs at once (the device is LLTX).
 */
struct ovc_netdev_ops {
	void (*xmit)(const void *ctx, unsigned long tag, struct sk_buff *skb);
};

/*
 * Creates and registers an Ethernet interface `name` (init_net, random MAC, no queue, LLTX) with MTU `mtu` (and
 * maximum `max_mtu`), whose transmit calls ops->xmit(ctx, tag, skb). Returns 0 and *out, or a negative errno
 * (-EEXIST: the name is taken; -EINVAL: bad name or MTU; -ENOMEM).
 */
int ovc_netdev_create(const char *name, unsigned int mtu, unsigned int max_mtu, const struct ovc_netdev_ops *ops,
		      const void *ctx, unsigned long tag, struct net_device **out);
/*
 * Unregisters and frees an interface made by ovc_netdev_create(). Sleeps; waits until every reference taken with
 * ovc_netdev_hold() is put and no xmit callback runs any more; afterwards ctx is no longer used.
 */
void ovc_netdev_destroy(struct net_device *dev);
/* Takes / puts a reference that keeps the net_device's memory valid (dev_hold/dev_put). */
void ovc_netdev_hold(struct net_device *dev);
void ovc_netdev_put(struct net_device *dev);
/* Sets the MTU (takes RTNL; sleeps). Returns 0 or a negative errno. */
int ovc_netdev_set_mtu(struct net_device *dev, unsigned int mtu);
/* The interface's current MTU and ifindex. */
unsigned int ovc_netdev_mtu(const struct net_device *dev);
int ovc_netdev_ifindex(const struct net_device *dev);
/*
 * Delivers a frame out of `dev` as if it had been received there: first removes `pull` bytes (a UDP and tunnel
 * header, pull > 0: the decapsulation of a frame that came in on a tunnel socket), or, with pull = 0, scrubs a frame
 * that another local interface transmitted. Consumes skb. Returns 0 when delivered, a negative errno when dropped
 * (-EINVAL runt/not linearisable, -EMSGSIZE over the MTU, -ENETDOWN interface down, -ENOBUFS backlog full).
 */
int ovc_netdev_receive(struct net_device *dev, struct sk_buff *skb, unsigned int pull);
/* Interface statistics (ip -s link): a transmitted frame of len bytes, a dropped transmit. */
void ovc_netdev_tx_count(struct net_device *dev, unsigned int len);
void ovc_netdev_tx_dropped(struct net_device *dev);

/* skb->len. */
unsigned int ovc_skb_len(const struct sk_buff *skb);
/* Length of the largest Ethernet frame skb stands for: skb->len, or one segment's for a TCP/UDP GSO frame. */
unsigned int ovc_skb_frame_len(const struct sk_buff *skb);
/* Frees an skb that is dropped (kfree_skb: counted as a drop by the kernel's drop monitor). */
void ovc_skb_free(struct sk_buff *skb);

#endif /* OVERCAST_HELPERS_NET_H */
