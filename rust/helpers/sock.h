/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel TCP client sockets (sock.c) set up for block I/O under memory pressure, as nbd does: memalloc sockets
 * (sk_set_memalloc), GFP_NOIO | __GFP_MEMALLOC allocations, no task page frags, TCP_NODELAY, send and receive
 * timeouts. Part of overcast_helpers.h.
 */
#ifndef OVERCAST_HELPERS_SOCK_H
#define OVERCAST_HELPERS_SOCK_H

struct socket;

/*
 * Connects to IPv4 address addr (4 bytes, network order) port (host order) with send/receive timeouts of
 * timeout_ms. Returns the socket or NULL (*err = -errno).
 */
/* family: AF_INET (addr: 4 bytes) or AF_INET6 (16 bytes); -EAFNOSUPPORT otherwise. */
struct socket *ovc_sock_connect(int family, const unsigned char *addr, unsigned short port, unsigned int timeout_ms,
			       int *err);
/* Sends a then b (either may have length 0) completely. 0, -ETIMEDOUT, or another -errno. */
int ovc_sock_send2(struct socket *s, const void *a, unsigned long alen, const void *b, unsigned long blen);
/* Receives exactly len bytes. 0, -ETIMEDOUT, -ECONNRESET (peer closed), or another -errno. */
int ovc_sock_recv(struct socket *s, void *buf, unsigned long len);
/* Shuts the connection down and releases the socket. */
void ovc_sock_close(struct socket *s);

#endif /* OVERCAST_HELPERS_SOCK_H */
