#!/bin/sh
# bench-vwire: VirtualWire connectors against the kernel's VXLAN, a userspace TAP tunnel (vtun) and the direct
# link, in one pair run (dissertation §5.3.4, Fig. 5.13 and 5.14). Run by scripts/bench-vwire, which parses the
# BENCH-VWIRE lines this prints and makes the table; not part of `make test`.
#
# On each host, one "guest" (a network namespace behind a veth pair, MTU 1450 everywhere) per path:
#   vwire   gw  192.168.10.x   bridge brw + vw7 (connector 7, 10.99.0.1:4789 <-> 10.99.0.2:4789)
#   vxlan   gx  192.168.20.x   bridge brx + vx20 (kernel VXLAN, VNI 20, UDP port 4790)
#   vtun    gt  192.168.30.x   bridge brt + vt0 (vtund 3.0 in UDP mode, type ether, no compression/encryption)
#   direct  gd  192.168.41.1 / 192.168.42.1, routed by the hosts over eth0 (no tunnel)
# Host 0 is the client and drives every measurement; host 1 serves (iperf3 -s, ovc-netbench rr-server in each
# guest, ovc-netbench sink on eth0 for CPU counters and the endpoint-scalability traffic).
# Per round, paths in a rotating order: iperf3 TCP stream, iperf3 UDP (1400-byte datagrams at a fixed offered
# load, the receiver's rate is reported), TCP request/response (1 byte each way). CPU: busy jiffies of each host
# (/proc/stat, all of it: guest, bridge, tunnel, vtund) over each stream.
# Then connector 7 goes and 256 connectors (N = 1000..1255) are made between the hosts, each with an address on its
# vw<N>, and 256 VXLAN devices likewise; one blaster on host 0 sends 1400-byte datagrams round-robin to the first K
# of them (K = 1, 16, 256) and host 1 counts what its tunnel interfaces delivered.
# Parameters from the kernel command line: overcast.bench_rounds=3 overcast.bench_secs=5
#   overcast.bench_udp_mbps=1000 overcast.bench_rr=1000 overcast.bench_scale_secs=6 overcast.bench_tests=tcp,udp,rr,scale
. /overcast/tests/lib.sh
M=/overcast/modules
NB=/overcast/bin/ovc-netbench
IP=/usr/sbin/ip
ip() { $IP "$@"; }
me=${OVERCAST_HOST:-0}
if [ "$me" = 0 ]; then L=10.99.0.1 R=10.99.0.2; else L=10.99.0.2 R=10.99.0.1; fi
param() { v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^overcast\.$1=//p" | tail -1); echo "${v:-$2}"; }
ROUNDS=$(param bench_rounds 3)
SECS=$(param bench_secs 5)
UDP_MBPS=$(param bench_udp_mbps 1000)
RR_N=$(param bench_rr 1000)
SCALE_SECS=$(param bench_scale_secs 6)
TESTS=$(param bench_tests tcp,udp,rr,scale | tr ',' ' ')
want() { case " $TESTS " in *" $1 "*) return 0 ;; esac; return 1; }
PATHS="vwire vxlan vtun direct"
echo "bench-vwire: host $me rounds=$ROUNDS secs=$SECS udp_offered_mbps=$UDP_MBPS rr=$RR_N scale_secs=$SCALE_SECS"
echo "bench-vwire: cpus=$(grep -c ^processor /proc/cpuinfo) mem_kb=$(awk '/MemTotal/{print $2}' /proc/meminfo)"
echo "BENCH-VWIRE-PARAMS rounds=$ROUNDS secs=$SECS udp_mbps=$UDP_MBPS rr=$RR_N scale_secs=$SCALE_SECS cpus=$(grep -c ^processor /proc/cpuinfo)"

barrier() { overcast-barrier "$1" "${2:-300}" || fail "barrier-$1" "the peer did not reach '$1'"; }
until_ok() {
  local n=$1; shift
  while [ "$n" -gt 0 ]; do "$@" >/tmp/until.out 2>&1 && return 0; sleep 1; n=$((n - 1)); done
  return 1
}
ns_of() { case $1 in vwire) echo gw ;; vxlan) echo gx ;; vtun) echo gt ;; direct) echo gd ;; esac; }
# guest address of host H (0/1) on path P
addr_of() {
  case $1 in
    vwire) echo 192.168.10.$(($2 + 1)) ;; vxlan) echo 192.168.20.$(($2 + 1)) ;;
    vtun) echo 192.168.30.$(($2 + 1)) ;; direct) echo 192.168.4$(($2 + 1)).1 ;;
  esac
}
# mkguest NS HOSTIF ADDR/PREFIX: a namespace behind a veth pair (HOSTIF here, eth0 inside), MTU 1450.
mkguest() {
  ip netns add $1
  ip link add $2 type veth peer name ${2}g
  ip link set ${2}g netns $1
  ip -n $1 link set lo up
  ip -n $1 link set ${2}g name eth0
  ip -n $1 link set eth0 mtu 1450 up
  ip -n $1 addr add $3 dev eth0
  ip link set $2 mtu 1450 up
}
mkbridge() { ip link add $1 type bridge; ip link set $1 up; ip link set $2 master $1; }

check insmod-vwire insmod $M/vwire.ko
check netbench-present test -x $NB
echo 1 > /proc/sys/net/ipv4/ip_forward
# No IPv6 anywhere (the benchmark is IPv4): an interface coming up then sends nothing on its own (router
# solicitations, MLD reports), and vtund's tap gets no frame before its "up" command has brought it up (a write
# to a tap that is down is EIO, and vtund ends the session).
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done
# While host 0 measures, host 1 must not poll (overcast-barrier spawns processes every 0.5 s, CPU the receiver
# would lose): it waits for one TCP message from host 0 on a listener started here, checking a file every 5 s.
if [ "$me" = 1 ]; then
  nc -l -p 6901 </dev/null >/tmp/paths-done 2>/dev/null &
  nc -l -p 6902 </dev/null >/tmp/scale-done 2>/dev/null &
fi
# tell_peer NAME PORT (host 0) / await_peer NAME (host 1)
tell_peer() {
  local i=0
  while [ $i -lt 120 ]; do echo "$1" | timeout 5 nc -w 2 $R $2 2>/dev/null && return 0; sleep 1; i=$((i + 1)); done
  fail "tell-$1" "host 1 did not take '$1' on port $2"
}
await_peer() {
  local i=0
  while [ $i -lt 720 ]; do grep -qx "$1" /tmp/$1 2>/dev/null && return 0; sleep 5; i=$((i + 1)); done
  fail "await-$1" "host 0 did not send '$1' within an hour"
}
# host 1's sink: UDP port 9 for the scalability traffic, TCP 6001 answers with its counters and /proc/stat
if [ "$me" = 1 ]; then $NB sink --port 9 --ctl-port 6001 --ifaces vw,vx >/tmp/sink.log 2>&1 & fi

# --- vwire: connector 7 ------------------------------------------------------------------------------------------
mkguest gw vwh $(addr_of vwire $me)/24
mkbridge brw vwh
check vw-create sh -c "echo '7 $L:4789 $R:4789' > /proc/vw/create"
ip link set vw7 master brw up
# --- kernel VXLAN, VNI 20 ----------------------------------------------------------------------------------------
mkguest gx vxh $(addr_of vxlan $me)/24
mkbridge brx vxh
check vx-create ip link add vx20 type vxlan id 20 local $L remote $R dstport 4790 nolearning
ip link set vx20 mtu 1450 master brx up
# --- direct: routed over eth0 -------------------------------------------------------------------------------------
mkguest gd dh $(addr_of direct $me)/24
ip addr add 192.168.4$((me + 1)).254/24 dev dh
ip -n gd route add default via 192.168.4$((me + 1)).254
ip route add 192.168.4$((2 - me)).0/24 via $R
# --- vtun: vtund server on host 1, client on host 0 ----------------------------------------------------------------
mkguest gt vth $(addr_of vtun $me)/24
mkbridge brt vth
mkdir -p /var/lock/vtund /var/log/vtund /var/run
cat > /tmp/vtund.conf <<EOF
options {
  port 5000;
  timeout 60;
}
bench {
  passwd ovcbench;
  type ether;
  proto udp;
  device vt0;
  compress no;
  encrypt no;
  keepalive no;
  stat no;
  speed 0;
  # Up (and bridged) before any frame is written to it: a write to a tap that is down fails with EIO, and vtund
  # then closes the session.
  up {
    program /usr/sbin/ip "link set %% mtu 1450 master brt up" wait;
  };
}
EOF
HAVE_VTUN=0
if command -v vtund >/dev/null; then HAVE_VTUN=1; else echo "OVERCAST-CHECK SKIP vtun-present vtund is not in the rootfs (scripts/setup installs vtun)"; fi
if [ "$me" = 1 ] && [ $HAVE_VTUN = 1 ]; then vtund -s -n -f /tmp/vtund.conf >/tmp/vtund.log 2>&1 & fi
barrier set-up
if [ "$me" = 0 ] && [ $HAVE_VTUN = 1 ]; then
  sleep 1
  vtund -n -f /tmp/vtund.conf bench $R >/tmp/vtund.log 2>&1 &
fi
vt_up() {
  local d
  d=$(ls /sys/class/net | grep -E '^(vt0|tap[0-9]+)$' | head -1)
  [ -n "$d" ] || return 1
  ip link set $d mtu 1450 master brt up
}
if [ $HAVE_VTUN = 1 ]; then
  check vtun-tap until_ok 60 vt_up
  sed 's/^/vtund: /' /tmp/vtund.log
fi

# --- servers in host 1's guests ----------------------------------------------------------------------------------
if [ "$me" = 1 ]; then
  for p in $PATHS; do
    n=$(ns_of $p); a=$(addr_of $p 1)
    ip netns exec $n iperf3 -s -D -B $a --logfile /tmp/iperf3-$p.log
    ip netns exec $n $NB rr-server --port 6100 --bind $a >/tmp/rr-$p.log 2>&1 &
  done
fi
barrier servers

UP=""
for p in $PATHS; do
  [ $p = vtun ] && [ $HAVE_VTUN = 0 ] && continue
  check path-$p until_ok 60 ip netns exec $(ns_of $p) ping -c 1 -W 2 $(addr_of $p $((1 - me)))
  if ip netns exec $(ns_of $p) ping -c 1 -W 2 $(addr_of $p $((1 - me))) >/dev/null 2>&1; then UP="$UP $p"; fi
done
echo "bench-vwire: paths up:$UP"
ethtool -k vw7 2>/dev/null | grep -E '^(tcp-segmentation-offload|tx-checksumming|scatter-gather|generic-segmentation-offload):' | sed 's/^/vw7 offload: /'
ethtool -k vx20 2>/dev/null | grep -E '^(tcp-segmentation-offload|tx-checksumming|scatter-gather|generic-segmentation-offload):' | sed 's/^/vx20 offload: /'
barrier paths-up

# --- measurements, driven by host 0 --------------------------------------------------------------------------------
# busy and total jiffies of this host, and of host 1 through its sink's control port
cpu_here() { head -1 /proc/stat | awk '{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}'; }
cpu_peer() { $NB query $R:6001 2>/dev/null | tr ' ' '\n' | sed -n 's/^cpu=//p' | tr ',' ' ' |
  awk '{b=$1+$2+$3+$6+$7+$8; print b, b+$4+$5}'; }
# cpu_delta "B0 T0" "B1 T1" -> "busy/total"
cpu_delta() { echo "$1 $2" | awk '{printf "%d/%d", $3-$1, $4-$2}'; }
sink_rx() { $NB query $R:6001 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# stream PATH TEST ROUND: one iperf3 run from host 0's guest to host 1's guest
stream() {
  local p=$1 t=$2 r=$3 n peer c0 p0 c1 p1 mbps loss args
  n=$(ns_of $p); peer=$(addr_of $p 1)
  if [ $t = udp ]; then args="-u -l 1400 -b ${UDP_MBPS}M"; else args=""; fi
  c0=$(cpu_here); p0=$(cpu_peer)
  if ! ip netns exec $n iperf3 -c $peer -t $SECS -f m $args >/tmp/iperf.out 2>&1; then
    echo "BENCH-VWIRE-ERROR round=$r path=$p test=$t $(tail -c 200 /tmp/iperf.out | tr '\n' ' ')"
    return 1
  fi
  c1=$(cpu_here); p1=$(cpu_peer)
  mbps=$(awk '/receiver/{for(i=1;i<=NF;i++) if($i=="Mbits/sec") print $(i-1)}' /tmp/iperf.out | tail -1)
  # TCP: the sender's retransmitted segments (the number after Mbits/sec on its summary line)
  retr=$(awk '/sender/{for(i=1;i<=NF;i++) if($i=="Mbits/sec" && $(i+1) ~ /^[0-9]+$/) print $(i+1)}' /tmp/iperf.out | tail -1)
  loss=-
  [ $t = udp ] && loss=$(awk '/receiver/{for(i=1;i<=NF;i++) if($i ~ /^\(.*%\)$/) {gsub(/[()%]/,"",$i); print $i}}' /tmp/iperf.out | tail -1)
  echo "BENCH-VWIRE round=$r path=$p test=$t mbps=${mbps:-0} loss_pct=${loss:--} retr=${retr:--} secs=$SECS cpu0=$(cpu_delta "$c0" "$c1") cpu1=$(cpu_delta "$p0" "$p1")"
}
rr() {
  local p=$1 r=$2 out
  out=$(ip netns exec $(ns_of $p) $NB rr --peer $(addr_of $p 1):6100 --count $RR_N --secs 10 2>&1) ||
    { echo "BENCH-VWIRE-ERROR round=$r path=$p test=rr $out"; return 1; }
  echo "BENCH-VWIRE round=$r path=$p test=rr ${out#rr }"
}
# rotate LIST K: LIST starting at its K-th word (0-based), wrapping around
rotate() { echo "$1" | awk -v k="$2" '{n=NF; s=""; for(i=0;i<n;i++) s=s" "$((i+k)%n+1); print s}'; }

if [ "$me" = 0 ]; then
  r=1
  while [ $r -le $ROUNDS ]; do
    order=$(rotate "$UP" $((r - 1)))
    echo "bench-vwire: round $r of $ROUNDS, order:$order ($(cat /proc/loadavg))"
    for t in tcp udp; do want $t && for p in $order; do stream $p $t $r; done; done
    want rr && for p in $order; do rr $p $r; done
    r=$((r + 1))
  done
  tell_peer paths-done 6901
else
  await_peer paths-done
fi
barrier paths-done
# Where frames went missing, if any (both hosts): tunnel and link counters, softnet drops, vwire's drop reasons.
for d in vw7 vx20 vt0 eth0; do
  [ -e /sys/class/net/$d ] || continue
  echo "diag $d: $(for c in rx_packets tx_packets rx_dropped tx_dropped; do echo -n "$c=$(cat /sys/class/net/$d/statistics/$c) "; done)"
done
echo "diag vw7: $(grep -E '^(drop|rx_frames|tx_frames)' /proc/vw/7 | tr '\n' ' ')"
echo "diag softnet (hex: processed dropped squeezed ...): $(head -1 /proc/net/softnet_stat)"
echo "diag eth0 qdisc: $(tc -s qdisc show dev eth0 | tr '\n' ' ')"
echo "diag udp: $(grep '^Udp:' /proc/net/snmp | tail -1)"
echo "diag tcp: $(grep '^Tcp:' /proc/net/snmp | tail -1)"

# --- 256 endpoints on one host (Fig. 5.14), and 256 kernel VXLAN devices as the reference ---------------------------
# Connector N = 1000+i (i = 0..255): vw<N> with 172.16.i.(host+1)/24; VXLAN VNI N: vx<N> with 172.17.i.(host+1)/24.
# One blaster on host 0 sends 1400-byte datagrams round-robin to the first K of them; what the tunnels delivered is
# counted on host 1 as the frames received by its vw<N> (vx<N>) interfaces, before any socket: the sink that
# absorbs them (so that no ICMP comes back) is a user-space process that cannot keep up under TCG.
if want scale; then
check vw7-destroy sh -c "echo 7 > /proc/vw/destroy"
mk256() {
  local i=0 N
  : >/tmp/scale.batch
  while [ $i -lt 256 ]; do
    N=$((1000 + i))
    echo "$N $L:4789 $R:4789" > /proc/vw/create || { echo "create $N failed"; return 1; }
    echo "addr add 172.16.$i.$((me + 1))/24 dev vw$N" >>/tmp/scale.batch
    echo "link set vw$N up" >>/tmp/scale.batch
    echo "link add vx$N type vxlan id $N local $L remote $R dstport 4790 nolearning" >>/tmp/scale.batch
    echo "addr add 172.17.$i.$((me + 1))/24 dev vx$N" >>/tmp/scale.batch
    echo "link set vx$N up" >>/tmp/scale.batch
    i=$((i + 1))
  done
  ip -batch /tmp/scale.batch
}
check vw-256-create mk256
check vw-256-entries sh -c '[ "$(grep -c " endpoint " /proc/vw/list)" = 256 ]'
check vw-256-ifaces sh -c '[ "$(ls /sys/class/net | grep -c "^vw1[0-9][0-9][0-9]$")" = 256 ]'
check vx-256-ifaces sh -c '[ "$(ls /sys/class/net | grep -c "^vx1[0-9][0-9][0-9]$")" = 256 ]'
barrier scale-up
if [ "$me" = 0 ]; then
  # dests NET K: the first K peer addresses of 172.NET.i.2
  dests() { local i=0; while [ $i -lt $2 ]; do echo -n "172.$1.$i.2 "; i=$((i + 1)); done; }
  # Warm-up: every connector carries ARP both ways and a little traffic before anything is timed.
  $NB blast --port 9 --secs 3 --mbps 20 $(dests 16 256) >/dev/null
  $NB blast --port 9 --secs 3 --mbps 20 $(dests 17 256) >/dev/null
  check vw-256-all-resolved until_ok 30 sh -c "[ \$($IP neigh show | grep -c '^172\.16\..* lladdr') = 256 ]"
  check vx-256-all-resolved until_ok 30 sh -c "[ \$($IP neigh show | grep -c '^172\.17\..* lladdr') = 256 ]"
  r=1
  while [ $r -le $ROUNDS ]; do
    for k in $(rotate "1 16 256" $((r - 1))); do
      for p in $(rotate "vwire vxlan" $((r - 1))); do
        if [ $p = vwire ]; then net=16 pre=vw; else net=17 pre=vx; fi
        q0=$($NB query $R:6001); c0=$(cpu_here)
        out=$($NB blast --port 9 --size 1400 --secs $SCALE_SECS $(dests $net $k))
        sleep 1
        q1=$($NB query $R:6001); c1=$(cpu_here)
        get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
        pk=$(( $(get "$q1" rx_packets_$pre) - $(get "$q0" rx_packets_$pre) ))
        by=$(( $(get "$q1" rx_bytes_$pre) - $(get "$q0" rx_bytes_$pre) ))
        cp0=$(get "$q0" cpu | tr ',' ' ' | awk '{b=$1+$2+$3+$6+$7+$8; print b, b+$4+$5}')
        cp1=$(get "$q1" cpu | tr ',' ' ' | awk '{b=$1+$2+$3+$6+$7+$8; print b, b+$4+$5}')
        echo "BENCH-VWIRE round=$r path=$p test=scale endpoints=$k rx_frames=$pk rx_frame_bytes=$by rcvbuf_drops=$(( $(get "$q1" udp_rcvbuf_errors) - $(get "$q0" udp_rcvbuf_errors) )) cpu0=$(cpu_delta "$c0" "$c1") cpu1=$(cpu_delta "$cp0" "$cp1") ${out#blast }"
      done
    done
    r=$((r + 1))
  done
  tell_peer scale-done 6902
else
  await_peer scale-done
fi
barrier scale-done
fi
if [ "$me" = 1 ] && want scale; then
  # How evenly the connectors were served (frames delivered out of each vw<N>, warm-up included).
  for pre in vw vx; do
    drops=$(cat /sys/class/net/${pre}1[0-9][0-9][0-9]/statistics/rx_dropped | awk '{s+=$1} END{print s+0}')
    for d in /sys/class/net/${pre}1[0-9][0-9][0-9]; do cat $d/statistics/rx_packets; done | sort -n |
      awk -v drops=$drops -v pre=$pre '{a[NR]=$1} END{printf "BENCH-VWIRE-SPREAD %s endpoints=%d rx_packets_min=%d rx_packets_median=%d rx_packets_max=%d rx_dropped_total=%d\n", pre, NR, a[1], a[int((NR+1)/2)], a[NR], drops}'
  done
fi
check vw-rmmod rmmod vwire
barrier done
check_no_oops
exit $OVC_FAILS
