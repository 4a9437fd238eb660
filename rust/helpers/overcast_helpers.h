/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Overcast's C helper interface for Rust.
 *
 * The kernel's `bindings` crate covers only what in-tree Rust uses. What Overcast needs beyond it (procfs,
 * net_device, sk_buff, UDP tunnel sockets, Xen, virtio) is reached through small C helpers declared here and
 * defined in rust/helpers/ *.c. Each module compiles the helper groups it needs into itself (see
 * Documentation/build.md), so nothing in the kernel source is patched.
 *
 * This header is ALSO the input of our own bindgen run (make modules -> rust/generated/bindings.rs), which is why
 * it includes no kernel header: it uses only C basic types and opaque struct declarations, and bindgen's output
 * therefore matches these prototypes exactly. The helper .c files include this header, so the C compiler checks
 * that every definition matches its declaration here.
 */
#ifndef OVERCAST_HELPERS_H
#define OVERCAST_HELPERS_H

/* One header per helper group; each declares only basic C types, opaque structs and ovc_* functions. */
#include "procfs.h"
#include "net.h"
#include "udp.h"
#include "blk.h"
#include "sock.h"
#include "virtio.h"

#endif /* OVERCAST_HELPERS_H */
