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

#include "overcast_helpers.h"

struct ovc_netdev_priv {
	const struct ovc_netdev_ops *ops;
	const void *ctx;
	unsigned long tag;
	struct gro_cells gro;
};

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
	eth_hw_addr_random(dev);
}

int ovc_netdev_create(const char *name, unsigned int mtu, unsigned int max_mtu, const struct ovc_netdev_ops *ops,
		      const void *ctx, unsigned long tag, struct net_device **out)
{
	struct ovc_netdev_priv *p;
	struct net_device *dev;
	int err;

	*out = NULL;
	if (!ops || !ops->xmit || mtu < ETH_MIN_MTU || mtu > max_mtu || max_mtu > ETH_MAX_MTU)
		return -EINVAL;
	dev = alloc_netdev(sizeof(*p), name, NET_NAME_USER, ovc_netdev_setup);
	if (!dev)
		return -ENOMEM;
	p = netdev_priv(dev);
	p->ops = ops;
	p->ctx = ctx;
	p->tag = tag;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = max_mtu;
	dev->mtu = mtu;
	err = register_netdev(dev);
	if (err) {
		free_netdev(dev);
		return err;
	}
	*out = dev;
	return 0;
}

void ovc_netdev_destroy(struct net_device *dev)
{
	if (!dev)
		return;
	/* Closes the interface, waits for transmitters and for every dev_hold() to be put. */
	unregister_netdev(dev);
	free_netdev(dev);
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
	int err;

	rtnl_lock();
	err = dev_set_mtu(dev, mtu);
	rtnl_unlock();
	return err;
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
		if (iptunnel_pull_header(skb, pull, htons(ETH_P_TEB), false))
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
