// SPDX-License-Identifier: GPL-2.0
/* The rust/helpers groups vwire.ko uses, compiled into this module (see Documentation/build.md). */
#include "../rust/helpers/procfs.c"
#include "../rust/helpers/net.c"
#include "../rust/helpers/udp.c"
