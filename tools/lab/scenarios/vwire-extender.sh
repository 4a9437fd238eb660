#!/bin/sh
# VirtualWire extenders across a cloud boundary (dissertation §5.1.2, Fig. 5.4), on the trio topology:
#   host 0 — link A (10.99.0.0/24, "cloud A") — host 1 — link B (10.99.1.0/24, "cloud B") — host 2
# Hosts 0 and 2 share no network and host 1 does not route between its links, so the only way between them is
# host 1's endpoint manager relaying connector 5 (one relay entry per direction). A guest (network namespace)
# behind a bridge on host 0 and one on host 2 are joined by connector 5; each end sends to host 1's address in its
# own cloud. Checks: the boundary holds (no IP path 0 <-> 2), the guests ping (ARP broadcast included, full MTU
# without fragments) and run a TCP stream through the extender, both relays count, the guests' endpoints show
# plain encapsulation (the extender is invisible to them); host 2's endpoint moves to another port and only the
# extender is repointed — host 0's endpoint is untouched and the flow comes back; removing the extender's module
# cuts the connector, loading it again and re-creating the relays restores it; a relay that already exists is
# refused (EEXIST) and changes nothing.
. /overcast/tests/lib.sh
M=/overcast/modules
IP=/usr/sbin/ip
ip() { $IP "$@"; }
me=${OVERCAST_HOST:-0}
A0=10.99.0.1 A1=10.99.0.2 B1=10.99.1.2 B2=10.99.1.3
case $me in
0) L=$A0 X=$A1 G=192.168.5.1 PG=192.168.5.2 FAR=$B2 ;;
2) L=$B2 X=$B1 G=192.168.5.2 PG=192.168.5.1 FAR=$A0 ;;
esac
barrier() { overcast-barrier "$1" 240 || fail "barrier-$1" "the other hosts did not reach '$1' in 240 s"; }
until_ok() {
  local n=$1; shift
  while [ "$n" -gt 0 ]; do "$@" >/tmp/until.out 2>&1 && return 0; sleep 1; n=$((n - 1)); done
  cat /tmp/until.out
  return 1
}
gx() { $IP netns exec g "$@"; }
# rx_frames of every block of /proc/vw/5 (one line each).
relay_rx() { awk -F': ' '$1=="rx_frames"{print $2}' /proc/vw/5; }
cat > /tmp/frag.awk <<'AWK'
/^Ip: [A-Z]/ { for (i = 2; i <= NF; i++) if ($i == "FragCreates") col = i }
/^Ip: [0-9]/ { print $col }
AWK
relays() {
  echo "relay 5 $A1:4789 $B2:4789" > /proc/vw/create && echo "relay 5 $B1:4789 $A0:4789" > /proc/vw/create
}

check insmod-vwire insmod $M/vwire.ko
if [ "$me" = 1 ]; then
  # --- the extender: in both clouds, forwarding nothing at the IP layer -----------------------------------------
  check extender-no-ip-forwarding test "$(cat /proc/sys/net/ipv4/ip_forward)" = 0
  check relay-create relays
  check relay-mode sh -c '[ "$(grep -c "^5 relay .* relay$" /proc/vw/list)" = 2 ]'
  check relay-no-iface sh -c '! ls /sys/class/net | grep -q "^vw"'
  check_fails relay-duplicate-refused "exists" sh -c "echo 'relay 5 $A1:4789 $B2:4790' > /proc/vw/create"
  check relay-duplicate-changed-nothing sh -c "[ \"\$(grep -c '^5 relay' /proc/vw/list)\" = 2 ] && grep -q '^5 relay $A1:4789 $B2:4789 relay$' /proc/vw/list"
  cat /proc/vw/list
else
  # --- a guest behind a bridge, vw5 enslaved next to its back-end interface (Fig. 5.7) ---------------------------
  check boundary-no-ip-path sh -c "! ping -c 1 -W 2 $FAR"
  guest_ns g $G/24 br0 veth0
  check vw-create sh -c "echo '5 $L:4789 $X:4789' > /proc/vw/create"
  ip link set vw5 master br0 up
  check vw-mtu-1450 test "$(cat /sys/class/net/vw5/mtu)" = 1450
fi
barrier up

# --- guests across the boundary -------------------------------------------------------------------------------
if [ "$me" = 2 ]; then gx iperf3 -s -D -B $G --logfile /tmp/iperf3-server.log; fi
barrier served
if [ "$me" = 0 ]; then
  check guest-ping until_ok 60 gx ping -c 1 -W 2 $PG
  gx $IP neigh flush dev veth1
  check guest-arp-broadcast sh -c "$IP netns exec g arping -c 2 -w 10 -I veth1 $PG | grep -q 'Received [1-9]'"
  frags0=$(awk -f /tmp/frag.awk /proc/net/snmp)
  check guest-full-mtu gx ping -c 2 -W 3 -s 1422 $PG
  check guest-full-mtu-no-fragments test "$frags0" = "$(awk -f /tmp/frag.awk /proc/net/snmp)"
  check guest-tcp-stream sh -c "$IP netns exec g iperf3 -c $PG -t 3 > /tmp/iperf.out 2>&1 || { cat /tmp/iperf.out; exit 1; }"
  tail -4 /tmp/iperf.out
fi
barrier streamed
if [ "$me" = 1 ]; then
  cat /proc/vw/5
  check relays-both-directions sh -c 'set -- $(awk -F": " "\$1==\"rx_frames\"{print \$2}" /proc/vw/5); [ "${1:-0}" -gt 0 ] && [ "${2:-0}" -gt 0 ]'
else
  # The endpoints see a plain connector to a peer in their own cloud: nothing about the extender.
  check endpoint-encapsulating sh -c "grep -q '^5 endpoint $L:4789 $X:4789 encapsulating$' /proc/vw/list"
  check endpoint-counters sh -c '[ "$(cat /sys/class/net/vw5/statistics/rx_packets)" -gt 0 ] && [ "$(cat /sys/class/net/vw5/statistics/tx_packets)" -gt 0 ]'
fi

# --- host 2's endpoint moves (to port 4790); only the extender is repointed (§5.2.4 through Fig. 5.4) ----------
if [ "$me" = 2 ]; then
  check move-create-destination sh -c "echo '5 $L:4790 $X:4789' > /proc/vw/create"
  ip link set vw5 nomaster
  ip link set vw5-1 master br0 up
fi
barrier moved
if [ "$me" = 1 ]; then
  check move-repoint-extender sh -c "echo '$A1:4789 $B2:4790' > /proc/vw/5 && grep -q '^5 relay $A1:4789 $B2:4790 relay$' /proc/vw/list"
fi
barrier repointed
if [ "$me" = 2 ]; then
  check move-destroy-source sh -c "echo '5 $L:4789' > /proc/vw/destroy && ! test -e /sys/class/net/vw5"
fi
barrier source-gone
if [ "$me" = 0 ]; then
  check moved-ping until_ok 30 gx ping -c 1 -W 2 $PG
  check moved-sister-untouched sh -c "grep -q '^5 endpoint $L:4789 $X:4789 encapsulating$' /proc/vw/list"
fi
barrier moved-checked

# --- the extender goes away and comes back ------------------------------------------------------------------------
if [ "$me" = 1 ]; then
  check extender-rmmod rmmod vwire
fi
barrier extender-gone
if [ "$me" = 0 ]; then
  check connector-cut-without-extender sh -c "! $IP netns exec g ping -c 2 -W 2 $PG"
fi
barrier cut-checked
if [ "$me" = 1 ]; then
  check extender-reinsmod insmod $M/vwire.ko
  check extender-relays-again sh -c "echo 'relay 5 $A1:4789 $B2:4790' > /proc/vw/create && echo 'relay 5 $B1:4789 $A0:4789' > /proc/vw/create"
fi
barrier extender-back
if [ "$me" = 0 ]; then
  check connector-restored until_ok 30 gx ping -c 1 -W 2 $PG
fi
barrier done
check rmmod-vwire rmmod vwire
check vw-ifaces-gone sh -c '! ls /sys/class/net | grep -q "^vw"'
check_no_oops
exit $OVC_FAILS
