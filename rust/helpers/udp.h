/* SPDX-License-Identifier: GPL-2.0 */
/*
 * UDP tunnel socket helpers (udp.c): kernel UDP sockets whose datagrams are handed to Rust in the UDP receive path
 * (encap_rcv, softirq, no thread, no copy), and transmit of encapsulated frames. Part of overcast_helpers.h.
 */
#ifndef OVERCAST_HELPERS_UDP_H
#define OVERCAST_HELPERS_UDP_H

struct sk_buff;
struct sock;
struct net_device;
struct ovc_udp_sock;
struct ovc_dst_cache;

/* An IPv4 or IPv6 UDP address. family: 4 or 6; port in host order; addr: 4 (IPv4) or 16 bytes, network order. */
struct ovc_sockaddr {
	unsigned short family;
	unsigned short port;
	unsigned int scope_id;
	unsigned char addr[16];
};

/* How many bytes of a UDP payload the receive callback can read directly (a tunnel header + an Ethernet header). */
#define OVC_UDP_HEAD 22

/*
 * Callback of one tunnel socket, implemented in Rust.
 * rcv: a datagram arrived. skb->data is at its UDP header; `head` points to the first head_len bytes of the UDP
 *      payload (head_len = min(payload_len, OVC_UDP_HEAD)), valid until skb is changed or freed. The callee owns
 *      skb and must consume or free it. Softirq context, inside an RCU read-side section.
 */
struct ovc_udp_ops {
	void (*rcv)(const void *ctx, unsigned long tag, struct sk_buff *skb, const unsigned char *head,
		    unsigned long head_len, unsigned long payload_len);
};

/*
 * Opens a UDP socket in init_net bound to `local` (IP_FREEBIND: the address need not be configured yet), set up as
 * a UDP tunnel socket (encap_rcv -> ops->rcv(ctx, tag, ...)) that may use the memory reserves (SOCK_MEMALLOC,
 * GFP_ATOMIC) so that it keeps working under memory pressure. Returns 0 and *out, or a negative errno
 * (-EADDRINUSE: the port is held by another socket on that address; -EAFNOSUPPORT; -ENOMEM).
 */
int ovc_udp_open(const struct ovc_sockaddr *local, const struct ovc_udp_ops *ops, const void *ctx,
		 unsigned long tag, struct ovc_udp_sock **out);
/* Stops the callbacks, releases the socket and waits until no rcv callback runs; afterwards ctx is unused. */
void ovc_udp_close(struct ovc_udp_sock *us);
/*
 * Receive aggregation (GRO) of the socket's datagrams, as the kernel's VXLAN does: with hdr_len > 0, datagrams whose
 * first hdr_len payload bytes (the tunnel header) are identical and whose inner Ethernet frames GRO can merge (a TCP
 * stream) reach rcv as one large datagram; 0 turns it off (every datagram on its own — for a socket whose datagrams
 * are forwarded as they are, e.g. a relay's). Off after ovc_udp_open. A socket keeps the first hdr_len it was given
 * (a different one turns GRO off).
 */
void ovc_udp_set_gro(struct ovc_udp_sock *us, unsigned int hdr_len);
/* The socket's struct sock, for ovc_udp_xmit(); take a reference with ovc_sk_hold() to use it beyond close. */
struct sock *ovc_udp_sk(struct ovc_udp_sock *us);
void ovc_sk_hold(struct sock *sk);
void ovc_sk_put(struct sock *sk);

/*
 * A route cache for the datagrams sent to one destination, as the kernel's VXLAN keeps one per remote (struct
 * dst_cache: per CPU, checked against the routing table's generation and the route's validity on every use, so a
 * route or path-MTU change is seen at the next frame). NULL when out of memory. Process context. Free it only when
 * no ovc_udp_xmit() can use it any more.
 */
struct ovc_dst_cache *ovc_dst_cache_new(void);
void ovc_dst_cache_free(struct ovc_dst_cache *c);

/*
 * Sends skb as one UDP datagram from sk's bound address and port to `dst`: removes `pull` bytes from the front of
 * skb (a received UDP header, when relaying), prepends the hdr_len bytes at hdr (the tunnel header), then UDP and
 * IP (DF set when df != 0). dev (may be NULL) is the interface the frame came from, for its statistics and to
 * refuse a route back into it. With df and dev, a frame that no longer fits the route's MTU is not sent: the guest
 * that sent it gets an ICMP "fragmentation needed"/"packet too big" out of dev (when dev is a bridge port), as from
 * a VXLAN device. Consumes skb on every path. Returns 0, or a negative errno when the frame was dropped
 * (-ENETUNREACH no route, -ELOOP route into dev, -ENOMEM no headroom, -EMSGSIZE over the route's MTU,
 * -EAFNOSUPPORT family differs from sk's). cache (may be NULL) is the route cache of `dst` and of nothing else: the
 * route is taken from it, or looked up and kept there (not for a marked skb, whose mark may select another route).
 */
int ovc_udp_xmit(struct sock *sk, struct sk_buff *skb, unsigned int pull, const unsigned char *hdr,
		 unsigned int hdr_len, const struct ovc_sockaddr *dst, int df, struct net_device *dev,
		 struct ovc_dst_cache *cache);
/* MTU of the route from local to remote (0 when there is none). Process context. */
unsigned int ovc_udp_path_mtu(const struct ovc_sockaddr *local, const struct ovc_sockaddr *remote);

#endif /* OVERCAST_HELPERS_UDP_H */
