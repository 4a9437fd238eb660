#!/bin/sh
# blanket_blk (blanket.ko) drives a provider virtio-blk disk: the run attaches one extra virtio-blk disk (a 64 MiB
# raw image, --qemu-arg); the C virtio_blk driver has it at boot and keeps it when blanket.ko loads. The scenario
# hands it to blanket_blk through sysfs, checks data written by either driver reads back through the other, that
# flushes reach the device, that discard and write-zeroes hit exactly their ranges, fio's verification under
# concurrency, unbind/rebind, recovery of a stalled device (timeout, reset and retry; given up; unbind while stuck),
# rmmod refused while the disk is open and clean while idle, and finally gives the disk back to virtio_blk.
. /overcast/tests/lib.sh
M=/overcast/modules
C=/sys/bus/virtio/drivers/virtio_blk
B=/sys/bus/virtio/drivers/blanket_blk

# The lab's root is an initramfs: every virtio-blk (id 2) device is one the run attached. V: the modern writable
# one (the main subject). Optional: VRO, a read-only one (VIRTIO_BLK_F_RO); VL, a legacy-only one (no VERSION_1,
# bit 32 of the features string), which blanket_blk must refuse.
V= VRO= VL=
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat "$d/device" 2>/dev/null)" = 0x0002 ] || continue
  if [ "$(cut -c33 "$d/features")" != 1 ]; then VL=$(basename "$d")
  elif [ "$(cut -c6 "$d/features")" = 1 ]; then VRO=$(basename "$d")
  else V=$(basename "$d"); fi
done
echo "virtio-blk devices: main=$V read-only=${VRO:-none} legacy=${VL:-none}"
check has-virtio-blk-device test -n "$V"
# The block device a driver made for $V (vda from virtio_blk, bvd<N> from blanket_blk).
blkdev() { ls /sys/bus/virtio/devices/$V/block 2>/dev/null | head -1; }

check insmod-blanket insmod $M/blanket.ko
check driver-registered test -d $B
check c-driver-keeps-device sh -c "[ \"\$(basename \"\$(readlink /sys/bus/virtio/devices/$V/driver)\")\" = virtio_blk ]"
CDEV=$(blkdev)
check c-driver-has-disk test -b "/dev/$CDEV"
# Hardware queues virtio_blk made (the device's num_queues with VIRTIO_BLK_F_MQ, at most one per CPU).
CQUEUES=$(ls -d /sys/block/$CDEV/mq/* 2>/dev/null | wc -l)
# The discard and write-zeroes limits virtio_blk took from the device's configuration.
limits() { for f in discard_max_hw_bytes discard_granularity write_zeroes_max_bytes; do cat /sys/block/$1/queue/$f; done | tr '\n' ' '; }
CLIMITS=$(limits $CDEV)

# Data written through the C driver (8 MiB at 0), to be read back through ours.
dd if=/dev/urandom of=/tmp/pat1 bs=1M count=8 2>/dev/null
dd if=/dev/urandom of=/tmp/pat2 bs=1M count=8 2>/dev/null
check c-driver-write dd if=/tmp/pat1 of=/dev/$CDEV bs=1M conv=fsync

# --- hand the device to blanket_blk -------------------------------------------------------------------------------
check unbind-c-driver sh -c "echo $V > $C/unbind"
check c-disk-gone sh -c "! test -e /sys/block/$CDEV"
check bind-blanket sh -c "echo $V > $B/bind"
check bound-to-blanket sh -c "[ \"\$(basename \"\$(readlink /sys/bus/virtio/devices/$V/driver)\")\" = blanket_blk ]"
D=$(blkdev)
echo "blanket disk: $D (virtio device $V)"
check disk-name-bvd0 test "$D" = bvd0
check disk-node test -b /dev/bvd0
# Without the disk the rest would only write files into /dev: stop here.
if ! test -b /dev/bvd0; then check_no_oops; exit $OVC_FAILS; fi
check disk-size-64MiB test "$(cat /sys/block/bvd0/size)" = 131072
check disk-write-cache sh -c 'grep -q "write back" /sys/block/bvd0/queue/write_cache'
check disk-is-virtio-child test -e /sys/block/bvd0/device/driver
# Multi-queue: as many hardware queues (one virtqueue each) as virtio_blk had.
BQUEUES=$(ls -d /sys/block/bvd0/mq/* 2>/dev/null | wc -l)
echo "hardware queues: virtio_blk $CQUEUES, blanket_blk $BQUEUES ($(grep -c ^processor /proc/cpuinfo) CPUs)"
check same-queue-count-as-c-driver test "$BQUEUES" = "$CQUEUES"
# The drivers' own /sys directory (the same names whatever the provider's device): backend, provider device,
# negotiated features (agreeing with the virtio core's bit string), queues, ring.
S=/sys/block/bvd0/blanket
head -n 20 $S/* 2>/dev/null
feature_bit() { echo $(( ($(cat $S/features) >> $1) & 1 )); }
check sysfs-blanket sh -c "grep -qx virtio-blk $S/backend && grep -qx $V $S/provider && [ \"\$(cat $S/queues)\" = $BQUEUES ] && [ \"\$(cat $S/ring)\" -gt 0 ]"
check sysfs-features-agree sh -c "[ $(feature_bit 32) = 1 ] && [ $(feature_bit 32) = \"\$(cut -c33 /sys/bus/virtio/devices/$V/features)\" ] && [ $(feature_bit 12) = \"\$(cut -c13 /sys/bus/virtio/devices/$V/features)\" ]"
dmesg | grep 'blanket_blk' | tail -3

# Reads of what virtio_blk wrote.
check read-c-written sh -c 'dd if=/dev/bvd0 of=/tmp/r1 bs=1M count=8 2>/dev/null && cmp /tmp/pat1 /tmp/r1'
# Our writes, flushed (fsync on a block device sends a flush request), read back past the page cache.
check blanket-write-fsync dd if=/tmp/pat2 of=/dev/bvd0 bs=1M seek=16 conv=fsync
check flush-reached-device sh -c 'set -- $(cat /sys/block/bvd0/stat); [ "${16:-0}" -gt 0 ]'
check read-back sh -c 'echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/bvd0 of=/tmp/r2 bs=1M skip=16 count=8 2>/dev/null && cmp /tmp/pat2 /tmp/r2'
# Direct, concurrent random writes with verification (4 jobs -> several requests in flight), then a verify pass.
# Each job its own 4 MiB region (offset_increment), so the verification sees only its own writes.
check fio-verify fio --name=v --filename=/dev/bvd0 --offset=32M --size=4M --offset_increment=4M --rw=randwrite \
    --bs=4k --direct=1 --ioengine=psync --numjobs=4 --verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting \
    --output=/tmp/fio.out
tail -5 /tmp/fio.out 2>/dev/null
# One writer per CPU (blk-mq maps each CPU to its own hardware queue): with several queues, every virtqueue carries
# verified I/O.
NCPU=$(grep -c ^processor /proc/cpuinfo)
check fio-verify-per-cpu fio --name=q --filename=/dev/bvd0 --offset=32M --size=4M --offset_increment=4M \
    --rw=randwrite --bs=4k --direct=1 --ioengine=psync --numjobs=$NCPU --cpus_allowed=0-$((NCPU - 1)) \
    --cpus_allowed_policy=split --verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting --output=/tmp/fioq.out
check fio-mixed-sizes fio --name=m --filename=/dev/bvd0 --offset=48M --size=8M --rw=write --bsrange=4k-1m \
    --direct=1 --ioengine=psync --verify=md5 --verify_fatal=1 --output=/tmp/fio2.out

# --- discard and write-zeroes (VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES) -----------------------------------
# The run's drive has discard=unmap: QEMU punches the ranges out of the raw image, so a discarded range reads back as
# zeroes and a wrong sector or length shows in the bytes around it. 8 MiB of pattern at 24 MiB, then: discard
# [25M, 26M), write-zeroes without unmap (fallocate -z: REQ_NOUNMAP) over [27M, 28M), write-zeroes that may unmap
# (fallocate -p: no fallback to writing zero pages, so it fails unless the device does write-zeroes) over
# [29M, 29.5M). Offsets in KiB below.
BLIMITS=$(limits bvd0)
echo "discard/write-zeroes limits (max discard, granularity, max write-zeroes bytes): virtio_blk $CLIMITS, blanket_blk $BLIMITS; ranges per discard $(cat /sys/block/bvd0/queue/max_discard_segments)"
check discard-limits-as-c-driver test "$BLIMITS" = "$CLIMITS"
check discard-offered sh -c '[ "$(cat /sys/block/bvd0/queue/discard_max_hw_bytes)" -gt 0 ] && [ "$(cat /sys/block/bvd0/queue/write_zeroes_max_bytes)" -gt 0 ]'
check discard-pattern dd if=/tmp/pat1 of=/dev/bvd0 bs=1M seek=24 count=8 conv=fsync
discards() { set -- $(cat /sys/block/bvd0/stat); echo "${12:-0}"; }
D0=$(discards)
check discard blkdiscard -o $((25 * 1048576)) -l 1048576 /dev/bvd0
check discard-counted test "$(discards)" -gt "$D0"
check write-zeroes-keep /usr/bin/fallocate -z -o $((27 * 1048576)) -l 1048576 /dev/bvd0
check write-zeroes-unmap /usr/bin/fallocate -p -o $((29 * 1048576)) -l 524288 /dev/bvd0
# What the region must now hold: the pattern with those ranges zeroed (built with dd over a copy of it).
cp /tmp/pat1 /tmp/want
for r in 1024:1024 3072:1024 5120:512; do
  dd if=/dev/zero of=/tmp/want bs=1k seek=${r%:*} count=${r#*:} conv=notrunc 2>/dev/null
done
check ranges-exact sh -c 'echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/bvd0 of=/tmp/r6 bs=1M skip=24 count=8 2>/dev/null && cmp /tmp/want /tmp/r6'
check read-at-end-is-empty sh -c '[ "$(dd if=/dev/bvd0 bs=512 skip=131072 count=1 2>/dev/null | wc -c)" = 0 ]'

# --- unbind / rebind while idle: the disk goes and comes back with the same name and data --------------------------
check unbind-blanket sh -c "echo $V > $B/unbind"
check bvd0-gone sh -c '! test -e /sys/block/bvd0 && ! test -e /dev/bvd0'
check rebind-blanket sh -c "echo $V > $B/bind"
check rebind-same-name test "$(blkdev)" = bvd0
check rebind-data-kept sh -c 'dd if=/dev/bvd0 of=/tmp/r3 bs=1M skip=16 count=8 2>/dev/null && cmp /tmp/pat2 /tmp/r3'

# --- a stalled device (Documentation/blanket.md, "Recovery") -------------------------------------------------------
# fault_blk_stall keeps blanket_blk's new requests from the device, which never sees them, as with a hung device.
# A request that times out (io_timeout, here 2 s) makes the driver reset the device and retry the request:
# the write completes and its data is right. A device that keeps stalling is given up after three resets that
# helped nothing: its requests fail with an I/O error, the rest of the system runs on, and unbind + bind brings
# the disk back. An unbind while the device is stalled completes too (the stuck request fails at its timeout).
P=/sys/module/blanket/parameters/fault_blk_stall
S=/sys/block/bvd0/blanket
stalled_write() { # $1: seek in MiB; the status is written to /tmp/stall.rc
  rm -f /tmp/stall.rc
  (dd if=/tmp/pat3 of=/dev/bvd0 bs=64k seek=$(($1 * 16)) oflag=direct conv=fsync 2>/tmp/stall.err; echo $? > /tmp/stall.rc) &
}
dd if=/dev/urandom of=/tmp/pat3 bs=64k count=16 2>/dev/null
check stall-counters-zero test "$(cat $S/resets)" = "0 0"
check_fails reset-bad-input "invalid" sh -c "echo 2 > $S/reset"
check_fails reset-zero-refused "invalid" sh -c "echo 0 > $S/reset"
check stall-io-timeout sh -c 'echo 2000 > /sys/block/bvd0/queue/io_timeout && [ "$(cat /sys/block/bvd0/queue/io_timeout)" = 2000 ]'
echo 1 > $P
stalled_write 56
check stall-times-out wait_for 30 sh -c "set -- \$(cat $S/resets); [ \"\$2\" -ge 1 ]"
check stall-write-waits test ! -e /tmp/stall.rc
echo 0 > $P
check stall-write-completes wait_for 30 test -s /tmp/stall.rc
check stall-write-ok test "$(cat /tmp/stall.rc 2>/dev/null)" = 0
check stall-reset-counted sh -c "set -- \$(cat $S/resets); [ \"\$1\" -ge 1 ]"
check stall-data-right sh -c 'echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/bvd0 of=/tmp/r8 bs=64k skip=896 count=16 2>/dev/null && cmp /tmp/pat3 /tmp/r8'
check stall-logged sh -c 'dmesg | grep -q "bvd0: request at sector 114688 (65536 bytes) not answered in 2000 ms: resetting the device" && dmesg | grep -q "bvd0: device reset done"'
cat $S/resets
# The operator's reset under verified concurrent writes (rate-limited so that they are still running): requests
# held from the device for a second pile up, the reset takes them back and retries them, every block verifies.
R0=$(cut -d' ' -f1 $S/resets)
fio --name=r --filename=/dev/bvd0 --offset=32M --size=8M --offset_increment=8M --rw=randwrite --bs=4k --direct=1 \
    --ioengine=libaio --iodepth=8 --rate_iops=500 --numjobs=2 --verify=crc32c --verify_fatal=1 --do_verify=1 \
    --group_reporting --output=/tmp/fio-reset.out >/dev/null 2>&1 &
FIO=$!
sleep 1
echo 1 > $P; sleep 1; echo 0 > $P
check reset-under-load sh -c "echo 1 > $S/reset"
check reset-load-counted wait_for 10 sh -c "[ \"\$(cut -d' ' -f1 $S/resets)\" -gt $R0 ]"
check reset-load-retried sh -c 'dmesg | grep "bvd0: device reset:" | tail -1 | grep -q ", [1-9][0-9]* to be retried"'
check reset-load-running kill -0 $FIO
wait $FIO; FRC=$?
check reset-load-verified test "$FRC" = 0
grep -E "WRITE:|READ:" /tmp/fio-reset.out
dmesg | grep 'blanket_blk.*device reset' | tail -2
# A device that never answers again: given up, the write fails, nothing else does.
echo 1 > $P
stalled_write 58
check giveup-write-fails wait_for 60 test -s /tmp/stall.rc
echo 0 > $P
check giveup-write-error sh -c '[ "$(cat /tmp/stall.rc)" != 0 ] && grep -qi "error" /tmp/stall.err'
check giveup-logged sh -c 'dmesg | grep -q "bvd0: the device stalled again after 3 resets in a row: its requests now fail"'
check giveup-io-fails sh -c '! dd if=/dev/bvd0 of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null'
check_fails giveup-reset-refused "error" sh -c "echo 1 > $S/reset"
check giveup-unbind sh -c "echo $V > $B/unbind"
check giveup-rebind sh -c "echo $V > $B/bind && test -b /dev/bvd0"
check giveup-data-kept sh -c 'dd if=/dev/bvd0 of=/tmp/r9 bs=64k skip=896 count=16 2>/dev/null && cmp /tmp/pat3 /tmp/r9'
# Unbind while a request is stuck: removal waits for it, it fails at its timeout, the unbind completes.
echo 2000 > /sys/block/bvd0/queue/io_timeout
echo 1 > $P
stalled_write 60
sleep 1
check unbind-while-stalled timeout 30 sh -c "echo $V > $B/unbind"
echo 0 > $P
check unbind-stalled-write-fails wait_for 10 sh -c 'test -s /tmp/stall.rc && [ "$(cat /tmp/stall.rc)" != 0 ]'
check unbind-stalled-gone sh -c '! test -e /sys/block/bvd0'
check rebind-after-stall sh -c "echo $V > $B/bind && test -b /dev/bvd0"
check data-after-stall sh -c 'dd if=/dev/bvd0 of=/tmp/r10 bs=1M skip=16 count=8 2>/dev/null && cmp /tmp/pat2 /tmp/r10'

# --- unbind under load: the disk goes, the reader's I/O fails cleanly (no hang, no oops), and it binds again -----
fio --name=load --filename=/dev/bvd0 --rw=randread --bs=4k --direct=1 --ioengine=psync --numjobs=2 --time_based \
    --runtime=60 --output=/tmp/fio3.out >/dev/null 2>&1 &
FIO=$!
sleep 3
check unbind-under-load sh -c "echo $V > $B/unbind"
check load-stops sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do kill -0 $FIO 2>/dev/null || exit 0; sleep 1; done; exit 1"
kill $FIO 2>/dev/null; wait $FIO 2>/dev/null
check rebind-after-load sh -c "echo $V > $B/bind && test -b /dev/bvd0"
check data-after-load sh -c 'dd if=/dev/bvd0 of=/tmp/r5 bs=1M skip=16 count=8 2>/dev/null && cmp /tmp/pat2 /tmp/r5'

# --- rmmod: refused while the disk is open, clean when idle --------------------------------------------------------
exec 3</dev/bvd0
# (busybox rmmod asks with O_NONBLOCK: EWOULDBLOCK, "Resource temporarily unavailable"; kmod: "in use")
check_fails rmmod-while-open 'in use\|unavailable' rmmod blanket
exec 3<&-
check rmmod-idle rmmod blanket
check rmmod-unbound sh -c "! test -e /sys/bus/virtio/devices/$V/driver && ! test -e /sys/block/bvd0"

# --- back to virtio_blk: it reads what blanket_blk wrote ----------------------------------------------------------
check rebind-c-driver sh -c "echo $V > $C/bind"
CDEV=$(blkdev)
check c-reads-blanket-written sh -c "dd if=/dev/$CDEV of=/tmp/r4 bs=1M skip=16 count=8 2>/dev/null && cmp /tmp/pat2 /tmp/r4"
check c-reads-blanket-discarded sh -c "dd if=/dev/$CDEV of=/tmp/r7 bs=1M skip=24 count=8 2>/dev/null && cmp /tmp/want /tmp/r7"
# Loading again takes nothing from virtio_blk.
check reinsmod insmod $M/blanket.ko
check reinsmod-no-steal sh -c "[ \"\$(basename \"\$(readlink /sys/bus/virtio/devices/$V/driver)\")\" = virtio_blk ] && ! test -e /sys/block/bvd0"

# --- a read-only device: the disk is read-only, writes are refused, reads work -------------------------------------
if [ -n "$VRO" ]; then
  check ro-unbind-c-driver sh -c "echo $VRO > $C/unbind"
  check ro-bind-blanket sh -c "echo $VRO > $B/bind"
  RD=$(ls /sys/bus/virtio/devices/$VRO/block 2>/dev/null | head -1)
  check ro-disk-is-bvd sh -c "case '$RD' in bvd*) test -b /dev/$RD;; *) false;; esac"
  check ro-disk-flag test "$(cat /sys/block/$RD/ro 2>/dev/null)" = 1
  check ro-read dd if=/dev/$RD of=/dev/null bs=4k count=16
  check_fails ro-write-refused "" dd if=/dev/zero of=/dev/$RD bs=4k count=1 conv=fsync
  check ro-back-to-c sh -c "echo $VRO > $B/unbind && echo $VRO > $C/bind"
fi

# --- a legacy-only device is refused with a log line that says what to change; virtio_blk can take it back -------
if [ -n "$VL" ]; then
  check legacy-unbind-c-driver sh -c "echo $VL > $C/unbind"
  echo $VL > $B/bind 2>/dev/null
  check legacy-not-bound sh -c "! test -e /sys/bus/virtio/devices/$VL/driver"
  check legacy-refusal-logged sh -c 'dmesg | grep -q "not bound: device offers no VIRTIO_F_VERSION_1"'
  check legacy-back-to-c sh -c "echo $VL > $C/bind && test -e /sys/bus/virtio/devices/$VL/driver"
fi
check rermmod rmmod blanket
check_no_oops
exit $OVC_FAILS
