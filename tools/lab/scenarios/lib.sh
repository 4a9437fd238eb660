# Shared helpers for lab scenarios (sourced). Results are lines the lab runner parses:
#   OVERCAST-CHECK PASS <name>
#   OVERCAST-CHECK FAIL <name> <reason>
OVC_FAILS=0
pass() { echo "OVERCAST-CHECK PASS $1"; }
fail() { local n=$1; shift; echo "OVERCAST-CHECK FAIL $n $*"; OVC_FAILS=$((OVC_FAILS + 1)); }
# check NAME CMD...: PASS if CMD succeeds.
check() {
  local n=$1; shift
  if "$@" >/tmp/check.out 2>&1; then pass "$n"; else fail "$n" "'$*' failed: $(tail -c 200 /tmp/check.out | tr '\n' ' ')"; crash_excerpt /tmp/check.out; fi
}
# crash_excerpt FILE: when a failed command's output holds a kernel crash (a guest's console, say), print it from the
# first crash line on (80 lines at most, "crash| " in front, our markers defused) — the 200 characters of the FAIL line
# are only its end.
crash_excerpt() {
  awk '/Kernel panic - not syncing|Oops:|BUG: kernel|general protection fault|WARNING: CPU|WARNING: .* at / {p = 1}
       p && n < 80 {print "crash| " $0; n++}' "$1" | sed 's/OVERCAST-/OVERCAST_/g'
}
# check_fails NAME ERRTEXT CMD...: PASS if CMD fails and its stderr mentions ERRTEXT (e.g. an errno's text).
check_fails() {
  local n=$1 want=$2; shift 2
  if "$@" >/tmp/check.out 2>&1; then fail "$n" "'$*' succeeded but must fail"; return; fi
  if grep -qi -- "$want" /tmp/check.out; then pass "$n"; else fail "$n" "'$*' failed without '$want': $(tail -c 200 /tmp/check.out | tr '\n' ' ')"; fi
}
# Print the KTAP of every loaded KUnit suite whose name starts with $1 (from debugfs, without printk prefixes).
print_ktap() {
  local d
  for d in /sys/kernel/debug/kunit/$1*; do
    [ -f "$d/results" ] && cat "$d/results"
  done
}
# An oops, BUG or WARN of the kernel anywhere in its log fails the scenario. A user-space trap ("traps: prog[pid]
# general protection fault ... in busybox") is not a kernel failure: it is printed as a note (a step it broke fails
# on its own check).
check_no_oops() {
  local pat='Oops|BUG:|WARNING:|Call Trace|kernel BUG|RIP: 0010'
  if dmesg | grep -E -q "$pat"; then
    fail no-oops "$(dmesg | grep -E -m3 "$pat" | tr '\n' ' ')"
  else
    pass no-oops
  fi
  dmesg | grep -E 'traps: .*(general protection|segfault|trap)' | sed 's/^/note: user-space trap (not a kernel failure): /'
  return 0
}
# check_no_user_traps: FAIL if any process was killed by a segfault or general protection fault. For scenarios where
# nothing crashes on purpose: in the nested lab this is how a platform fault shows (Documentation/lab.md, "Dom0
# user-space corruption and eager FPU").
USER_TRAP_RE='segfault at|traps: .*general protection'
check_no_user_traps() {
  if dmesg | grep -E -q "$USER_TRAP_RE"; then
    fail no-user-traps "$(dmesg | grep -E -m3 "$USER_TRAP_RE" | tr '\n' ' ')"
    dmesg | grep -E -B1 "$USER_TRAP_RE" | tail -n 10
  else
    pass no-user-traps
  fi
}
# xen_guest_diag NAME: what a scenario prints when a Xen guest does not do what it should: the domain list, its
# vCPUs, the tail of its console logs (NAME--incoming after a migration) and of the hypervisor's log.
xen_guest_diag() {
  echo "--- diag: xl list / vcpu-list"
  xl list 2>&1
  xl vcpu-list "$1" 2>&1
  local f
  for f in /var/log/xen/console/guest-"$1"*.log; do
    echo "--- diag: console log $f (last 15 lines)"
    tail -n 15 "$f" 2>&1
  done
  echo "--- diag: xl dmesg (last 25 lines)"
  xl dmesg 2>&1 | tail -n 25
}
# Milliseconds since boot (for reporting how long a step took).
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
# wait_for SECS CMD...: polls CMD every 0.25 s until it succeeds (0) or SECS pass (1).
wait_for() {
  local secs=$1 i=0; shift
  while [ $i -lt $((secs * 4)) ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25; i=$((i + 1))
  done
  return 1
}
# repod_config LISTEN CAPACITY_MIB CLIENT_ID TOKEN: writes /tmp/repod.toml for one client (mode 600).
repod_config() {
  printf 'listen = "%s"\ncapacity_mib = %s\nmemlock = "try"\n[[client]]\nid = %s\nname = "dom0-host0"\ntoken = "%s"\n' \
    "$1" "$2" "$3" "$4" > /tmp/repod.toml
  chmod 600 /tmp/repod.toml
}
# start_repod ADDR CLIENT_ID TOKEN [SECS]: starts /overcast/bin/coopswap-repod on /tmp/repod.toml (written by the
# scenario; mode 600), logging to /tmp/repod.log, sets REPOD to its pid, and checks `repod-ready`: it answers a
# PING from that client within SECS (default 90; allocating and locking its capacity takes a while under TCG).
start_repod() {
  local addr=$1 id=$2 token=$3 secs=${4:-90}
  chmod 600 /tmp/repod.toml
  /overcast/bin/coopswap-repod --config /tmp/repod.toml >/tmp/repod.log 2>&1 &
  REPOD=$!
  repod_answers() {
    local i=0
    while [ $i -lt $secs ]; do
      COOPSWAP_TOKEN=$token /overcast/bin/coopswap-client --server "$addr" --client-id "$id" ping && return 0
      kill -0 $REPOD || return 1
      sleep 1; i=$((i + 1))
    done
    return 1
  }
  check repod-ready repod_answers
}
# udp_barrier NAME [SECS]: a pair barrier over UDP 5998 to $PEER that keeps working when this host's address moves
# to another interface (overcast-barrier's connection would not); udp_barrier_listen starts its receiver once.
udp_barrier_listen() { socat -u UDP-RECV:5998 OPEN:/tmp/barrier.log,creat,append & }
udp_barrier() {
  local i=0
  while [ $i -lt ${2:-300} ]; do
    echo "$1" | socat -u - UDP-SENDTO:$PEER:5998 2>/dev/null
    if grep -qx "$1" /tmp/barrier.log 2>/dev/null; then
      echo "$1" | socat -u - UDP-SENDTO:$PEER:5998 2>/dev/null
      return 0
    fi
    sleep 1; i=$((i + 1))
  done
  fail "barrier-$1" "the other host did not reach '$1' in ${2:-300} s"
  return 1
}
# guest_ns NS ADDR/PREFIX BRIDGE HOSTVETH [MAC]: a "guest" — network namespace NS whose veth1 (MTU 1450, MAC if
# given) has ADDR — behind BRIDGE (made if missing) through the host end HOSTVETH, as a VM's back-end interface
# sits next to an endpoint's interface in Fig. 5.7. Uses iproute2's ip (netns), not busybox's.
guest_ns() {
  /usr/sbin/ip netns add $1
  /usr/sbin/ip link add $4 type veth peer name veth1
  /usr/sbin/ip link set veth1 netns $1
  /usr/sbin/ip -n $1 link set lo up
  /usr/sbin/ip -n $1 link set veth1 ${5:+address $5} mtu 1450 up
  /usr/sbin/ip -n $1 addr add $2 dev veth1
  test -d /sys/class/net/$3 || { /usr/sbin/ip link add $3 type bridge && /usr/sbin/ip link set $3 up; }
  /usr/sbin/ip link set $4 master $3 up
}
# --- VirtualWire scenarios (vwire-migrate, vwire-xen-migrate) ------------------------------------------------------
# counter N LOCAL KEY: a counter (or other field, e.g. ifname) of the entry of connector N receiving on LOCAL.
counter() { awk -F': ' -v l="$2" -v k="$3" '$1=="local"{m=($2==l)} m&&$1==k{print $2; exit}' /proc/vw/$1; }
# grows N LOCAL NS PEER: rx_frames and tx_frames of that entry grow while NS pings PEER.
grows() {
  local rx0 tx0 rx1 tx1
  rx0=$(counter $1 $2 rx_frames); tx0=$(counter $1 $2 tx_frames)
  /usr/sbin/ip netns exec $3 ping -c 3 -i 0.3 -W 2 $4 || return 1
  rx1=$(counter $1 $2 rx_frames); tx1=$(counter $1 $2 tx_frames)
  echo "entry $1 $2: rx_frames $rx0 -> $rx1, tx_frames $tx0 -> $tx1"
  [ -n "$rx0" ] && [ "$rx1" -gt "$rx0" ] && [ "$tx1" -gt "$tx0" ]
}
# gap_ok FILE: vwire-migrate's output shows the flow resumed after the move and was dark (every datagram lost) for
# at most GAP_MAX_MS (set by the scenario). The receiver's longest silence is printed too; it also counts the time
# this host did not run the probe at all (TCG on a loaded machine), so it is not what is asserted.
gap_ok() {
  local ms sil
  grep '^gap: sent=' "$1" | grep -q 'resumed=yes' || { echo "flow did not resume"; return 1; }
  ms=$(sed -n 's/^gap: .*outage_ms=\([0-9.]*\).*/\1/p' "$1")
  sil=$(sed -n 's/^gap: .*longest_silence_ms=\([0-9.]*\).*/\1/p' "$1")
  echo "outage $ms ms (bound $GAP_MAX_MS ms), longest silence at the receiver $sil ms"
  awk -v m="$ms" -v b="$GAP_MAX_MS" 'BEGIN { exit !(m != "" && m + 0 <= b + 0) }'
}
