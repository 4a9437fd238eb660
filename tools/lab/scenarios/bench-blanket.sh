#!/bin/sh
# bench-blanket: our Blanket drivers against the kernel's C virtio drivers on the same devices, in the same boot
# (issue 6's benchmark; run by scripts/bench-blanket, which also prints the table). Not a test: the checks only say
# that every measurement ran; the numbers are judged by the table.
#
# Disk half. The run attaches two virtio-blk disks, told apart by their serial (read through the C driver, which has
# both at boot): "ssd" (QEMU-throttled to a datacenter-SSD model) and "raw" (the same kind of image, no throttle).
# For each round, each medium, each figure, each driver (C virtio_blk and blanket_blk back to back; which goes
# first alternates between rounds): the device is handed to that driver through sysfs and fio measures, direct
# I/O on the whole disk:
#   randread-qd32  4 KiB random reads, libaio, iodepth 32      -> IOPS
#   randread-qd1   4 KiB random reads, libaio, iodepth 1       -> request latency (completion latency, mean)
#   seqread        1 MiB sequential reads, libaio, iodepth 8   -> MB/s
# and a window of BENCH_SECS inside each fio run (after its ramp) samples /proc/stat, /proc/uptime and the disk's
# own /sys/block/<disk>/stat: Dom0's (or the VM's) CPU time per byte moved, over the same interval for both. Under
# TCG on a loaded host the vCPU is often descheduled and the tick-based busy counters lose ticks (busy + idle falls
# short of the window); idle and iowait are measured by clock (nohz), so the table counts CPU time as
# window - idle - iowait - steal.
# Output, one line per measurement (scripts/bench-blanket parses these):
#   OVERCAST-BENCH blk topo=T medium=M driver=c|ours disk=D round=R test=X fio_err=E fio_iops=.. fio_kibps=..
#       fio_clat_us=.. fio_usr=.. fio_sys=.. win_cs=.. win_ios=.. win_sectors=.. cpu_busy=.. cpu_idle=.. cpu_iowait=..
#       cpu_steal=..          (cpu_* in USER_HZ ticks = 1/100 s, over the window; win_cs: the window in 1/100 s)
# Net half: measured on the pair topology by bench-blanket-net.sh (a peer is needed; user-net has none).
#
# Kernel command line knobs: overcast.bench_rounds=N (3; scripts/bench-blanket passes 5), overcast.bench_secs=S (5).
. /overcast/tests/lib.sh
M=/overcast/modules
ROUNDS=3 SECS=5 RAMP=2
for a in $(cat /proc/cmdline); do
  case $a in
    overcast.bench_rounds=*) ROUNDS=${a#*=} ;;
    overcast.bench_secs=*) SECS=${a#*=} ;;
  esac
done
TOPO=${OVERCAST_TOPOLOGY:-unknown}
echo "bench-blanket: topology $TOPO, $ROUNDS rounds, ${SECS} s windows, ramp ${RAMP} s, $(grep -c ^processor /proc/cpuinfo) CPU(s), xen=${OVERCAST_XEN:-none}"

drv_path() { case $1 in c) echo /sys/bus/virtio/drivers/virtio_blk;; ours) echo /sys/bus/virtio/drivers/blanket_blk;; esac; }
drv_of() { basename "$(readlink "/sys/bus/virtio/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
disk_of() { ls "/sys/bus/virtio/devices/$1/block" 2>/dev/null | head -1; }

# The two media, by serial (only the C driver shows it).
SSD= RAW=
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat "$d/device" 2>/dev/null)" = 0x0002 ] || continue
  b=$(ls "$d/block" 2>/dev/null | head -1)
  case "$(cat "/sys/block/$b/serial" 2>/dev/null)" in
    ssd) SSD=$(basename "$d") ;;
    raw) RAW=$(basename "$d") ;;
  esac
done
echo "media: ssd=${SSD:-missing} raw=${RAW:-missing}"
check has-ssd-medium test -n "$SSD"
check has-raw-medium test -n "$RAW"
check insmod-blanket insmod $M/blanket.ko
check fio-libaio sh -c 'fio --enghelp 2>&1 | grep -q libaio'

# give DEV c|ours: hand DEV to that driver, wait for its disk node. Prints the disk name.
give() {
  local dev=$1 want cur i=0 disk
  want=$(basename "$(drv_path "$2")")
  cur=$(drv_of "$dev")
  if [ "$cur" != "$want" ]; then
    [ -n "$cur" ] && echo "$dev" > "/sys/bus/virtio/drivers/$cur/unbind"
    echo "$dev" > "$(drv_path "$2")/bind" || return 1
  fi
  while [ $i -lt 100 ]; do
    disk=$(disk_of "$dev")
    if [ -n "$disk" ] && [ -b "/dev/$disk" ]; then echo "$disk"; return 0; fi
    usleep 100000; i=$((i + 1))
  done
  return 1
}

# The first 8 numbers of /proc/stat's "cpu" line after the label: user nice system idle iowait irq softirq steal.
cpu_now() { head -1 /proc/stat | { read -r _ u n s id io irq sirq st _; echo "$u $n $s $id $io $irq $sirq ${st:-0}"; }; }
# reads-completed and sectors-read of a disk.
dstat_now() { set -- $(cat "/sys/block/$1/stat"); echo "$1 $3"; }
uptime_cs() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}" | sed 's/^0*//'; }

# measure MEDIUM DRIVER DISK ROUND TEST RW BS QD
measure() {
  local medium=$1 driver=$2 disk=$3 round=$4 test=$5 rw=$6 bs=$7 qd=$8 pid i=0 s0 s1 c0 c1 t0 t1 out rc
  rm -f /tmp/bench.fio /tmp/bench.err
  fio --name="$test" --filename="/dev/$disk" --rw="$rw" --bs="$bs" --iodepth="$qd" --ioengine=libaio --direct=1 \
      --time_based --ramp_time="$RAMP" --runtime=$((SECS + 1)) --norandommap --randrepeat=0 \
      --output-format=terse --terse-version=3 --output=/tmp/bench.fio >/tmp/bench.err 2>&1 &
  pid=$!
  # Wait for the first I/O (fio's start-up is slow under TCG), then for fio's ramp, then sample.
  s0=$(dstat_now "$disk")
  while [ "$(dstat_now "$disk")" = "$s0" ] && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do usleep 100000; i=$((i + 1)); done
  sleep "$RAMP"
  t0=$(uptime_cs); c0=$(cpu_now); s0=$(dstat_now "$disk")
  sleep "$SECS"
  t1=$(uptime_cs); c1=$(cpu_now); s1=$(dstat_now "$disk")
  wait $pid; rc=$?
  out=$(cat /tmp/bench.fio 2>/dev/null | grep '^3;' | tail -1)
  if [ $rc != 0 ] || [ -z "$out" ]; then
    fail "bench-$medium-$driver-$test-r$round" "fio rc=$rc: $(tail -c 300 /tmp/bench.err | tr '\n' ' ')"
    return
  fi
  echo "$out" | awk -F';' -v pre="OVERCAST-BENCH blk topo=$TOPO medium=$medium driver=$driver disk=$disk round=$round test=$test" \
      -v win="$((t1 - t0))" -v s0="$s0" -v s1="$s1" -v c0="$c0" -v c1="$c1" '
    BEGIN { split(s0, a, " "); split(s1, b, " "); split(c0, x, " "); split(c1, y, " ");
            for (k = 1; k <= 8; k++) d[k] = y[k] - x[k] }
    { sub("%", "", $88); sub("%", "", $89);
      printf "%s fio_err=%s fio_iops=%s fio_kibps=%s fio_clat_us=%s fio_usr=%s fio_sys=%s win_cs=%d win_ios=%d win_sectors=%d cpu_busy=%d cpu_idle=%d cpu_iowait=%d cpu_steal=%d\n",
        pre, $5, $8, $7, $16, $88, $89, win, b[1] - a[1], b[2] - a[2], d[1] + d[2] + d[3] + d[6] + d[7], d[4], d[5], d[8] }'
  if [ "$(echo "$out" | cut -d';' -f5)" != 0 ]; then fail "bench-$medium-$driver-$test-r$round" "fio error $(echo "$out" | cut -d';' -f5)"; fi
}

# One measurement of one driver on one medium: bind (if needed), show its queue settings once, measure.
SHOWN=
run_one() {
  local medium=$1 driver=$2 round=$3 test=$4 dev disk q
  dev=$SSD; [ "$medium" = raw ] && dev=$RAW
  if ! disk=$(give "$dev" "$driver"); then fail "bench-bind-$medium-$driver-r$round" "no disk after binding $dev to $driver"; return; fi
  case " $SHOWN " in *" $medium-$driver "*) ;; *)
    SHOWN="$SHOWN $medium-$driver"
    q=/sys/block/$disk/queue
    echo "OVERCAST-BENCH-INFO topo=$TOPO medium=$medium driver=$driver dev=$dev disk=$disk size_sectors=$(cat /sys/block/$disk/size)" \
         "scheduler=$(sed 's/.*\[\(.*\)\].*/\1/' $q/scheduler) nr_requests=$(cat $q/nr_requests)" \
         "max_sectors_kb=$(cat $q/max_sectors_kb) max_hw_sectors_kb=$(cat $q/max_hw_sectors_kb)" \
         "max_segments=$(cat $q/max_segments) max_segment_size=$(cat $q/max_segment_size)" \
         "nr_hw_queues=$(ls -d /sys/block/$disk/mq/* 2>/dev/null | wc -l) rotational=$(cat $q/rotational)"
  esac
  case $test in
    randread-qd32) measure "$medium" "$driver" "$disk" "$round" "$test" randread 4k 32 ;;
    randread-qd1) measure "$medium" "$driver" "$disk" "$round" "$test" randread 4k 1 ;;
    seqread) measure "$medium" "$driver" "$disk" "$round" "$test" read 1m 8 ;;
  esac
}

# Warm-up, not measured: the first fio of a boot pays for loading fio and its libraries (seen: 40 % fewer IOPS).
for dev in $SSD $RAW; do
  fio --name=warmup --filename="/dev/$(disk_of "$dev")" --rw=randread --bs=4k --iodepth=8 --ioengine=libaio --direct=1 \
      --time_based --runtime=2 >/dev/null 2>&1
done

# Paired and interleaved: each figure is measured for both drivers back to back (the device is rebound between
# them), C first in odd rounds and ours first in even rounds, so that the host's load (which moves a lot on this
# shared machine) hits both drivers of a pair alike.
r=1
while [ $r -le "$ROUNDS" ]; do
  echo "bench-blanket: round $r of $ROUNDS ($(date +%T))"
  if [ $((r % 2)) = 1 ]; then order="c ours"; else order="ours c"; fi
  for medium in ssd raw; do
    for test in randread-qd32 randread-qd1 seqread; do
      for driver in $order; do run_one "$medium" "$driver" "$r" "$test"; done
    done
  done
  r=$((r + 1))
done
pass bench-disk-measured

# Net half: bench-blanket-net.sh on the pair topology (scripts/bench-blanket runs it after this).

# Leave the disks with the C driver and the module unloaded, and nothing broken on the way.
for dev in $SSD $RAW; do
  check "back-to-c-$dev" sh -c "[ \"\$(basename \"\$(readlink /sys/bus/virtio/devices/$dev/driver)\")\" = virtio_blk ] || { echo $dev > /sys/bus/virtio/drivers/blanket_blk/unbind; echo $dev > /sys/bus/virtio/drivers/virtio_blk/bind; }"
done
check rmmod-blanket rmmod blanket
check_no_oops
exit $OVC_FAILS
