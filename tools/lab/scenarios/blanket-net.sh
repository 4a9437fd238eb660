#!/bin/sh
# blanket_net (blanket.ko) drives the provider's virtio-net NIC: the C virtio_net driver has it at boot (eth0) and
# keeps it when blanket.ko loads; the scenario hands it to blanket_net through sysfs (eth0 goes, bnet0 comes with
# the device's MAC), puts the lab address on bnet0 and talks across the provider NIC:
#   vm:     the QEMU user-net gateway 10.0.2.2 (ping; a UDP stream out for the transmit path);
#   pair:   host 0 switches to blanket_net, host 1 keeps the C driver: ping (full-size frames too), iperf3 TCP both
#           ways and UDP 1400 B, checked against bnet0's counters;
#   nested: as vm, in Xen's Dom0 (addresses through swiotlb-xen);
#   vm/nested with overcast-lab --tap: the NIC on a TAP, whose other end (10.0.2.2) runs iperf3 servers: the
#           offloads QEMU then offers must be on, and iperf3 TCP both ways and UDP run through them.
# Then: down/up; the provider's link going down and up (QEMU's set_link, asked of the lab runner with an
# OVERCAST-LINK line: the carrier follows through VIRTIO_NET_F_STATUS); device resets, by the operator
# (blanket/reset) and by the transmit watchdog on a device that stalls (fault_tx_stall withholds the driver's
# notifications); unbind/rebind idle, unbind and rmmod under traffic (each removal must log "0 outstanding": every
# buffer taken back and unmapped), and the device handed back to virtio_net, which must work again.
. /overcast/tests/lib.sh
M=/overcast/modules
IP=/usr/sbin/ip
C=/sys/bus/virtio/drivers/virtio_net
B=/sys/bus/virtio/drivers/blanket_net
me=${OVERCAST_HOST:-0}
topo=${OVERCAST_TOPOLOGY:-vm}
ADDR=${OVERCAST_IP:-10.0.2.15/24}
if [ "$topo" = pair ]; then PEER=10.99.0.$((2 - me)); else PEER=10.0.2.2; fi
# overcast-lab --tap: the NIC is on a TAP (QEMU then offers checksum/segmentation offloads, and several queue
# pairs with --tap N); 10.0.2.2 is the lab's namespace, with iperf3 servers on 5201-5203.
TAP=0; grep -q 'overcast.net=tap' /proc/cmdline && TAP=1

# --- pair: a barrier over the link (UDP 5998) that survives the address moving from eth0 to bnet0 --------------------
barrier() { [ "$topo" = pair ] || return 0; udp_barrier "$@"; }
if [ "$topo" = pair ]; then
  udp_barrier_listen
fi
until_ok() {
  local n=$1; shift
  while [ "$n" -gt 0 ]; do "$@" >/tmp/until.out 2>&1 && return 0; sleep 1; n=$((n - 1)); done
  cat /tmp/until.out; return 1
}

# --- pair, host 1: the peer with the C driver; serves iperf3 until host 0 is done ---------------------------------
if [ "$topo" = pair ] && [ "$me" = 1 ]; then
  # One server per test that may be cut off mid-stream (a server stays busy until its broken test times out).
  for p in 5201 5202 5203; do iperf3 -s -D -p $p --logfile /tmp/iperf3-server-$p.log; done
  barrier up 600
  # Host 0's receive filter (control queue): frames to a MAC address it does not have, sent while its interface
  # is not promiscuous and again while it is; then a ping to the all-hosts multicast group, which host 0 answers
  # only if its device's multicast table passes 01:00:5e:00:00:01.
  $IP neigh replace 10.99.0.77 lladdr 02:00:00:00:00:77 dev eth0 nud permanent
  barrier filter-ready 600
  tx=$(cat /sys/class/net/eth0/statistics/tx_packets)
  ping -c 5 -W 1 10.99.0.77 >/tmp/fp.out 2>&1; tail -2 /tmp/fp.out
  echo "frames sent to 02:00:00:00:00:77: $(( $(cat /sys/class/net/eth0/statistics/tx_packets) - tx )) (counting any others)"
  barrier foreign-sent-1 300
  barrier promisc-on 300
  ping -c 5 -W 1 10.99.0.77 >/tmp/fp.out 2>&1; tail -2 /tmp/fp.out
  barrier foreign-sent-2 300
  barrier multicast 300
  check multicast-answered-through-filter sh -c "ping -c 3 -W 3 -I eth0 224.0.0.1 2>&1 | tee /tmp/mc.out | grep -q 'from 10.99.0.1'"
  cat /tmp/mc.out
  barrier multicast-done 300
  barrier done 1500
  check peer-still-c-driver test -e /sys/class/net/eth0
  check_no_oops
  exit $OVC_FAILS
fi

# --- the device -----------------------------------------------------------------------------------------------------
V=
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat "$d/device" 2>/dev/null)" = 0x0001 ] && { V=$(basename "$d"); break; }
done
echo "virtio-net device: ${V:-none}"
check has-virtio-net-device test -n "$V"
ifname() { ls /sys/bus/virtio/devices/$V/net 2>/dev/null | head -1; }
drv() { basename "$(readlink /sys/bus/virtio/devices/$V/driver 2>/dev/null)" 2>/dev/null; }
CIF=$(ifname)
MAC=$(cat /sys/class/net/$CIF/address 2>/dev/null)
# The queue pairs the C driver uses (min(device's pairs, CPUs)): blanket_net must use as many.
CQ=$(ls -d /sys/class/net/$CIF/queues/tx-* 2>/dev/null | wc -l)
echo "C driver's interface: $CIF, MAC $MAC, $CQ queue pairs"
CDROPS="rx_dropped $(cat /sys/class/net/$CIF/statistics/rx_dropped 2>/dev/null) after boot"
stat_of() { cat /sys/class/net/$1/statistics/$2 2>/dev/null || echo 0; }
# up IFACE: the lab address on IFACE, link up.
up() { $IP addr flush dev "$1" && $IP addr add "$ADDR" dev "$1" && $IP link set "$1" up; }

check insmod-blanket insmod $M/blanket.ko
check driver-registered test -d $B
check c-driver-keeps-device test "$(drv)" = virtio_net
check ping-through-c-driver until_ok 60 ping -c 1 -W 2 $PEER

# --- hand the NIC to blanket_net --------------------------------------------------------------------------------------
check unbind-c-driver sh -c "echo $V > $C/unbind"
check c-interface-gone sh -c "! test -e /sys/class/net/$CIF"
check bind-blanket sh -c "echo $V > $B/bind"
check bound-to-blanket test "$(drv)" = blanket_net
N=$(ifname)
echo "blanket interface: $N"
dmesg | grep 'blanket_net' | tail -2
check interface-name-bnet0 test "$N" = bnet0
if ! test -e /sys/class/net/bnet0; then check_no_oops; barrier up 600; barrier done 1500; exit $OVC_FAILS; fi
check mac-from-config-space test "$(cat /sys/class/net/bnet0/address)" = "$MAC"
# The drivers' own /sys directory: backend, provider device, negotiated features, queues, rings, header errors.
S=/sys/class/net/bnet0/blanket
head -n 20 $S/* 2>/dev/null
check sysfs-blanket sh -c "grep -qx virtio-net $S/backend && grep -qx $V $S/provider && grep -qx $CQ $S/queues && grep -qx '0 0' $S/header_errors && [ \$(( \$(cat $S/features) >> 32 & 1 )) = 1 ] && grep -Eq '^[1-9][0-9]* [1-9][0-9]*$' $S/ring"
check interface-is-virtio-child test "$(basename "$(readlink /sys/class/net/bnet0/device)")" = "$V"
check bnet0-up up bnet0
carrier_is() { test "$(cat /sys/class/net/bnet0/carrier 2>/dev/null)" = "$1"; }
check carrier-up until_ok 10 carrier_is 1
ethtool -k bnet0 2>/dev/null | grep -E '^(tx-checksumming|rx-checksumming|scatter-gather|tcp-segmentation-offload):'
barrier up 600
check ping-peer until_ok 60 ping -c 1 -W 2 $PEER
check ping-10 ping -c 10 -W 5 $PEER
# Full 1500-byte IP packets (1472 B of ICMP payload) in both directions.
check ping-full-mtu ping -c 5 -W 5 -s 1472 $PEER
check stats-rx-tx sh -c "[ $(stat_of bnet0 rx_packets) -gt 10 ] && [ $(stat_of bnet0 tx_packets) -gt 10 ]"
$IP -s link show bnet0

if [ $TAP = 1 ]; then
  # A TAP back end takes virtio-net headers, so QEMU offers CSUM, GUEST_CSUM and HOST_TSO4/6: all must be on.
  ethtool -k bnet0 > /tmp/offloads.txt 2>&1
  for o in tx-checksumming rx-checksumming scatter-gather tcp-segmentation-offload; do
    check offload-$o grep -q "^$o: on" /tmp/offloads.txt
  done
fi
if [ "$topo" = pair ] || [ $TAP = 1 ]; then
  rx0=$(stat_of bnet0 rx_bytes) tx0=$(stat_of bnet0 tx_bytes)
  check iperf3-tcp-send iperf3 -c $PEER -t 5 --logfile /tmp/i1.log
  tail -4 /tmp/i1.log
  rb=$(stat_of bnet0 rx_bytes) rp=$(stat_of bnet0 rx_packets)
  check iperf3-tcp-receive iperf3 -c $PEER -t 5 -R --logfile /tmp/i2.log
  tail -4 /tmp/i2.log
  if [ $TAP = 1 ]; then
    # Receive segmentation offload (GUEST_TSO4 in mergeable buffers): the TAP hands over packets of many segments,
    # so the receive stream averages well above one 1514-byte frame per packet.
    avg=$(( ($(stat_of bnet0 rx_bytes) - rb) / ($(stat_of bnet0 rx_packets) - rp + 1) ))
    echo "TCP receive: $avg bytes per received packet"
    check rx-tso-large-packets test "$avg" -gt 3000
    check rx-mergeable-negotiated sh -c "dmesg | grep 'bnet0: MAC' | tail -1 | grep -q 'mergeable rx true, rx tso4 true, tso6 true'"
  fi
  check iperf3-udp-1400 iperf3 -c $PEER -t 5 -u -b 20M -l 1400 --logfile /tmp/i3.log
  tail -4 /tmp/i3.log
  # The counters saw the traffic: more than 4 MB each way (TCG moves tens of MB in 5 s).
  check stats-count-iperf3 sh -c "[ \$(( $(stat_of bnet0 rx_bytes) - $rx0 )) -gt 4000000 ] && [ \$(( $(stat_of bnet0 tx_bytes) - $tx0 )) -gt 4000000 ]"
  check no-header-errors grep -qx '0 0' $S/header_errors
fi
if [ $TAP = 1 ] && [ "$(cat $S/queues)" -gt 1 ]; then
  # Several queue pairs (VIRTIO_NET_F_MQ): CPU c transmits on pair c mod N (XPS) and the TAP answers a flow on the
  # queue it came from, so a stream from each CPU must move frames both ways on its own pair.
  # pair_streams NAME: a 3 s iperf3 stream pinned to each CPU; blanket/queue_packets before and after in /tmp/NAME.0
  # and /tmp/NAME.1 (a line per pair: received, transmitted). every_pair_moved NAME: each pair moved 1000 frames or
  # more each way.
  pair_streams() {
    cat $S/queue_packets > /tmp/$1.0
    check $1-stream-cpu0 iperf3 -c $PEER -p 5201 -t 3 -A 0 --logfile /tmp/$1-cpu0.log
    check $1-stream-cpu1 iperf3 -c $PEER -p 5202 -t 3 -A 1 --logfile /tmp/$1-cpu1.log
    cat $S/queue_packets > /tmp/$1.1
    echo "$1: packets per queue pair (rx tx), before:"; cat /tmp/$1.0; echo "after:"; cat /tmp/$1.1
  }
  every_pair_moved() { paste /tmp/$1.0 /tmp/$1.1 | awk '{ if ($3 - $1 < 1000 || $4 - $2 < 1000) bad = 1 } END { exit bad }'; }
  pair_streams mq
  check mq-every-pair-used every_pair_moved mq
  check mq-stack-queues test "$(ls -d /sys/class/net/bnet0/queues/tx-* | wc -l)" = "$(cat $S/queues)"
  # ethtool -L: the operator changes the pairs in use. Bad requests change nothing; with one pair, streams from
  # both CPUs use pair 0 only (the device sends nothing on pair 1); with every pair again, both carry frames.
  NQ=$(cat $S/queues)
  ethtool -l bnet0
  check ethtool-l-max sh -c "ethtool -l bnet0 | grep -A4 'maximums' | grep -q 'Combined:[[:space:]]*$NQ'"
  check ethtool-i sh -c "ethtool -i bnet0 | grep -qx 'driver: blanket_net' && ethtool -i bnet0 | grep -qx 'bus-info: $V'"
  check_fails ethtool-L-too-many "" ethtool -L bnet0 combined $((NQ + 1))
  check_fails ethtool-L-zero "" ethtool -L bnet0 combined 0
  check_fails ethtool-L-rx-only "" ethtool -L bnet0 rx 1
  check ethtool-L-bad-changed-nothing sh -c "[ \"\$(cat $S/queues)\" = $NQ ] && [ \"\$(ls -d /sys/class/net/bnet0/queues/tx-* | wc -l)\" = $NQ ]"
  check ethtool-L-one ethtool -L bnet0 combined 1
  check ethtool-L-one-applied sh -c "[ \"\$(cat $S/queues)\" = 1 ] && [ \"\$(ls -d /sys/class/net/bnet0/queues/tx-* | wc -l)\" = 1 ] && ethtool -l bnet0 | grep -A4 'Current' | grep -q 'Combined:[[:space:]]*1'"
  pair_streams ethtool-L-one
  check ethtool-L-one-pair0-only sh -c "paste /tmp/ethtool-L-one.0 /tmp/ethtool-L-one.1 | awk 'NR == 1 { if (\$3 - \$1 < 1000 || \$4 - \$2 < 1000) bad = 1 } NR > 1 { if (\$3 != \$1 || \$4 - \$2 > 10) bad = 1 } END { exit bad }'"
  check ethtool-L-back ethtool -L bnet0 combined $NQ
  pair_streams ethtool-L-back
  check ethtool-L-back-every-pair every_pair_moved ethtool-L-back
  dmesg | grep 'ethtool -L' | tail -5
fi
if [ "$topo" = pair ]; then

  # --- the receive filter (VIRTIO_NET_F_CTRL_RX): the provider's device drops what the interface does not want --------
  # tcpdump -p does not make the interface promiscuous; it sees whatever the device delivered.
  # capture NAME B1 B2: listen while host 1 sends between barriers B1 and B2; tcpdump's own count on its exit
  # ("N packets captured") goes to /tmp/NAME.count.
  capture() {
    tcpdump -Z root -p -n -i bnet0 -w /tmp/$1.pcap ether dst 02:00:00:00:00:77 2>/tmp/$1.err &
    local dump=$!
    sleep 2
    barrier $2 600
    barrier $3 300
    sleep 1; kill $dump; wait $dump 2>/dev/null
    sed -n 's/^\([0-9][0-9]*\) packets\{0,1\} captured$/\1/p' /tmp/$1.err > /tmp/$1.count
  }
  capture f1 filter-ready foreign-sent-1
  check filter-drops-foreign-unicast test "$(cat /tmp/f1.count)" = 0
  check promisc-on $IP link set bnet0 promisc on
  capture f2 promisc-on foreign-sent-2
  echo "frames to 02:00:00:00:00:77: $(cat /tmp/f1.count) not promiscuous, $(cat /tmp/f2.count) promiscuous"
  check promisc-passes-foreign-unicast test "$(cat /tmp/f2.count)" -ge 3
  check promisc-off $IP link set bnet0 promisc off
  echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts
  sleep 2
  barrier multicast 300
  barrier multicast-done 300
  check control-no-errors grep -qx 0 $S/control_errors
fi

if [ "$topo" != pair ]; then
  # No host to stream to behind restricted user-net: a burst of full-size echo requests, and a UDP stream out
  # (dropped by QEMU beyond the NIC) that fills the transmit ring.
  check ping-burst sh -c "ping -A -c 50 -W 5 -s 1400 $PEER | tee /tmp/pb.out | tail -2; grep -Eq ' (4[5-9]|50) packets received' /tmp/pb.out"
  tx0=$(stat_of bnet0 tx_packets)
  timeout 5 socat -u /dev/zero UDP-SENDTO:$PEER:9,sndbuf=1048576 2>/dev/null
  check udp-stream-out sh -c "[ \$(( $(stat_of bnet0 tx_packets) - $tx0 )) -gt 1000 ]"
  check ping-after-stream ping -c 3 -W 5 $PEER
fi

# --- the interface's MAC address, given to the device (VIRTIO_NET_F_CTRL_MAC_ADDR) -------------------------------------
# With the filter on, frames to the new address reach bnet0 only if the device was told it.
check ctrl-mac-negotiated sh -c "[ \$(( \$(cat $S/features) >> 23 & 1 )) = 1 ]"
check mac-change $IP link set bnet0 address 52:54:00:99:0a:0$((me + 1))
check ping-with-new-mac until_ok 30 ping -c 1 -W 2 $PEER
check mac-restore $IP link set bnet0 address "$MAC"
check ping-with-mac-restored until_ok 30 ping -c 1 -W 2 $PEER

# rx_dropped also counts frames the stack had no handler for (the C driver's eth0 shows those too, printed at the
# start); the driver's own drops are the header errors in its removal line, checked at each unbind below.
echo "bnet0 rx_dropped $(stat_of bnet0 rx_dropped) tx_dropped $(stat_of bnet0 tx_dropped) (eth0 under virtio_net before: $CDROPS)"

# --- down/up (NAPI off and on, ring kept) -----------------------------------------------------------------------------
check link-down $IP link set bnet0 down
check link-up-again $IP link set bnet0 up
check ping-after-down-up until_ok 30 ping -c 1 -W 2 $PEER

# --- the provider's link state (VIRTIO_NET_F_STATUS): the runner sets QEMU's link of NIC n0 ----------------------------
check status-negotiated sh -c "[ \$(( \$(cat $S/features) >> 16 & 1 )) = 1 ]"
echo "OVERCAST-LINK n0 off"
check carrier-follows-link-down until_ok 20 carrier_is 0
check link-down-logged sh -c "dmesg | grep -q 'bnet0: link down (the provider'"
$IP link show bnet0 | head -1
check no-ping-while-link-down sh -c "! ping -c 1 -W 2 $PEER"
echo "OVERCAST-LINK n0 on"
check carrier-follows-link-up until_ok 20 carrier_is 1
check ping-after-link-up until_ok 30 ping -c 1 -W 2 $PEER

# --- device reset: the operator's, then the transmit watchdog's on a device that stalls -------------------------------
# blanket/resets: "RESETS TX_TIMEOUTS". Each reset logs what it took back; nothing may be left unaccounted.
resets() { cut -d' ' -f"$1" $S/resets; }
at_least() { [ "$(resets "$1")" -ge "$2" ]; }
r0=$(resets 1) t0=$(resets 2)
check reset-refuses-0 sh -c "! echo 0 > $S/reset"
check reset-refuses-garbage sh -c "! echo bogus > $S/reset"
check reset-garbage-no-reset test "$(resets 1)" = "$r0"
check reset-by-operator sh -c "echo 1 > $S/reset"
check reset-counted until_ok 20 at_least 1 $((r0 + 1))
check reset-took-all-back sh -c "dmesg | grep 'bnet0: device reset:' | tail -1 | grep -q ' 0 unaccounted'"
check carrier-after-reset until_ok 10 carrier_is 1
check ping-after-reset until_ok 30 ping -c 1 -W 2 $PEER
F=/sys/module/blanket/parameters/fault_tx_stall
echo 4194304 > /proc/sys/net/core/wmem_max
check stall-injected sh -c "echo 1 > $F"
r1=$(resets 1)
# Enough frames to fill the transmit ring: the queue stops, and the watchdog fires after 5 s.
socat -u /dev/zero UDP-SENDTO:$PEER:9,sndbuf=4194304 2>/dev/null &
LOAD=$!
check watchdog-fires until_ok 40 at_least 2 $((t0 + 1))
echo 0 > $F
kill $LOAD 2>/dev/null; wait $LOAD 2>/dev/null
check watchdog-logged sh -c "dmesg | grep -q 'bnet0: transmit queue [0-9]* stalled for'"
check watchdog-reset until_ok 20 at_least 1 $((r1 + 1))
check ping-after-stall until_ok 40 ping -c 1 -W 2 $PEER
check stall-reset-took-all-back sh -c "dmesg | grep 'bnet0: device reset:' | tail -1 | grep -q ' 0 unaccounted'"
cat $S/resets

# --- unbind / rebind while idle ---------------------------------------------------------------------------------------
removed_clean() { dmesg | grep "blanket_net: $V: bnet0 removed" | tail -1 | grep -q '0 outstanding; header errors rx 0 tx 0'; }
check unbind-blanket sh -c "echo $V > $B/unbind"
check bnet0-gone sh -c '! test -e /sys/class/net/bnet0'
check unbind-took-all-buffers removed_clean
dmesg | grep "bnet0 removed" | tail -1
check rebind-blanket sh -c "echo $V > $B/bind"
check rebind-same-name test "$(ifname)" = bnet0
check rebind-up up bnet0
check ping-after-rebind until_ok 60 ping -c 1 -W 2 $PEER

# --- unbind under traffic: the unbind returns, the traffic stops, no buffer is left ------------------------------------
dmesg -C
if [ "$topo" = pair ] || [ $TAP = 1 ]; then
  iperf3 -c $PEER -p 5202 -t 60 --logfile /tmp/i4.log >/dev/null 2>&1 &
  LOAD=$! LOAD2=
else
  ping -A -s 1400 $PEER >/dev/null 2>&1 &
  LOAD=$!
  socat -u /dev/zero UDP-SENDTO:$PEER:9 2>/dev/null &
  LOAD2=$!
fi
sleep 3
check unbind-under-traffic timeout 30 sh -c "echo $V > $B/unbind"
check unbind-under-traffic-clean removed_clean
dmesg | grep "bnet0 removed" | tail -1
kill $LOAD $LOAD2 2>/dev/null; wait $LOAD $LOAD2 2>/dev/null

# --- rmmod under traffic ----------------------------------------------------------------------------------------------
check rebind-2 sh -c "echo $V > $B/bind && test -e /sys/class/net/bnet0"
check rebind-2-up up bnet0
check ping-before-rmmod until_ok 60 ping -c 1 -W 2 $PEER
dmesg -C
if [ "$topo" = pair ] || [ $TAP = 1 ]; then
  iperf3 -c $PEER -p 5203 -t 60 -R --logfile /tmp/i5.log >/dev/null 2>&1 &
else
  ping -A -s 1400 $PEER >/dev/null 2>&1 &
fi
LOAD=$!
sleep 3
check rmmod-under-traffic timeout 60 rmmod blanket
check rmmod-clean removed_clean
check rmmod-unbound sh -c "! test -e /sys/bus/virtio/devices/$V/driver && ! test -e /sys/class/net/bnet0"
kill $LOAD 2>/dev/null; wait $LOAD 2>/dev/null

# --- back to virtio_net: the device works after our reset ------------------------------------------------------------
check rebind-c-driver sh -c "echo $V > $C/bind"
CIF=$(ifname)
check c-interface-back sh -c "test -n '$CIF' && test -e /sys/class/net/$CIF"
check c-interface-up up "$CIF"
check ping-through-c-again until_ok 60 ping -c 1 -W 2 $PEER
check reinsmod insmod $M/blanket.ko
check reinsmod-no-steal test "$(drv)" = virtio_net
check rermmod rmmod blanket
barrier done 1500
check_no_oops
exit $OVC_FAILS
