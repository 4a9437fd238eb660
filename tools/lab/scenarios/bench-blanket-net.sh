#!/bin/sh
# bench-blanket-net: the network half of issue 6's benchmark (run by scripts/bench-blanket on the pair topology,
# which also prints the table). Not a test: the checks only say that every measurement ran.
#
# Host 0 measures its NIC under the C virtio_net and under blanket_net, the same device rebound through sysfs
# between the two, paired and interleaved (C first in odd rounds, ours first in even rounds). Host 1 is the peer
# and keeps the C driver throughout (iperf3 servers). With overcast-lab --tap (a single vm or nested host) the peer
# is instead the run's network namespace at 10.0.2.2, the NIC a TAP with offloads and two queue pairs, and the
# topology is reported as tap-vm / tap-nested. Per round and driver:
#   tcp-send      iperf3 TCP host 0 -> host 1, BENCH_SECS s            -> Mbit/s (receiver side)
#   tcp-recv      iperf3 TCP host 1 -> host 0 (-R)                     -> Mbit/s (receiver side)
#   udp-send-1400 iperf3 UDP, 1400-byte datagrams, unlimited rate      -> Mbit/s received by host 1
#   udp-recv-1400 the same, host 1 -> host 0 (-R)                      -> Mbit/s received by host 0
#   rr            ICMP echo request/response, 50 back to back (-A)     -> mean round trip, µs
# and for the four streams, host 0's CPU time (window - idle - iowait - steal from /proc/stat, clock-measured under
# nohz) over the iperf3 run, divided by the bytes the interface moved in that window: CPU µs per MB.
# Output, one line per measurement:
#   OVERCAST-BENCH net topo=T driver=c|ours round=R test=X value=V unit=U win_cs=.. busy_cs=.. bytes=..
# Kernel command line knobs: overcast.bench_rounds=N (3), overcast.bench_secs=S (5).
. /overcast/tests/lib.sh
M=/overcast/modules
IP=/usr/sbin/ip
ROUNDS=3 SECS=5
for a in $(cat /proc/cmdline); do
  case $a in
    overcast.bench_rounds=*) ROUNDS=${a#*=} ;;
    overcast.bench_secs=*) SECS=${a#*=} ;;
  esac
done
me=${OVERCAST_HOST:-0}
ADDR=$OVERCAST_IP
PEER=10.99.0.$((2 - me))
TOPO="pair-${OVERCAST_XEN:-none}"
[ "$TOPO" = pair-none ] && TOPO=pair-vm
[ "$TOPO" = pair-dom0 ] && TOPO=pair-nested
C=/sys/bus/virtio/drivers/virtio_net
B=/sys/bus/virtio/drivers/blanket_net

if grep -q 'overcast.net=tap' /proc/cmdline; then
  # One host; the peer is the lab's namespace (iperf3 servers there), no barrier.
  PEER=10.0.2.2
  TOPO=tap-${OVERCAST_TOPOLOGY:-vm}
  barrier() { :; }
else
  barrier() { udp_barrier "$@"; }
  udp_barrier_listen
fi

if [ "$me" = 1 ]; then
  iperf3 -s -D --logfile /tmp/iperf3-server.log
  barrier up 900
  barrier done 7200
  check peer-done true
  check_no_oops
  exit $OVC_FAILS
fi

V=
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat "$d/device" 2>/dev/null)" = 0x0001 ] && { V=$(basename "$d"); break; }
done
check has-virtio-net-device test -n "$V"
check insmod-blanket insmod $M/blanket.ko
ifname() { ls /sys/bus/virtio/devices/$V/net 2>/dev/null | head -1; }
drv_of() { basename "$(readlink /sys/bus/virtio/devices/$V/driver 2>/dev/null)" 2>/dev/null; }
drv_path() { case $1 in c) echo $C;; ours) echo $B;; esac; }
drv_name() { case $1 in c) echo virtio_net;; ours) echo blanket_net;; esac; }
# give c|ours: rebind the NIC to that driver (if needed), address and link up, wait until the peer answers.
give() {
  local cur want n
  want=$(drv_name "$1"); cur=$(drv_of)
  if [ "$cur" != "$want" ]; then
    [ -n "$cur" ] && echo "$V" > "/sys/bus/virtio/drivers/$cur/unbind"
    echo "$V" > "$(drv_path "$1")/bind" || return 1
  fi
  n=$(ifname)
  [ -n "$n" ] || return 1
  $IP addr flush dev "$n"; $IP addr add "$ADDR" dev "$n"; $IP link set "$n" up
  i=0
  while [ $i -lt 60 ]; do ping -c 1 -W 1 $PEER >/dev/null 2>&1 && return 0; i=$((i + 1)); done
  return 1
}
barrier up 900
echo "bench-blanket-net: $TOPO, $ROUNDS rounds, $SECS s streams, $(grep -c ^processor /proc/cpuinfo) CPU(s)"

# /proc/stat first line: busy-relevant fields. Prints "idle iowait steal" (USER_HZ ticks) and uptime in 1/100 s.
cpu_now() {
  local up
  up=$(cut -d' ' -f1 /proc/uptime | tr -d .)
  awk -v up="$up" '/^cpu /{ print $5, $6, $9, up; exit }' /proc/stat
}
bytes_now() { local n; n=$(ifname); echo $(( $(cat /sys/class/net/$n/statistics/rx_bytes) + $(cat /sys/class/net/$n/statistics/tx_bytes) )); }

# stream DRIVER ROUND TEST IPERF-ARGS...: one iperf3 run; the receiver's Mbit/s and the CPU/bytes of its window.
stream() {
  local driver=$1 round=$2 test=$3; shift 3
  local c0 c1 b0 b1 v
  set -- $(cpu_now) "$@"; c0="$1 $2 $3 $4"; shift 4
  b0=$(bytes_now)
  iperf3 -c $PEER -t $SECS -f m "$@" >/tmp/ip.out 2>&1
  local rc=$?
  b1=$(bytes_now)
  set -- $(cpu_now); c1="$1 $2 $3 $4"
  v=$(awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { print v }' /tmp/ip.out)
  if [ $rc != 0 ] || [ -z "$v" ]; then
    echo "bench-blanket-net: $driver $test round $round failed:"; tail -3 /tmp/ip.out
    fail "measure-$driver-$test-$round" "iperf3 rc=$rc"
    return
  fi
  echo "$c0 $c1" | awk -v d=$driver -v r=$round -v t=$test -v v=$v -v b=$((b1 - b0)) -v topo=$TOPO '{
      win = $8 - $4; busy = win - ($5 - $1) - ($6 - $2) - ($7 - $3); if (busy < 0) busy = 0
      printf "OVERCAST-BENCH net topo=%s driver=%s round=%s test=%s value=%s unit=mbps win_cs=%d busy_cs=%d bytes=%d\n",
             topo, d, r, t, v, win, busy, b }'
}
rr() {
  local driver=$1 round=$2 v
  ping -A -c 50 -W 5 $PEER >/tmp/rr.out 2>&1
  v=$(awk -F'[/ =]+' '/round-trip/ { for (i = 1; i <= NF; i++) if ($i == "min") { print $(i + 4) * 1000; exit } }' /tmp/rr.out)
  [ -z "$v" ] && { fail "measure-$driver-rr-$round" "$(tail -2 /tmp/rr.out | tr '\n' ' ')"; return; }
  echo "OVERCAST-BENCH net topo=$TOPO driver=$driver round=$round test=rr value=$v unit=us"
}

r=1
while [ $r -le "$ROUNDS" ]; do
  echo "bench-blanket-net: round $r of $ROUNDS ($(date +%T))"
  if [ $((r % 2)) = 1 ]; then order="c ours"; else order="ours c"; fi
  for driver in $order; do
    if ! give $driver; then fail "give-$driver-$r" "the NIC did not come up under $(drv_name $driver)"; continue; fi
    stream $driver $r tcp-send
    stream $driver $r tcp-recv -R
    stream $driver $r udp-send-1400 -u -b 0 -l 1400
    stream $driver $r udp-recv-1400 -u -b 0 -l 1400 -R
    rr $driver $r
  done
  r=$((r + 1))
done
pass bench-net-measured
dmesg | grep 'blanket_net: virtio' | tail -2
check back-to-c give c
check rmmod-blanket rmmod blanket
barrier done 600
check_no_oops
exit $OVC_FAILS
