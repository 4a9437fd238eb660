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

struct list_head;
struct ovc_link;

/* rtnl_lock() / rtnl_unlock(): the interface configuration lock. */
void ovc_rtnl_lock(void);
void ovc_rtnl_unlock(void);

/*
 * Creates and registers an Ethernet interface `name` (init_net, random MAC, no queue, LLTX) with MTU `mtu` (and
 * maximum `max_mtu`), whose transmit calls ops->xmit(ctx, tag, skb). RTNL must be held. `release(ctx)` is called
 * once the interface is freed (after unregistration and the last reference), never if creation fails. `link`
 * (may be NULL): the interface kind it belongs to, so that `ip -d link` shows it and `ip link del` works. Returns 0
 * and *out, or a negative errno (-EEXIST: the name is taken; -EINVAL: bad name or MTU; -ENOMEM).
 */
int ovc_netdev_create(const char *name, unsigned int mtu, unsigned int max_mtu, const struct ovc_netdev_ops *ops,
		      const void *ctx, void (*release)(const void *), unsigned long tag,
		      const struct ovc_link *link, struct net_device **out);
/*
 * As ovc_netdev_create, for a net_device the rtnetlink core allocated for an `ip link add` (newlink): registers it
 * (RTNL held). On error the core frees it.
 */
int ovc_netdev_adopt(struct net_device *dev, unsigned int mtu, unsigned int max_mtu, const struct ovc_netdev_ops *ops,
		     const void *ctx, void (*release)(const void *), unsigned long tag);
/*
 * Unregisters an interface (RTNL held): at once (head NULL) or queued on a dellink's list. The core frees it after
 * RTNL is released and every reference is put, then calls release(ctx).
 */
void ovc_netdev_unregister(struct net_device *dev, struct list_head *head);
/*
 * Unregisters and frees an interface (RTNL NOT held: takes it). Sleeps; waits until every reference taken with
 * ovc_netdev_hold() is put and no xmit callback runs any more.
 */
void ovc_netdev_destroy(struct net_device *dev);
/* The tag an interface was registered with, and its name (out: OVC_IFNAME_MAX + 1 bytes). */
unsigned long ovc_netdev_tag(const struct net_device *dev);
void ovc_netdev_name(const struct net_device *dev, char *out);

/* Netlink attributes of the interface kind (IFLA_INFO_DATA), our own numbering; see Documentation/vwire.md. */
#define OVC_LINK_ATTR_ID 1      /* u32: connector id */
#define OVC_LINK_ATTR_LOCAL 2   /* string: local address, "A.B.C.D:PORT" or "[V6]:PORT" */
#define OVC_LINK_ATTR_REMOTE 3  /* string: remote address */
#define OVC_LINK_ATTR_MAX 3
#define OVC_LINK_ADDR_MAX 64    /* longest address string, with its NUL */

struct ovc_link_params {
	unsigned int id;
	char local[OVC_LINK_ADDR_MAX];
	char remote[OVC_LINK_ADDR_MAX];
};

/*
 * Callbacks of an interface kind, implemented in Rust. All but fill run with RTNL held.
 * newlink: `ip link add`: dev is allocated (setup done, name set); the callee registers it with ovc_netdev_adopt()
 *          or returns a negative errno. p: the attributes (all three present).
 * dellink: `ip link del` (or the kind's unregistration): unregister the interface with tag `tag` on `head`.
 * fill:    the attributes of the interface with tag `tag`, for `ip -d link show`; may run under RCU only (must not
 *          sleep). 0 or a negative errno (then nothing is reported).
 * changelink: `ip link set NAME type KIND remote ADDR`: p.remote is set; p.id (0: absent) and p.local ("": absent)
 *          only confirm the interface's own. 0 or a negative errno (nothing changed).
 */
struct ovc_link_cbs {
	int (*newlink)(const void *ctx, struct net_device *dev, const struct ovc_link_params *p);
	void (*dellink)(const void *ctx, struct net_device *dev, unsigned long tag, struct list_head *head);
	int (*fill)(const void *ctx, unsigned long tag, struct ovc_link_params *out);
	int (*changelink)(const void *ctx, unsigned long tag, const struct ovc_link_params *p);
};
/* Registers interface kind `kind` (rtnl_link_register). NULL with *err on failure. */
struct ovc_link *ovc_link_register(const char *kind, const struct ovc_link_cbs *cbs, const void *ctx, int *err);
/* Unregisters it, deleting every interface of the kind first (takes RTNL; sleeps). */
void ovc_link_unregister(struct ovc_link *l);

/* Takes / puts a reference that keeps the net_device's memory valid (dev_hold/dev_put). */
void ovc_netdev_hold(struct net_device *dev);
void ovc_netdev_put(struct net_device *dev);
/* Sets the MTU (RTNL held). Returns 0 or a negative errno. */
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
