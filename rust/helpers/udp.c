// SPDX-License-Identifier: GPL-2.0
/*
 * UDP tunnel sockets for Overcast's Rust modules: receive in the kernel's UDP encapsulation path (encap_rcv) with a
 * Rust callback, transmit of encapsulated frames with udp_tunnel_xmit_skb()/udp_tunnel6_xmit_skb(). See udp.h.
 */
#include <linux/etherdevice.h>
#include <linux/if_bridge.h>
#include <linux/if_vlan.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/net.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/udp.h>
#include <net/gro.h>
#include <net/dst_cache.h>
#include <net/inet_sock.h>
#include <net/ip.h>
#include <net/ip_tunnels.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <net/sock.h>
#include <net/udp_tunnel.h>

#include "overcast_helpers.h"

struct ovc_udp_sock {
	struct socket *sock;
	const struct ovc_udp_ops *ops;
	const void *ctx;
	unsigned long tag;
	unsigned int gro_hdr_len;	/* the tunnel header's length, once GRO was first turned on; never changes after */
	bool gro_on;			/* new packets are aggregated (ovc_udp_set_gro) */
};

/*
 * GRO of the tunnel's datagrams: the UDP layer has pulled the outer headers; the tunnel header follows. Packets held
 * for merging stay the same flow only with a byte-identical tunnel header (same connector); the inner Ethernet frame
 * goes on to eth_gro_receive, which merges the inner TCP segments.
 */
static struct sk_buff *ovc_udp_gro_receive(struct sock *sk, struct list_head *head, struct sk_buff *skb)
{
	struct ovc_udp_sock *us = rcu_dereference_sk_user_data(sk);
	unsigned int off = skb_gro_offset(skb), hlen;
	struct sk_buff *pp = NULL, *p;
	const void *hdr;
	int flush = 1;

	if (!us || !READ_ONCE(us->gro_on))
		goto out;
	hlen = READ_ONCE(us->gro_hdr_len);
	if (!hlen || hlen > 64)
		goto out;
	hdr = skb_gro_header(skb, off + hlen, off);
	if (!hdr)
		goto out;
	list_for_each_entry(p, head, list) {
		if (NAPI_GRO_CB(p)->same_flow && memcmp(hdr, p->data + off, hlen))
			NAPI_GRO_CB(p)->same_flow = 0;
	}
	skb_gro_pull(skb, hlen);
	skb_gro_postpull_rcsum(skb, hdr, hlen);
	pp = call_gro_receive(eth_gro_receive, head, skb);
	flush = 0;
out:
	skb_gro_flush_final(skb, pp, flush);
	return pp;
}

static int ovc_udp_gro_complete(struct sock *sk, struct sk_buff *skb, int nhoff)
{
	struct ovc_udp_sock *us = rcu_dereference_sk_user_data(sk);

	/*
	 * Only merged packets are completed, and only ovc_udp_gro_receive merges them, with this header length (fixed
	 * once set: turning GRO off later does not change it, so packets held meanwhile still complete right).
	 */
	return eth_gro_complete(skb, nhoff + (us ? READ_ONCE(us->gro_hdr_len) : 0));
}

void ovc_udp_set_gro(struct ovc_udp_sock *us, unsigned int hdr_len)
{
	if (!us)
		return;
	if (!hdr_len) {
		WRITE_ONCE(us->gro_on, false);
		return;
	}
	/* One header length per socket: the first one given stays (completion of held packets relies on it). */
	if (!us->gro_hdr_len)
		WRITE_ONCE(us->gro_hdr_len, hdr_len);
	WRITE_ONCE(us->gro_on, us->gro_hdr_len == hdr_len);
}

static int ovc_udp_encap_rcv(struct sock *sk, struct sk_buff *skb)
{
	struct ovc_udp_sock *us = rcu_dereference_sk_user_data(sk);
	unsigned int len, head;

	if (!us || skb->len < sizeof(struct udphdr))
		goto drop;
	len = skb->len - sizeof(struct udphdr);
	head = min_t(unsigned int, len, OVC_UDP_HEAD);
	if (!pskb_may_pull(skb, sizeof(struct udphdr) + head))
		goto drop;
	us->ops->rcv(us->ctx, us->tag, skb, skb->data + sizeof(struct udphdr), head, len);
	return 0;
drop:
	kfree_skb(skb);
	return 0;
}

int ovc_udp_open(const struct ovc_sockaddr *local, const struct ovc_udp_ops *ops, const void *ctx,
		 unsigned long tag, struct ovc_udp_sock **out)
{
	struct udp_tunnel_sock_cfg cfg = {};
	struct ovc_udp_sock *us;
	struct socket *sock;
	struct sock *sk;
	int err;

	*out = NULL;
	if (!ops || !ops->rcv)
		return -EINVAL;
	us = kzalloc(sizeof(*us), GFP_KERNEL);
	if (!us)
		return -ENOMEM;
	if (local->family == 4) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(local->port) };

		memcpy(&sin.sin_addr, local->addr, 4);
		err = sock_create_kern(&init_net, AF_INET, SOCK_DGRAM, IPPROTO_UDP, &sock);
		if (err)
			goto free;
		ip_sock_set_freebind(sock->sk);
		err = kernel_bind(sock, (struct sockaddr_unsized *)&sin, sizeof(sin));
	} else if (local->family == 6 && IS_ENABLED(CONFIG_IPV6)) {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(local->port),
					     .sin6_scope_id = local->scope_id };

		memcpy(&sin6.sin6_addr, local->addr, 16);
		err = sock_create_kern(&init_net, AF_INET6, SOCK_DGRAM, IPPROTO_UDP, &sock);
		if (err)
			goto free;
		ip_sock_set_freebind(sock->sk);
		ip6_sock_set_v6only(sock->sk);
		/* A kernel VXLAN peer sends IPv6 with a checksum by default; accept a zero one too. */
		udp_set_no_check6_rx(sock->sk, true);
		err = kernel_bind(sock, (struct sockaddr_unsized *)&sin6, sizeof(sin6));
	} else {
		err = -EAFNOSUPPORT;
		goto free;
	}
	if (err)
		goto release;
	sk = sock->sk;
	/* Keep working under memory pressure: atomic allocations and access to the reserves, as nbd's socket. */
	sk->sk_allocation = GFP_ATOMIC;
	sk_set_memalloc(sk);
	us->sock = sock;
	us->ops = ops;
	us->ctx = ctx;
	us->tag = tag;
	cfg.sk_user_data = us;
	cfg.encap_type = 1;
	cfg.encap_rcv = ovc_udp_encap_rcv;
	cfg.gro_receive = ovc_udp_gro_receive;
	cfg.gro_complete = ovc_udp_gro_complete;
	setup_udp_tunnel_sock(&init_net, sk, &cfg);
	*out = us;
	return 0;

release:
	sock_release(sock);
free:
	kfree(us);
	return err;
}

void ovc_udp_close(struct ovc_udp_sock *us)
{
	struct sock *sk;

	if (!us)
		return;
	sk = us->sock->sk;
	sk_clear_memalloc(sk);
	/* Clears sk_user_data (no new callback sees us), shuts down and releases the socket. */
	udp_tunnel_sock_release(sk);
	/* encap_rcv runs under rcu_read_lock(): wait for callbacks in flight before freeing us. */
	synchronize_rcu();
	kfree(us);
}

struct sock *ovc_udp_sk(struct ovc_udp_sock *us)
{
	return us->sock->sk;
}

void ovc_sk_hold(struct sock *sk)
{
	sock_hold(sk);
}

void ovc_sk_put(struct sock *sk)
{
	sock_put(sk);
}

/*
 * The frame does not fit the route's current MTU (it shrank since the interface MTU was set): as VXLAN does, the
 * kernel turned it into an ICMP "fragmentation needed" (IPv4) or "packet too big" (IPv6) for the guest that sent
 * it; deliver that back out of the interface, towards the sender.
 */
static void ovc_udp_pmtu_reply(struct net_device *dev, struct sk_buff *skb)
{
	skb->pkt_type = PACKET_HOST;
	skb->encapsulation = 0;
	skb->dev = dev;
	__skb_pull(skb, skb_network_offset(skb));
	if (!(dev->flags & IFF_UP)) {
		kfree_skb(skb);
		return;
	}
	netif_rx(skb);
}

static int ovc_udp_prepare(struct sk_buff **pskb, unsigned int pull, const unsigned char *hdr,
			   unsigned int hdr_len, unsigned int headroom, bool udp_csum)
{
	struct sk_buff *skb = *pskb;
	int err;

	if (pull && !pskb_pull(skb, pull))
		return -EINVAL;
	if (skb_vlan_tag_present(skb)) {
		skb = __vlan_hwaccel_push_inside(skb);
		*pskb = skb;
		if (!skb)
			return -ENOMEM;
	}
	err = skb_cow_head(skb, headroom + hdr_len);
	if (err)
		return err;
	err = udp_tunnel_handle_offloads(skb, udp_csum);
	if (err)
		return err;
	if (hdr_len)
		memcpy(__skb_push(skb, hdr_len), hdr, hdr_len);
	skb_set_inner_protocol(skb, htons(ETH_P_TEB));
	return 0;
}

struct ovc_dst_cache {
	struct dst_cache c;
};

struct ovc_dst_cache *ovc_dst_cache_new(void)
{
	struct ovc_dst_cache *c = kzalloc(sizeof(*c), GFP_KERNEL);

	if (!c)
		return NULL;
	if (dst_cache_init(&c->c, GFP_KERNEL)) {
		kfree(c);
		return NULL;
	}
	return c;
}

void ovc_dst_cache_free(struct ovc_dst_cache *c)
{
	if (!c)
		return;
	dst_cache_destroy(&c->c);
	kfree(c);
}

int ovc_udp_xmit(struct sock *sk, struct sk_buff *skb, unsigned int pull, const unsigned char *hdr,
		 unsigned int hdr_len, const struct ovc_sockaddr *dst, int df, struct net_device *dev,
		 struct ovc_dst_cache *cache)
{
	struct net *net = sock_net(sk);
	/* The interface lives in another namespace than the socket: the frame crosses, drop its namespace's state. */
	bool xnet = dev && !net_eq(net, dev_net(dev));
	int err;

	/*
	 * A relayed datagram (no device) leaves as it arrived. A GRO-merged one can only come from the moment a relay
	 * appears on a socket that aggregated until then (ovc_udp_set_gro): drop it, TCP inside resends.
	 */
	if (!dev && skb_is_gso(skb)) {
		err = -EMSGSIZE;
		goto drop;
	}
	if (dst->family == 4 && sk->sk_family == AF_INET) {
		struct inet_sock *inet = inet_sk(sk);
		struct flowi4 fl4 = {};
		struct rtable *rt;
		__be32 daddr;

		memcpy(&daddr, dst->addr, 4);
		fl4.flowi4_proto = IPPROTO_UDP;
		fl4.daddr = daddr;
		fl4.saddr = inet->inet_rcv_saddr;
		fl4.fl4_sport = inet->inet_sport;
		fl4.fl4_dport = htons(dst->port);
		fl4.flowi4_mark = skb->mark;
		if (skb->mark)
			cache = NULL;
		/* The per-CPU cache wants bottom halves off (they are in ndo_start_xmit and the receive path). */
		local_bh_disable();
		rt = cache ? dst_cache_get_ip4(&cache->c, &fl4.saddr) : NULL;
		if (!rt) {
			rt = ip_route_output_key(net, &fl4);
			if (!IS_ERR(rt) && cache)
				dst_cache_set_ip4(&cache->c, &rt->dst, fl4.saddr);
		}
		local_bh_enable();
		if (IS_ERR(rt)) {
			err = -ENETUNREACH;
			goto drop;
		}
		if (dev && rt->dst.dev == dev) {
			ip_rt_put(rt);
			err = -ELOOP;
			goto drop;
		}
		if (df && dev) {
			err = skb_tunnel_check_pmtu(skb, &rt->dst, sizeof(struct iphdr) + sizeof(struct udphdr) +
						    hdr_len + ETH_HLEN, netif_is_any_bridge_port(dev));
			if (err) {
				ip_rt_put(rt);
				if (err > 0) {
					ovc_udp_pmtu_reply(dev, skb);
					dev_dstats_tx_dropped(dev);
					return -EMSGSIZE;
				}
				err = -EMSGSIZE;
				goto drop;
			}
			/* Not answerable (no DF inside, not IP, not bridged): better fragmented than lost. */
			if (!skb_is_gso(skb) &&
			    skb->len + hdr_len + sizeof(struct udphdr) + sizeof(struct iphdr) > dst_mtu(&rt->dst))
				df = 0;
		}
		err = ovc_udp_prepare(&skb, pull, hdr, hdr_len,
				      LL_RESERVED_SPACE(rt->dst.dev) + rt->dst.header_len +
				      sizeof(struct iphdr) + sizeof(struct udphdr), false);
		if (err) {
			ip_rt_put(rt);
			goto drop;
		}
		/* IPv4 UDP checksum 0, as VXLAN sends by default (RFC 7348). */
		/* iptunnel_xmit() counts the datagram in skb->dev's statistics: ours, or none when relaying. */
		skb->dev = dev;
		udp_tunnel_xmit_skb(rt, sk, skb, fl4.saddr, daddr, 0, ip4_dst_hoplimit(&rt->dst),
				    df ? htons(IP_DF) : 0, inet->inet_sport, htons(dst->port), xnet, true, 0);
		return 0;
	}
#if IS_ENABLED(CONFIG_IPV6)
	if (dst->family == 6 && sk->sk_family == AF_INET6) {
		struct flowi6 fl6 = {};
		struct dst_entry *ndst;

		fl6.flowi6_proto = IPPROTO_UDP;
		memcpy(&fl6.daddr, dst->addr, 16);
		fl6.saddr = sk->sk_v6_rcv_saddr;
		fl6.flowi6_oif = sk->sk_bound_dev_if ? sk->sk_bound_dev_if : (int)dst->scope_id;
		fl6.fl6_sport = inet_sk(sk)->inet_sport;
		fl6.fl6_dport = htons(dst->port);
		fl6.flowi6_mark = skb->mark;
		if (skb->mark)
			cache = NULL;
		local_bh_disable();
		ndst = cache ? dst_cache_get_ip6(&cache->c, &fl6.saddr) : NULL;
		if (!ndst) {
			ndst = ip6_dst_lookup_flow(net, sk, &fl6, NULL);
			if (!IS_ERR(ndst) && cache)
				dst_cache_set_ip6(&cache->c, ndst, &fl6.saddr);
		}
		local_bh_enable();
		if (IS_ERR(ndst)) {
			err = -ENETUNREACH;
			goto drop;
		}
		if (dev && dst_dev(ndst) == dev) {
			dst_release(ndst);
			err = -ELOOP;
			goto drop;
		}
		if (df && dev) {
			err = skb_tunnel_check_pmtu(skb, ndst, sizeof(struct ipv6hdr) + sizeof(struct udphdr) +
						    hdr_len + ETH_HLEN, netif_is_any_bridge_port(dev));
			if (err) {
				dst_release(ndst);
				if (err > 0) {
					ovc_udp_pmtu_reply(dev, skb);
					dev_dstats_tx_dropped(dev);
					return -EMSGSIZE;
				}
				err = -EMSGSIZE;
				goto drop;
			}
		}
		err = ovc_udp_prepare(&skb, pull, hdr, hdr_len,
				      LL_RESERVED_SPACE(dst_dev(ndst)) + ndst->header_len +
				      sizeof(struct ipv6hdr) + sizeof(struct udphdr), true);
		if (err) {
			dst_release(ndst);
			goto drop;
		}
		/* IPv6 never fragments in flight; df has no header bit here. Counts in dev's statistics. */
		skb->dev = dev;
		/* (udp_tunnel6_xmit_skb does not scrub, unlike the IPv4 path.) */
		if (xnet)
			skb_scrub_packet(skb, true);
		udp_tunnel6_xmit_skb(ndst, sk, skb, dev, &fl6.saddr, &fl6.daddr, 0, ip6_dst_hoplimit(ndst), 0,
				     inet_sk(sk)->inet_sport, htons(dst->port), false, 0);
		return 0;
	}
#endif
	err = -EAFNOSUPPORT;
drop:
	kfree_skb(skb);
	if (dev)
		dev_dstats_tx_dropped(dev);
	return err;
}

unsigned int ovc_udp_path_mtu(const struct ovc_sockaddr *local, const struct ovc_sockaddr *remote)
{
	unsigned int mtu = 0;

	if (local->family == 4 && remote->family == 4) {
		struct flowi4 fl4 = {};
		struct rtable *rt;

		memcpy(&fl4.daddr, remote->addr, 4);
		memcpy(&fl4.saddr, local->addr, 4);
		fl4.flowi4_proto = IPPROTO_UDP;
		rt = ip_route_output_key(&init_net, &fl4);
		if (IS_ERR(rt)) {
			/* The local address may not be configured yet (IP_FREEBIND): try without it. */
			fl4.saddr = 0;
			rt = ip_route_output_key(&init_net, &fl4);
		}
		if (!IS_ERR(rt)) {
			mtu = dst_mtu(&rt->dst);
			ip_rt_put(rt);
		}
	}
#if IS_ENABLED(CONFIG_IPV6)
	if (local->family == 6 && remote->family == 6) {
		struct flowi6 fl6 = {};
		struct dst_entry *dst;

		memcpy(&fl6.daddr, remote->addr, 16);
		fl6.flowi6_oif = (int)remote->scope_id;
		fl6.flowi6_proto = IPPROTO_UDP;
		dst = ip6_dst_lookup_flow(&init_net, NULL, &fl6, NULL);
		if (!IS_ERR(dst)) {
			mtu = dst_mtu(dst);
			dst_release(dst);
		}
	}
#endif
	return mtu;
}
