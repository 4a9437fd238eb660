#!/bin/sh
# VirtualWire data plane on the pair topology (dissertation Ch. 5, Fig. 5.7): on each host a guest (a network
# namespace) sits behind a bridge with the endpoint's interface vw7 enslaved; connector 7 joins the two hosts.
#   ping across the connector, ARP (broadcast, non-IP), a VLAN-tagged path, full-MTU frames without fragmentation,
#   counters, migration of host 1's endpoint to another port (create, repoint the sister, destroy: §5.2.4),
#   collapse of a connector whose both ends are on host 0 (§5.2.3), and rmmod under traffic.
# Both hosts run this at the same time; `barrier NAME` waits until the other host reached the same point.
. /overcast/tests/lib.sh
M=/overcast/modules
# iproute2's ip (netns, vlan, vxlan), not busybox's applet of the same name.
IP=/usr/sbin/ip
ip() { $IP "$@"; }
me=${OVERCAST_HOST:-0}
if [ "$me" = 0 ]; then L=10.99.0.1 R=10.99.0.2 G=192.168.7.1 PG=192.168.7.2 V=192.168.77.1 PV=192.168.77.2
else L=10.99.0.2 R=10.99.0.1 G=192.168.7.2 PG=192.168.7.1 V=192.168.77.2 PV=192.168.77.1; fi

# --- barrier over the link (UDP 5999, outside the connector) -------------------------------------------------------
socat -u UDP-RECV:5999 OPEN:/tmp/barrier.log,creat,append &
BARRIER_PID=$!
barrier() {
  local i=0
  while [ $i -lt 240 ]; do
    echo "$1" | socat -u - UDP-SENDTO:$R:5999 2>/dev/null
    if grep -qx "$1" /tmp/barrier.log 2>/dev/null; then
      echo "$1" | socat -u - UDP-SENDTO:$R:5999 2>/dev/null
      return 0
    fi
    sleep 1; i=$((i + 1))
  done
  fail "barrier-$1" "the other host did not reach '$1' in 240 s"
  return 1
}
# until_ok SECS CMD...: retries CMD once a second until it succeeds.
until_ok() {
  local n=$1; shift
  while [ "$n" -gt 0 ]; do "$@" >/tmp/until.out 2>&1 && return 0; sleep 1; n=$((n - 1)); done
  return 1
}
field() { awk -F': ' -v k="$2" '$1==k{print $2; exit}' "/proc/vw/$1"; }
# field_is N KEY VALUE: the first block of /proc/vw/N has KEY: VALUE.
field_is() { local v; v=$(field "$1" "$2"); [ "$v" = "$3" ] || { echo "$2 is '$v', want '$3'"; return 1; }; }
counters_moved() { grep -E '^(rx|tx)_|^drop' /proc/vw/7 | tr '\n' ' '; [ "$(field 7 rx_frames)" -gt 0 ] && [ "$(field 7 tx_frames)" -gt 0 ]; }
# ARP requests are broadcast, non-IP (0x0806) frames: they cross the connector and are answered.
arp_ok() {
  gx $IP neigh flush dev veth1
  gx arping -c 3 -w 10 -I veth1 $PG >/tmp/arp.out 2>&1; cat /tmp/arp.out
  grep -q 'Received [1-9]' /tmp/arp.out
}
# iperf3 client in the guest towards the peer guest; prints the summary (TCG numbers, not a benchmark).
iperf_run() {
  gx iperf3 -c $PG "$@" >/tmp/iperf.out 2>&1 || { cat /tmp/iperf.out; return 1; }
}
repoint_7() { echo "$1" > /proc/vw/7 && field_is 7 remote "$1"; }
gx() { $IP netns exec g "$@"; }
# FragCreates of the host's IP counters (fragments it made).
cat > /tmp/frag.awk <<'AWK'
/^Ip: [A-Z]/ { for (i = 2; i <= NF; i++) if ($i == "FragCreates") col = i }
/^Ip: [0-9]/ { print $col }
AWK
frag_creates() { awk -f /tmp/frag.awk /proc/net/snmp; }

check insmod-vwire insmod $M/vwire.ko

# --- a guest behind a bridge, vw7 enslaved next to its back-end interface (Fig. 5.7) ------------------------------
guest_ns g $G/24 br0 veth0
gx ip link add link veth1 name veth1.100 type vlan id 100
gx ip link set veth1.100 up
gx ip addr add $V/24 dev veth1.100

check vw-create sh -c "echo '7 $L:4789 $R:4789' > /proc/vw/create"
check vw-iface-exists test -d /sys/class/net/vw7
check vw-status-ifname field_is 7 ifname vw7
check vw-status-mtu-1450 field_is 7 mtu 1450
check vw-iface-mtu-1450 sh -c '[ "$(cat /sys/class/net/vw7/mtu)" = 1450 ]'
ip link set vw7 master br0 up
check vw-enslaved sh -c '[ "$(basename $(readlink /sys/class/net/vw7/master))" = br0 ]'
ip link add vx1 type vxlan id 1 dstport 4800 local $L nolearning && ip link set vx1 up
check_fails vw-port-in-use "in use" sh -c "echo '8 $L:4800 $R:4800' > /proc/vw/create"
ip link del vx1
check vw-port-in-use-changed-nothing sh -c '! test -e /proc/vw/8 && ! test -e /sys/class/net/vw8'

barrier up
check vw-ping until_ok 60 gx ping -c 1 -W 2 $PG
check vw-ping-3 gx ping -c 3 -W 3 $PG
check vw-arp-broadcast arp_ok
check vw-arp-resolved sh -c "$IP netns exec g $IP neigh show $PG | grep -q lladdr"
check vw-vlan-tagged until_ok 20 gx ping -c 1 -W 2 $PV
# A full-size guest packet (1450 bytes of IP: 1422 of ICMP payload) crosses without any fragment being made.
frags0=$(frag_creates)
check vw-full-mtu gx ping -c 2 -W 3 -s 1422 $PG
check vw-full-mtu-no-fragments sh -c "[ '$frags0' = \"\$(awk -f /tmp/frag.awk /proc/net/snmp)\" ]"
check vw-counters-move counters_moved
check vw-iface-stats sh -c '[ "$(cat /sys/class/net/vw7/statistics/tx_packets)" -gt 0 ] && [ "$(cat /sys/class/net/vw7/statistics/rx_packets)" -gt 0 ]'

# --- the path MTU shrinks (a route with MTU 1400 to the peer): the guest is told, as by VXLAN, and adapts ---------
if [ "$me" = 0 ]; then
  ip route add $R/32 dev eth0 mtu 1400
  gx ping -c 1 -W 2 -s 1422 $PG >/dev/null 2>&1
  check vw-pmtu-guest-told sh -c "$IP netns exec g $IP route get $PG | grep -q 'mtu 1350'"
  check vw-pmtu-guest-adapts until_ok 10 gx ping -c 1 -W 2 -s 1422 $PG
  check vw-pmtu-too-big-counted sh -c '[ "$(awk -F": " "\$1==\"drop_too_big\"{print \$2; exit}" /proc/vw/7)" -gt 0 ]'
  ip route del $R/32 dev eth0
fi
barrier pinged

# --- TCP and UDP streams across the connector (iperf3; host 1's guest serves) -------------------------------------
if [ "$me" = 1 ]; then
  gx iperf3 -s -D -B $G --logfile /tmp/iperf3-server.log
  barrier iperf-up
  barrier iperf-done
else
  barrier iperf-up
  check vw-iperf3-tcp until_ok 10 iperf_run -t 3
  grep -E 'sender|receiver' /tmp/iperf.out | sed 's/^/iperf3 tcp: /'
  check vw-iperf3-udp iperf_run -u -b 20M -l 1400 -t 3
  grep -E 'sender|receiver' /tmp/iperf.out | sed 's/^/iperf3 udp: /'
  # Receive aggregation (GRO on the tunnel socket, as VXLAN's): a TCP stream towards this host arrives as frames
  # larger than the 1450-byte MTU, each counted once in /proc/vw/7.
  f0=$(field 7 rx_frames) b0=$(field 7 rx_bytes)
  check vw-iperf3-tcp-reverse iperf_run -t 3 -R
  f1=$(field 7 rx_frames) b1=$(field 7 rx_bytes)
  echo "vw7 receive during the reverse TCP stream: $((f1 - f0)) frames, $((b1 - b0)) bytes"
  check vw-gro-merges-tcp sh -c "[ $((f1 - f0)) -gt 0 ] && [ $(( (b1 - b0) / (f1 - f0 + (f1 == f0)) )) -gt 1500 ]"
  ethtool -k vw7 2>/dev/null | grep -E '^(tcp-segmentation-offload|tx-checksumming|scatter-gather):' | sed 's/^/vw7 offload: /'

  barrier iperf-done
fi

# --- migration of host 1's endpoint to port 4790 (§5.2.4): create at the destination, repoint the sister, destroy
if [ "$me" = 1 ]; then
  check vw-migrate-create sh -c "echo '7 $L:4790 $R:4789' > /proc/vw/create"
  check vw-second-iface-name test -d /sys/class/net/vw7-1
  ip link set vw7 nomaster
  ip link set vw7-1 master br0 up
  barrier moved
  barrier repointed
  check vw-migrate-destroy-source sh -c "echo '7 $L:4789' > /proc/vw/destroy && ! test -e /sys/class/net/vw7"
  check vw-after-migration-one-entry sh -c '[ "$(grep -c "^7 " /proc/vw/list)" = 1 ]'
else
  # A flow runs through the migration (ping every 100 ms); it must go on afterwards. The gap is printed.
  gx ping -c 150 -i 0.1 -W 1 $PG >/tmp/mig.ping 2>&1 &
  MIGPING=$!
  barrier moved
  check vw-repoint repoint_7 $R:4790
  barrier repointed
  sleep 3
  n0=$(grep -c "bytes from" /tmp/mig.ping)
  sleep 2
  check vw-flow-survives-migration sh -c "[ \$(grep -c 'bytes from' /tmp/mig.ping) -gt $n0 ]"
  wait $MIGPING
  echo "migration flow: $(grep -E 'transmitted|received' /tmp/mig.ping | tr '\n' ' ')"
fi
check vw-ping-after-migration until_ok 30 gx ping -c 1 -W 2 $PG
barrier migrated

# --- IPv6 outer addresses: connector 6 over fd99::/64 on the link (outer IPv6 costs 20 bytes more: MTU 1430) -----
ip -6 addr add fd99::$((me + 1))/64 dev eth0 nodad
check vw6-create sh -c "echo '6 [fd99::$((me + 1))]:4789 [fd99::$((2 - me))]:4789' > /proc/vw/create"
check vw6-mtu-1430 field_is 6 mtu 1430
ip addr add 10.6.0.$((me + 1))/24 dev vw6
ip link set vw6 up
check vw6-ping until_ok 30 ping -c 1 -W 2 10.6.0.$((2 - me))
check vw6-counters sh -c '[ "$(awk -F": " "\$1==\"rx_frames\"{print \$2}" /proc/vw/6)" -gt 0 ]'

# --- interoperation with the kernel's VXLAN (design doc §3.1): host 1 runs a VXLAN device with VNI 21 -------------
if [ "$me" = 0 ]; then
  check vx-create sh -c "echo '21 $L:4792 $R:4792' > /proc/vw/create"
  ip addr add 10.21.0.1/24 dev vw21
  ip link set vw21 up
else
  ip link add vx21 type vxlan id 21 local $L remote $R dstport 4792 nolearning
  ip addr add 10.21.0.2/24 dev vx21
  ip link set vx21 up
fi
check vx-ping-vxlan until_ok 30 ping -c 1 -W 2 10.21.0.$((2 - me))
barrier v6-vxlan

# --- ip link: host 0's end of connector 31 made with `ip link add … type vwire` (rtnetlink), host 1's through
# /proc/vw/create; both are the same kind of entry, and frames cross between them ----------------------------------
if [ "$me" = 0 ]; then
  check iplink-add $IP link add blue31 type vwire id 31 local $L:4831 remote $R:4831
  V31=blue31
else
  check iplink-peer-proc sh -c "echo '31 $L:4831 $R:4831' > /proc/vw/create"
  V31=vw31
fi
ip addr add 10.31.0.$((me + 1))/24 dev $V31
ip link set $V31 up
check iplink-ping until_ok 30 ping -c 3 -W 2 10.31.0.$((2 - me))
check iplink-counters sh -c '[ "$(awk -F": " "\$1==\"rx_frames\"{print \$2}" /proc/vw/31)" -gt 0 ]'
if [ "$me" = 0 ]; then
  $IP -d link show blue31 | grep vwire
  check iplink-details sh -c "$IP -d link show blue31 | grep -q 'vwire id 31 local $L:4831 remote $R:4831'"
fi
barrier iplink
if [ "$me" = 0 ]; then
  check iplink-del $IP link del blue31
else
  check iplink-peer-destroy sh -c "echo 31 > /proc/vw/destroy"
fi
check iplink-gone sh -c "! test -e /sys/class/net/$V31 && ! grep -q '^31 ' /proc/vw/list"

# --- endpoints whose interface lives in another network namespace (connector 32; the UDP side stays in the initial
# one): host 0 creates it there (`ip link add … netns n32`), host 1 creates it through /proc/vw and moves it; the
# namespaces ping each other across; a namespace deleted takes its endpoint with it ---------------------------------
ip netns add n32
ip -n n32 link set lo up
if [ "$me" = 0 ]; then
  check netns-iplink-add $IP link add red32 netns n32 type vwire id 32 local $L:4832 remote $R:4832
  V32=red32
else
  check netns-proc-create sh -c "echo '32 $L:4832 $R:4832' > /proc/vw/create"
  check netns-move $IP link set vw32 netns n32
  V32=vw32
fi
check netns-iface-there sh -c "$IP -n n32 link show $V32 && ! test -e /sys/class/net/$V32"
check netns-endpoint-listed grep -q '^32 ' /proc/vw/list
check_fails netns-create-inside-refused "initial network namespace" $IP -n n32 link add x33 type vwire id 33 local $L:4833 remote $R:4833
$IP -n n32 addr add 10.32.0.$((me + 1))/24 dev $V32
$IP -n n32 link set $V32 up
barrier netns-up
check netns-ping until_ok 30 $IP netns exec n32 ping -c 3 -W 2 10.32.0.$((2 - me))
check netns-counters sh -c '[ "$(awk -F": " "\$1==\"rx_frames\"{print \$2}" /proc/vw/32)" -gt 0 ] && [ "$(awk -F": " "\$1==\"tx_frames\"{print \$2}" /proc/vw/32)" -gt 0 ]'
barrier netns-pinged
check netns-delete ip netns del n32
check netns-endpoint-gone wait_for 15 sh -c "! grep -q '^32 ' /proc/vw/list"
check netns-id-free-again sh -c "echo '32 $L:4832 $R:4832' > /proc/vw/create && echo 32 > /proc/vw/destroy"

# --- collapse: both ends of connector 9 on host 0 (§5.2.3, Fig. 5.8) --------------------------------------------
if [ "$me" = 0 ]; then
  for i in 1 2; do
    ip netns add c$i
    ip link add cv$i type veth peer name cp$i
    ip link set cp$i netns c$i
    ip -n c$i link set lo up
    ip -n c$i link set cp$i up
    ip -n c$i addr add 10.9.0.$i/24 dev cp$i
    ip link add cb$i type bridge
    ip link set cb$i up
    ip link set cv$i master cb$i up
  done
  check vw-collapse-create sh -c "echo '9 $L:5001 $L:5002' > /proc/vw/create && echo '9 $L:5002 $L:5001' > /proc/vw/create"
  ip link set vw9 master cb1 up
  ip link set vw9-1 master cb2 up
  check vw-collapsed sh -c '[ "$(grep -c "^9 .* collapsed$" /proc/vw/list)" = 2 ]'
  check vw-collapse-ping until_ok 20 $IP netns exec c1 ping -c 1 -W 2 10.9.0.2
  check vw-collapse-counters sh -c 'awk -F": " "\$1==\"tx_frames\"{s+=\$2} END{exit !(s>0)}" /proc/vw/9'
  check vw-collapse-off sh -c 'echo "collapse off" > /proc/vw/manager && [ "$(grep -c "^9 .* encapsulating$" /proc/vw/list)" = 2 ]'
  check vw-uncollapsed-ping until_ok 20 $IP netns exec c1 ping -c 1 -W 2 10.9.0.2
  check vw-collapse-on sh -c 'echo "collapse on" > /proc/vw/manager && [ "$(grep -c "^9 .* collapsed$" /proc/vw/list)" = 2 ]'
  # Repointing one end elsewhere re-enables encapsulation for it, with no manual step.
  check vw-repoint-uncollapses sh -c "echo '$L:5001 $R:5009' > /proc/vw/9 && grep -q '^9 endpoint $L:5001 $R:5009 encapsulating$' /proc/vw/list"
fi
barrier collapse

# Extenders (§5.1.2, Fig. 5.4) are checked across a real cloud boundary on three hosts: scenario vwire-extender.

# --- rmmod while a flow runs ------------------------------------------------------------------------------------
gx ping -i 0.2 -W 1 $PG >/dev/null 2>&1 &
PING_PID=$!
sleep 2
barrier flowing
check vw-rmmod-under-traffic rmmod vwire
kill $PING_PID 2>/dev/null
check vw-ifaces-gone sh -c '! ls /sys/class/net | grep -q "^vw"'
check vw-reinsmod insmod $M/vwire.ko
check vw-rermmod rmmod vwire
barrier done
sleep 2
kill $BARRIER_PID 2>/dev/null
check_no_oops
exit $OVC_FAILS
