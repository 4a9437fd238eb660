// SPDX-License-Identifier: GPL-2.0
/* The rust/helpers groups blanket.ko uses, compiled into this module (see Documentation/build.md). */
#include "../rust/helpers/blk.c"
#include "../rust/helpers/virtio.c"
