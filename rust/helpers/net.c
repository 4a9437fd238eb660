// SPDX-License-Identifier: GPL-2.0
/*
 * net_device helpers for Overcast's Rust modules: an Ethernet interface whose ndo_start_xmit calls a Rust
 * callback, delivery of frames out of it (gro_cells), and the sk_buff basics Rust needs. See net.h.
 */
#include <linux/etherdevice.h>
#include <linux/if_ether.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/gro_cells.h>
#include <net/ip_tunnels.h>
#include <net/netlink.h>
#include <net/rtnetlink.h>

#include "overcast_helpers.h"

struct ovc_netdev_priv {
	const struct ovc_netdev_ops *ops;
	const void *ctx;
	unsigned long tag;
	struct gro_cells gro;
	/* Drops the owner's reference to ctx when the net_device is freed; set once it is registered. */
	void (*release)(const void *ctx);
};

/* An interface kind registered with ovc_link_register() (opaque in net.h). */
struct ovc_link {
	struct rtnl_link_ops ops;
	const struct ovc_link_cbs *cbs;
	const void *ctx;
	char kind[16];
};

void ovc_rtnl_lock(void)
{
	rtnl_lock();
}

void ovc_rtnl_unlock(void)
{
	rtnl_unlock();
}

static int ovc_netdev_init(struct net_device *dev)
{
	struct ovc_netdev_priv *p = netdev_priv(dev);

	return gro_cells_init(&p->gro, dev);
}

static void ovc_netdev_uninit(struct net_device *dev)
{
	struct ovc_netdev_priv *p = netdev_priv(dev);

	gro_cells_destroy(&p->gro);
}

static netdev_tx_t ovc_netdev_start_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct ovc_netdev_priv *p = netdev_priv(dev);

	p->ops->xmit(p->ctx, p->tag, skb);
	return NETDEV_TX_OK;
}

static const struct net_device_ops ovc_netdev_ops = {
	.ndo_init = ovc_netdev_init,
	.ndo_uninit = ovc_netdev_uninit,
	.ndo_start_xmit = ovc_netdev_start_xmit,
	.ndo_set_mac_address = eth_mac_addr,
	.ndo_validate_addr = eth_validate_addr,
};

/* At free time (netdev_run_todo, after the last reference is put): no callback uses ctx any more. */
static void ovc_netdev_priv_destructor(struct net_device *dev)
{
	struct ovc_netdev_priv *p = netdev_priv(dev);

	if (p->release)
		p->release(p->ctx);
	p->release = NULL;
}

static void ovc_netdev_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->netdev_ops = &ovc_netdev_ops;
	dev->priv_flags |= IFF_NO_QUEUE;
	dev->priv_flags &= ~IFF_TX_SKB_SHARING;
	dev->lltx = true;
	dev->pcpu_stat_type = NETDEV_PCPU_STAT_DSTATS;
	/*
	 * Scatter-gather, checksum and TCP/UDP segmentation offload: the stack hands over large frames with the
	 * checksum left to do, and the encapsulated datagram is checksummed/segmented by the underlay device (in
	 * hardware or in software at its transmit), as for VXLAN. Frames that are already encapsulated get none of
	 * these (hw_enc_features stays 0): the stack finishes them before they reach us.
	 */
	dev->features |= NETIF_F_SG | NETIF_F_HW_CSUM | NETIF_F_ALL_TSO | NETIF_F_GSO_UDP_L4;
	dev->hw_features |= NETIF_F_SG | NETIF_F_HW_CSUM | NETIF_F_ALL_TSO | NETIF_F_GSO_UDP_L4;
	dev->needs_free_netdev = false;
	dev->priv_destructor = ovc_netdev_priv_destructor;
	eth_hw_addr_random(dev);
}

/* Gives a set-up, unregistered dev its callbacks and MTU and registers it (RTNL held). */
static int ovc_netdev_register(struct net_device *dev, unsigned int mtu, unsigned int max_mtu,
			       const struct ovc_netdev_ops *ops, const void *ctx, void (*release)(const void *),
			       unsigned long tag)
{
	struct ovc_netdev_priv *p = netdev_priv(dev);
	int err;

	ASSERT_RTNL();
	if (!ops || !ops->xmit || mtu < ETH_MIN_MTU || mtu > max_mtu || max_mtu > ETH_MAX_MTU)
		return -EINVAL;
	p->ops = ops;
	p->ctx = ctx;
	p->tag = tag;
	p->release = NULL;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = max_mtu;
	dev->mtu = mtu;
	err = register_netdevice(dev);
	if (err)
		return err;
	/* Only now: a failed registration may call the destructor, and the caller keeps its reference then. */
	p->release = release;
	return 0;
}

int ovc_netdev_create(const char *name, unsigned int mtu, unsigned int max_mtu, const struct ovc_netdev_ops *ops,
		      const void *ctx, void (*release)(const void *), unsigned long tag,
		      const struct ovc_link *link, struct net_device **out)
{
	struct net_device *dev;
	int err;

	*out = NULL;
	dev = alloc_netdev(sizeof(struct ovc_netdev_priv), name, NET_NAME_USER, ovc_netdev_setup);
	if (!dev)
		return -ENOMEM;
	if (link)
		dev->rtnl_link_ops = (struct rtnl_link_ops *)&link->ops;
	err = ovc_netdev_register(dev, mtu, max_mtu, ops, ctx, release, tag);
	if (err) {
		free_netdev(dev);
		return err;
	}
	*out = dev;
	return 0;
}

int ovc_netdev_adopt(struct net_device *dev, unsigned int mtu, unsigned int max_mtu, const struct ovc_netdev_ops *ops,
		     const void *ctx, void (*release)(const void *), unsigned long tag)
{
	return ovc_netdev_register(dev, mtu, max_mtu, ops, ctx, release, tag);
}

void ovc_netdev_unregister(struct net_device *dev, struct list_head *head)
{
	ASSERT_RTNL();
	/* The core frees it once the last reference is put (after RTNL is released), calling the destructor. */
	dev->needs_free_netdev = true;
	unregister_netdevice_queue(dev, head);
}

void ovc_netdev_destroy(struct net_device *dev)
{
	if (!dev)
		return;
	/* Closes the interface, waits for transmitters and for every dev_hold() to be put (and calls the destructor). */
	unregister_netdev(dev);
	free_netdev(dev);
}

unsigned long ovc_netdev_tag(const struct net_device *dev)
{
	const struct ovc_netdev_priv *p = netdev_priv(dev);

	return p->tag;
}

void ovc_netdev_name(const struct net_device *dev, char *out)
{
	strscpy(out, dev->name, IFNAMSIZ);
}

void ovc_netdev_hold(struct net_device *dev)
{
	dev_hold(dev);
}

void ovc_netdev_put(struct net_device *dev)
{
	dev_put(dev);
}

int ovc_netdev_set_mtu(struct net_device *dev, unsigned int mtu)
{
	ASSERT_RTNL();
	return dev_set_mtu(dev, mtu);
}

unsigned int ovc_netdev_mtu(const struct net_device *dev)
{
	return READ_ONCE(dev->mtu);
}

int ovc_netdev_ifindex(const struct net_device *dev)
{
	return dev->ifindex;
}

int ovc_netdev_receive(struct net_device *dev, struct sk_buff *skb, unsigned int pull)
{
	struct ovc_netdev_priv *p = netdev_priv(dev);
	unsigned int len;

	if (!(dev->flags & IFF_UP)) {
		kfree_skb(skb);
		dev_dstats_rx_dropped(dev);
		return -ENETDOWN;
	}
	if (pull) {
		/* Decapsulation: drop the UDP and tunnel headers; scrubs the outer packet's state. */
		/* Crossing into another namespace (the interface's; the sockets are the initial one's): scrub more. */
		if (iptunnel_pull_header(skb, pull, htons(ETH_P_TEB), !net_eq(dev_net(dev), &init_net)))
			goto drop_inval;
		if (!pskb_may_pull(skb, ETH_HLEN))
			goto drop_inval;
		skb->protocol = eth_type_trans(skb, dev);
		skb_postpull_rcsum(skb, eth_hdr(skb), ETH_HLEN);
		len = skb->len + ETH_HLEN;
		if (gro_cells_receive(&p->gro, skb) != NET_RX_SUCCESS) {
			dev_dstats_rx_dropped(dev);
			return -ENOBUFS;
		}
		dev_dstats_rx_add(dev, len);
		return 0;
	}
	/* Hand-off between two local interfaces (collapse): as veth does. */
	len = skb->len;
	if (dev_forward_skb(dev, skb) != NET_RX_SUCCESS) {
		/* dev_forward_skb() freed it: over the MTU, or the backlog was full. */
		dev_dstats_rx_dropped(dev);
		return -EMSGSIZE;
	}
	dev_dstats_rx_add(dev, len);
	return 0;

drop_inval:
	kfree_skb(skb);
	dev_dstats_rx_dropped(dev);
	return -EINVAL;
}

void ovc_netdev_tx_count(struct net_device *dev, unsigned int len)
{
	dev_dstats_tx_add(dev, len);
}

void ovc_netdev_tx_dropped(struct net_device *dev)
{
	dev_dstats_tx_dropped(dev);
}

unsigned int ovc_skb_len(const struct sk_buff *skb)
{
	return skb->len;
}

unsigned int ovc_skb_frame_len(const struct sk_buff *skb)
{
	unsigned int hdr;

	if (!skb_is_gso(skb))
		return skb->len;
	if (skb_shinfo(skb)->gso_type & (SKB_GSO_TCPV4 | SKB_GSO_TCPV6))
		hdr = skb_tcp_all_headers(skb);
	else if (skb_shinfo(skb)->gso_type & SKB_GSO_UDP_L4)
		hdr = skb_transport_offset(skb) + sizeof(struct udphdr);
	else
		return skb->len;
	return min(skb->len, hdr + skb_shinfo(skb)->gso_size);
}

void ovc_skb_free(struct sk_buff *skb)
{
	kfree_skb(skb);
}

/* ---- rtnl_link_ops: `ip link add NAME type KIND id N local ADDR remote ADDR` ---- */

static const struct nla_policy ovc_link_policy[OVC_LINK_ATTR_MAX + 1] = {
	[OVC_LINK_ATTR_ID] = { .type = NLA_U32 },
	[OVC_LINK_ATTR_LOCAL] = { .type = NLA_NUL_STRING, .len = OVC_LINK_ADDR_MAX - 1 },
	[OVC_LINK_ATTR_REMOTE] = { .type = NLA_NUL_STRING, .len = OVC_LINK_ADDR_MAX - 1 },
};

static struct ovc_link *ovc_link_of(const struct net_device *dev)
{
	return container_of(dev->rtnl_link_ops, struct ovc_link, ops);
}

static int ovc_link_newlink(struct net_device *dev, struct rtnl_newlink_params *params, struct netlink_ext_ack *extack)
{
	struct ovc_link *l = ovc_link_of(dev);
	struct nlattr **data = params->data;
	struct ovc_link_params p = {};

	/*
	 * The endpoint's UDP side lives in the initial network namespace (the manager's sockets do); its interface may
	 * live in another (`ip link add NAME netns NS type vwire ...` from the initial one, or `ip link set NAME netns
	 * NS` later), as a VXLAN device's may.
	 */
	if (!net_eq(params->src_net, &init_net)) {
		NL_SET_ERR_MSG(extack, "create endpoints from the initial network namespace (their UDP sockets live there); put the interface elsewhere with 'netns NS'");
		return -EOPNOTSUPP;
	}
	if (!data || !data[OVC_LINK_ATTR_ID] || !data[OVC_LINK_ATTR_LOCAL] || !data[OVC_LINK_ATTR_REMOTE]) {
		NL_SET_ERR_MSG(extack, "needs id N local ADDR remote ADDR");
		return -EINVAL;
	}
	p.id = nla_get_u32(data[OVC_LINK_ATTR_ID]);
	nla_strscpy(p.local, data[OVC_LINK_ATTR_LOCAL], sizeof(p.local));
	nla_strscpy(p.remote, data[OVC_LINK_ATTR_REMOTE], sizeof(p.remote));
	return l->cbs->newlink(l->ctx, dev, &p);
}

static int ovc_link_changelink(struct net_device *dev, struct nlattr *tb[], struct nlattr *data[],
			       struct netlink_ext_ack *extack)
{
	struct ovc_link *l = ovc_link_of(dev);
	struct ovc_link_params p = {};

	/* A plain `ip link set` (up, mtu, master, ...) of an interface of the kind carries no kind data. */
	if (!data)
		return 0;
	if (!data[OVC_LINK_ATTR_REMOTE]) {
		NL_SET_ERR_MSG(extack, "only the remote address can change: remote ADDR");
		return -EINVAL;
	}
	if (data[OVC_LINK_ATTR_ID])
		p.id = nla_get_u32(data[OVC_LINK_ATTR_ID]);
	if (data[OVC_LINK_ATTR_LOCAL])
		nla_strscpy(p.local, data[OVC_LINK_ATTR_LOCAL], sizeof(p.local));
	nla_strscpy(p.remote, data[OVC_LINK_ATTR_REMOTE], sizeof(p.remote));
	return l->cbs->changelink(l->ctx, ovc_netdev_tag(dev), &p);
}

static void ovc_link_dellink(struct net_device *dev, struct list_head *head)
{
	struct ovc_link *l = ovc_link_of(dev);

	l->cbs->dellink(l->ctx, dev, ovc_netdev_tag(dev), head);
}

static size_t ovc_link_get_size(const struct net_device *dev)
{
	return nla_total_size(sizeof(u32)) + 2 * nla_total_size(OVC_LINK_ADDR_MAX);
}

static int ovc_link_fill_info(struct sk_buff *skb, const struct net_device *dev)
{
	struct ovc_link *l = ovc_link_of(dev);
	struct ovc_link_params p = {};

	/* An interface being taken down may have no entry any more: report nothing rather than fail the dump. */
	if (l->cbs->fill(l->ctx, ovc_netdev_tag(dev), &p))
		return 0;
	if (nla_put_u32(skb, OVC_LINK_ATTR_ID, p.id) || nla_put_string(skb, OVC_LINK_ATTR_LOCAL, p.local) ||
	    nla_put_string(skb, OVC_LINK_ATTR_REMOTE, p.remote))
		return -EMSGSIZE;
	return 0;
}

struct ovc_link *ovc_link_register(const char *kind, const struct ovc_link_cbs *cbs, const void *ctx, int *err)
{
	struct ovc_link *l = kzalloc(sizeof(*l), GFP_KERNEL);

	if (!l) {
		*err = -ENOMEM;
		return NULL;
	}
	strscpy(l->kind, kind, sizeof(l->kind));
	l->cbs = cbs;
	l->ctx = ctx;
	l->ops.kind = l->kind;
	l->ops.priv_size = sizeof(struct ovc_netdev_priv);
	l->ops.setup = ovc_netdev_setup;
	l->ops.maxtype = OVC_LINK_ATTR_MAX;
	l->ops.policy = ovc_link_policy;
	l->ops.newlink = ovc_link_newlink;
	l->ops.dellink = ovc_link_dellink;
	l->ops.changelink = ovc_link_changelink;
	l->ops.get_size = ovc_link_get_size;
	l->ops.fill_info = ovc_link_fill_info;
	*err = rtnl_link_register(&l->ops);
	if (*err) {
		kfree(l);
		return NULL;
	}
	return l;
}

void ovc_link_unregister(struct ovc_link *l)
{
	if (!l)
		return;
	/* Deletes every interface of this kind (through dellink), then no callback runs any more. */
	rtnl_link_unregister(&l->ops);
	kfree(l);
}
