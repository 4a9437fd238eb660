#!/bin/sh
# blanket_net (blanket.ko) drives the provider's virtio-net NIC: the C virtio_net driver has it at boot (eth0) and
# keeps it when blanket.ko loads; the scenario hands it to blanket_net through sysfs (eth0 goes, bnet0 comes with
# the device's MAC), puts the lab address on bnet0 and talks across the provider NIC:
#   vm:     the QEMU user-net gateway 10.0.2.2 (ping; a UDP stream out for the transmit path);
#   pair:   host 0 switches to blanket_net, host 1 keeps the C driver: ping (full-size frames too), iperf3 TCP both
#           ways and UDP 1400 B, checked against bnet0's counters;
#   nested: as vm, in Xen's Dom0 (addresses through swiotlb-xen).
# Then: down/up, unbind/rebind idle, unbind and rmmod under traffic (each removal must log "0 outstanding": every
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
echo "C driver's interface: $CIF, MAC $MAC"
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
check sysfs-blanket sh -c "grep -qx virtio-net $S/backend && grep -qx $V $S/provider && grep -qx 1 $S/queues && grep -qx '0 0' $S/header_errors && [ \$(( \$(cat $S/features) >> 32 & 1 )) = 1 ] && grep -Eq '^[1-9][0-9]* [1-9][0-9]*$' $S/ring"
check interface-is-virtio-child test "$(basename "$(readlink /sys/class/net/bnet0/device)")" = "$V"
check bnet0-up up bnet0
check carrier-up until_ok 10 test "$(cat /sys/class/net/bnet0/carrier)" = 1
ethtool -k bnet0 2>/dev/null | grep -E '^(tx-checksumming|rx-checksumming|scatter-gather|tcp-segmentation-offload):'
barrier up 600
check ping-peer until_ok 60 ping -c 1 -W 2 $PEER
check ping-10 ping -c 10 -W 5 $PEER
# Full 1500-byte IP packets (1472 B of ICMP payload) in both directions.
check ping-full-mtu ping -c 5 -W 5 -s 1472 $PEER
check stats-rx-tx sh -c "[ $(stat_of bnet0 rx_packets) -gt 10 ] && [ $(stat_of bnet0 tx_packets) -gt 10 ]"
$IP -s link show bnet0

if [ "$topo" = pair ]; then
  rx0=$(stat_of bnet0 rx_bytes) tx0=$(stat_of bnet0 tx_bytes)
  check iperf3-tcp-send iperf3 -c $PEER -t 5 --logfile /tmp/i1.log
  tail -4 /tmp/i1.log
  check iperf3-tcp-receive iperf3 -c $PEER -t 5 -R --logfile /tmp/i2.log
  tail -4 /tmp/i2.log
  check iperf3-udp-1400 iperf3 -c $PEER -t 5 -u -b 20M -l 1400 --logfile /tmp/i3.log
  tail -4 /tmp/i3.log
  # The counters saw the traffic: more than 4 MB each way (TCG moves tens of MB in 5 s).
  check stats-count-iperf3 sh -c "[ \$(( $(stat_of bnet0 rx_bytes) - $rx0 )) -gt 4000000 ] && [ \$(( $(stat_of bnet0 tx_bytes) - $tx0 )) -gt 4000000 ]"
else
  # No host to stream to behind restricted user-net: a burst of full-size echo requests, and a UDP stream out
  # (dropped by QEMU beyond the NIC) that fills the transmit ring.
  check ping-burst sh -c "ping -A -c 50 -W 5 -s 1400 $PEER | tee /tmp/pb.out | tail -2; grep -Eq ' (4[5-9]|50) packets received' /tmp/pb.out"
  tx0=$(stat_of bnet0 tx_packets)
  timeout 5 socat -u /dev/zero UDP-SENDTO:$PEER:9,sndbuf=1048576 2>/dev/null
  check udp-stream-out sh -c "[ \$(( $(stat_of bnet0 tx_packets) - $tx0 )) -gt 1000 ]"
  check ping-after-stream ping -c 3 -W 5 $PEER
fi
# rx_dropped also counts frames the stack had no handler for (the C driver's eth0 shows those too, printed at the
# start); the driver's own drops are the header errors in its removal line, checked at each unbind below.
echo "bnet0 rx_dropped $(stat_of bnet0 rx_dropped) tx_dropped $(stat_of bnet0 tx_dropped) (eth0 under virtio_net before: $CDROPS)"

# --- down/up (NAPI off and on, ring kept) -----------------------------------------------------------------------------
check link-down $IP link set bnet0 down
check link-up-again $IP link set bnet0 up
check ping-after-down-up until_ok 30 ping -c 1 -W 2 $PEER

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
if [ "$topo" = pair ]; then
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
if [ "$topo" = pair ]; then
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
