// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel TCP client sockets for Overcast's Rust modules (declared in sock.h). Included by each module that uses them.
 */
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/jiffies.h>
#include <linux/net.h>
#include <linux/socket.h>
#include <linux/tcp.h>
#include <linux/uio.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "overcast_helpers.h"

struct socket *ovc_sock_connect(int family, const unsigned char *addr, unsigned short port, unsigned int timeout_ms,
			       int *err)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_unsized *sa;
	struct socket *sock;
	long tmo = msecs_to_jiffies(timeout_ms ? timeout_ms : 1);
	int salen, ret;

	if (family == AF_INET) {
		memcpy(&sin.sin_addr.s_addr, addr, 4);
		sa = (struct sockaddr_unsized *)&sin;
		salen = sizeof(sin);
	} else if (family == AF_INET6 && IS_ENABLED(CONFIG_IPV6)) {
		memcpy(&sin6.sin6_addr, addr, 16);
		sa = (struct sockaddr_unsized *)&sin6;
		salen = sizeof(sin6);
	} else {
		*err = -EAFNOSUPPORT;
		return NULL;
	}
	ret = sock_create_kern(&init_net, family, SOCK_STREAM, IPPROTO_TCP, &sock);
	if (ret) {
		*err = ret;
		return NULL;
	}
	/*
	 * As nbd: the socket may allocate from the memalloc reserves, never recurses into I/O, uses no task frag. Unlike
	 * nbd, without the allocator's warning: when even the reserves are gone TCP waits for memory (up to the send
	 * timeout, after which the repository is out of service and the pages keep their local copies), and a stack dump
	 * per failed page fragment under the very pressure swap is there to relieve tells the operator nothing more.
	 */
	sk_set_memalloc(sock->sk);
	sock->sk->sk_allocation = GFP_NOIO | __GFP_MEMALLOC | __GFP_NOWARN;
	sock->sk->sk_use_task_frag = false;
	sock->sk->sk_sndtimeo = tmo;
	sock->sk->sk_rcvtimeo = tmo;
	tcp_sock_set_nodelay(sock->sk);
	ret = kernel_connect(sock, sa, salen, 0);
	if (ret) {
		sock_release(sock);
		*err = ret == -EINPROGRESS || ret == -EAGAIN ? -ETIMEDOUT : ret;
		return NULL;
	}
	*err = 0;
	return sock;
}

int ovc_sock_send2(struct socket *s, const void *a, unsigned long alen, const void *b, unsigned long blen)
{
	struct kvec iov[2] = {
		{ .iov_base = (void *)a, .iov_len = alen },
		{ .iov_base = (void *)b, .iov_len = blen },
	};
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	unsigned long left = alen + blen;
	struct iov_iter it;

	iov_iter_kvec(&it, ITER_SOURCE, iov, 2, left);
	while (left) {
		int n;

		msg.msg_iter = it;
		n = sock_sendmsg(s, &msg);
		if (n == -EAGAIN)
			return -ETIMEDOUT;
		if (n < 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		left -= n;
		iov_iter_advance(&it, n);
	}
	return 0;
}

int ovc_sock_recv(struct socket *s, void *buf, unsigned long len)
{
	while (len) {
		struct kvec iov = { .iov_base = buf, .iov_len = len };
		struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
		int n = kernel_recvmsg(s, &msg, &iov, 1, len, MSG_WAITALL);

		if (n == -EAGAIN)
			return -ETIMEDOUT;
		if (n < 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		buf = (char *)buf + n;
		len -= n;
	}
	return 0;
}

void ovc_sock_close(struct socket *s)
{
	if (!s)
		return;
	kernel_sock_shutdown(s, SHUT_RDWR);
	sock_release(s);
}
