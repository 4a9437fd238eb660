#!/bin/sh
# VirtualWire follows a real Xen guest across a live migration (dissertation §5.2.4, §5.2.3; issue 3 item 7).
# Topology: pair --pair-kind nested (two QEMUs, each Xen 4.17 + our Dom0; Dom0s on 10.99.0.1 and 10.99.0.2).
#
# Host 0 runs Blanket guest G (a PV domU, 192.168.9.1) whose vif is on bridge vwbr next to endpoint 7's interface
# (Fig. 5.7). G's sister is on host 0 too — network namespace s (192.168.9.2) behind bridge brs and the other
# endpoint of connector 7 — so the connector starts collapsed (§5.2.3, no encapsulation). The tool, run in host 0's
# Dom0, moves G to host 1 in the order of §5.2.4, with the hypervisor's move as its --switch step:
#   1. create endpoint 7 on host 1 (receiving on 10.99.0.2:4789, sending to the sister) and enslave it to vwbr there
#      (through `vwire-migrate serve` on host 1);
#   2. `xl migrate` G live to host 1 (xl's channel is `nc 10.99.0.2 8002`; host 1 runs `xl migrate-receive`), whose
#      vif comes up on vwbr there;
#   3. repoint the sister at host 1 (the connector encapsulates again, no manual step);
#   4. destroy the endpoint on host 0.
# Meanwhile s sends a sequence-numbered UDP flow (20 ms) to an echo in G (guest-init's overcast.guest_udp_echo, the
# tool appended to the guest's initramfs); the tool reports the gap the flow saw, which here includes Xen's
# stop-and-copy downtime. Then the guest must answer from host 1 through the connector, and the counters of both
# endpoints must grow. Move 2 brings the guest back the same way (the tool again in host 0's Dom0, where the probe's
# namespace is: source host 1 through its serve helper; the switch step asks host 1 over UDP to run `xl migrate`
# towards host 0): both ends are on host 0 again and the connector collapses again, with no manual step.
. /overcast/tests/lib.sh
M=/overcast/modules
VM=/overcast/bin/vwire-migrate
IP=/usr/sbin/ip
ip() { $IP "$@"; }
me=${OVERCAST_HOST:-0}
L=10.99.0.$((me + 1)) PEER=10.99.0.$((2 - me))
R=$PEER
GUEST=vw-guest
GIP=192.168.9.1 SIP=192.168.9.2 SMAC=02:76:77:00:09:02
RAMDISK=/tmp/initrd-vw.gz
# The longest outage the flow may see (ms). It includes the guest's stop-and-copy under nested TCG; the values
# measured are printed ("gap: ... outage_ms=...") and recorded in Documentation/vwire.md.
GAP_MAX_MS=${GAP_MAX_MS:-30000}
MIGRATE_SECS=900
udp_barrier_listen
barrier() { udp_barrier "$1" "${2:-600}"; }

# The guest's initramfs: the lab's network guest (initrd-net.gz) with vwire-migrate and the one library of it that
# image lacks appended as a second cpio archive (the kernel unpacks concatenated archives in order). Built the same
# on both hosts, so that the path in G's configuration exists on each.
guest_initrd() {
  local d=/tmp/ird lib
  rm -rf $d && mkdir -p $d/usr/bin $d/usr/lib/x86_64-linux-gnu || return 1
  cp $VM $d/usr/bin/ || return 1
  for lib in libgcc_s.so.1; do
    cp /usr/lib/x86_64-linux-gnu/$lib $d/usr/lib/x86_64-linux-gnu/ || return 1
  done
  (cd $d && find usr | cpio -o -H newc 2>/dev/null | gzip -c) >/tmp/initrd-extra.gz || return 1
  cat /overcast/guest/initrd-net.gz /tmp/initrd-extra.gz >$RAMDISK
}
# counter, grows and gap_ok: lib.sh. iface_of N LOCAL: the interface of connector N's entry receiving on LOCAL.
iface_of() { counter $1 $2 ifname; }
master_of() { basename "$(readlink /sys/class/net/$1/master 2>/dev/null)" 2>/dev/null; }

check dom0 grep -q control_d /proc/xen/capabilities
check shadow-paging sh -c "xl dmesg | grep -q 'Compiled-in support:.*SHADOW_PAGING'"
check insmod-vwire insmod $M/vwire.ko
check guest-initramfs guest_initrd
# The bridge the guest's vif joins, on both hosts (xl recreates the vif on the destination with the same bridge=).
check bridge-vwbr sh -c "$IP link add vwbr type bridge && $IP link set vwbr up"

if [ "$me" = 1 ]; then
  # --- host 1: the destination ---------------------------------------------------------------------------------------
  GLOG=/var/log/xen/console/guest-$GUEST--incoming.log
  printf '#!/bin/sh\nexec xl migrate-receive\n' >/tmp/recv.sh && chmod 755 /tmp/recv.sh
  (nc -l -p 8002 -e /tmp/recv.sh; echo "receiver exited $?") >/tmp/receive.log 2>&1 &
  RECV=$!
  # The tool on host 0 reaches this host's /proc/vw through its serve helper (read, write, attach).
  $VM serve --listen $L:7071 --ip-cmd $IP 2>/tmp/serve.log &
  SERVE=$!
  barrier ready
  barrier moved $((MIGRATE_SECS + 300))
  check guest-arrived wait_for 120 sh -c "xl list | grep -q '^$GUEST '"
  xl list
  grep -v '^domainbuilder\|^xc: detail' /tmp/receive.log | tail -n 15
  check receiver-started-domain grep -q 'migration target: Domain started' /tmp/receive.log
  DOMID=$(xl domid $GUEST 2>/dev/null)
  check dest-endpoint grep -q "^7 endpoint $L:4789 $R:4790 encapsulating$" /proc/vw/list
  VIF=$(iface_of 7 $L:4789)
  echo "vwire-xen-migrate: host 1: endpoint interface $VIF, guest domain $DOMID"
  check dest-endpoint-on-vwbr sh -c "[ \"$(master_of "$VIF")\" = vwbr ]"
  check guest-vif-on-vwbr sh -c "[ \"\$(basename \"\$(readlink /sys/class/net/vif$DOMID.0/master)\")\" = vwbr ]"
  barrier checked-there 300
  # Host 0's pings through the connector reached the guest here: this endpoint's counters.
  carried() { [ "$(counter 7 $L:4789 rx_frames)" -gt 0 ] && [ "$(counter 7 $L:4789 tx_frames)" -gt 0 ]; }
  check dest-endpoint-carried carried
  cat /proc/vw/7
  # --- move 2: host 0's tool brings the guest back; its switch step asks this host (UDP 5995) to run xl migrate ---
  socat -u UDP-RECV:5995 OPEN:/tmp/mig-req.log,creat,append &
  REQ=$!
  barrier back-ready
  check migrate-back-requested wait_for 300 grep -q migrate /tmp/mig-req.log
  xl migrate -s '' $GUEST "nc $R 8002" >/tmp/xl-back.out 2>&1
  rc=$?
  for i in 1 2 3 4 5; do echo "migrated $rc" | socat -u - UDP-SENDTO:$R:5994; sleep 0.2; done
  grep -v '^xc: detail\|^domainbuilder' /tmp/xl-back.out | tail -n 5
  check xl-migrate-back test $rc = 0
  barrier moved-back $((MIGRATE_SECS + 300))
  check guest-left-host1 sh -c "! xl list | grep -q '^$GUEST '"
  # The tool destroyed this host's endpoint through the serve helper: nothing of connector 7 is left here.
  check endpoint-gone-host1 sh -c "! test -e /proc/vw/7 && ! grep -q '^7 ' /proc/vw/list"
  kill $SERVE $RECV $REQ 2>/dev/null
  sed 's/^/serve log: /' /tmp/serve.log | tail -n 10
  barrier done
  check rmmod-vwire rmmod vwire
  check_no_oops
  exit $OVC_FAILS
fi

# --- host 0: the source; G and its sister s, connector 7 collapsed ------------------------------------------------------
GLOG=/var/log/xen/console/guest-$GUEST.log
check endpoint-guest-side sh -c "echo '7 $L:4789 $L:4790' > /proc/vw/create"
check endpoint-sister-side sh -c "echo '7 $L:4790 $L:4789' > /proc/vw/create"
GVW=$(iface_of 7 $L:4789) SVW=$(iface_of 7 $L:4790)
echo "vwire-xen-migrate: guest-side interface $GVW, sister-side $SVW"
guest_ns s $SIP/24 brs vs0 $SMAC
check endpoints-on-bridges sh -c "$IP link set $GVW master vwbr up && $IP link set $SVW master brs up"
check collapsed-before sh -c '[ "$(grep -c "^7 .* collapsed$" /proc/vw/list)" = 2 ]'
check guest-started overcast-guest-boot --name $GUEST --ramdisk $RAMDISK --memory 64 --vif --bridge vwbr \
  --extra "overcast.guest_ip=$GIP/24 overcast.guest_udp_echo=7000" --keep --timeout 400
check guest-echo-running grep -q "OVERCAST-GUEST-ECHO udp 7000" $GLOG
grep "OVERCAST-GUEST-ECHO" $GLOG | tr -d '\r'
DOMID=$(xl domid $GUEST 2>/dev/null)
check guest-vif-on-vwbr sh -c "[ \"\$(basename \"\$(readlink /sys/class/net/vif$DOMID.0/master)\")\" = vwbr ]"
check ping-guest-collapsed wait_for 60 $IP netns exec s ping -c 1 -W 2 $GIP
check collapsed-counters-grow grows 7 $L:4790 s $GIP
grep '^entry' /tmp/check.out
barrier ready

# --- the move ----------------------------------------------------------------------------------------------------------
PROBE="$IP netns exec s $VM probe --to $GIP:7000 --interval-ms 20 --max-secs $MIGRATE_SECS"
t0=$(now_ms)
$VM move --ip-cmd $IP --id 7 --source local --source-addr $L:4789 --dest tcp:$R:7071 --dest-addr $R:4789 \
  --bridge vwbr --sister local --probe "$PROBE" --probe-settle-ms 5000 \
  --switch "xl migrate -s '' $GUEST 'nc $R 8002'" >/tmp/move.out 2>&1
rc=$?
t1=$(now_ms)
grep -v '^xc: detail\|^domainbuilder' /tmp/move.out | sed 's/^/vwire-migrate: /'
echo "vwire-xen-migrate: the move (tool and xl migrate) took $((t1 - t0)) ms, exit $rc"
check move-succeeded test $rc = 0
check move-verified grep -q 'verify: sister sends to the destination: yes; source entry gone: yes' /tmp/move.out
check gap-bounded gap_ok /tmp/move.out
cat /tmp/check.out
check guest-left-this-host sh -c "! xl list | grep -q '^$GUEST '"
check source-endpoint-gone sh -c "! test -e /sys/class/net/$GVW && [ \"\$(grep -c '^7 ' /proc/vw/list)\" = 1 ]"
# The sister now encapsulates towards host 1: collapse ended by the repoint alone.
check sister-encapsulating grep -q "^7 endpoint $L:4790 $R:4789 encapsulating$" /proc/vw/list
barrier moved
check ping-guest-on-host1 wait_for 60 $IP netns exec s ping -c 1 -W 2 $GIP
check sister-counters-grow grows 7 $L:4790 s $GIP
grep '^entry' /tmp/check.out
# Full-size frames through the tunnel: s's veth has MTU 1450, the endpoints the path's 1500 less the 50 bytes of
# encapsulation; a bridge drops a frame longer than its port's MTU, so a 1450-byte packet must pass whole.
check ping-guest-full-size $IP netns exec s ping -c 2 -W 3 -s 1422 $GIP
cat /proc/vw/7
barrier checked-there 300

# --- move 2: back to host 0, where the sister is: the connector collapses again (§5.2.3) --------------------------------
# The tool runs here again (the probe's namespace is here); the source is host 1 through its serve helper, and the
# switch step asks host 1 to run `xl migrate` towards this host's receiver and waits for its answer (UDP 5994/5995).
printf '#!/bin/sh\nexec xl migrate-receive\n' >/tmp/recv.sh && chmod 755 /tmp/recv.sh
(nc -l -p 8002 -e /tmp/recv.sh; echo "receiver exited $?") >/tmp/receive.log 2>&1 &
RECV=$!
socat -u UDP-RECV:5994 OPEN:/tmp/mig-done.log,creat,append &
DONE_L=$!
cat >/tmp/migrate-back.sh <<SCRIPT
i=0
while ! grep -q migrated /tmp/mig-done.log 2>/dev/null; do
  [ \$i -lt $((MIGRATE_SECS * 10)) ] || exit 1
  [ \$((i % 20)) = 0 ] && echo migrate | socat -u - UDP-SENDTO:$R:5995
  sleep 0.1; i=\$((i + 1))
done
grep -q 'migrated 0' /tmp/mig-done.log
SCRIPT
barrier back-ready
$VM move --ip-cmd $IP --id 7 --source tcp:$R:7071 --source-addr $R:4789 --dest local --dest-addr $L:4789 \
  --bridge vwbr --sister local --probe "$PROBE" --probe-settle-ms 5000 --switch "sh /tmp/migrate-back.sh" \
  >/tmp/move2.out 2>&1
rc=$?
sed 's/^/vwire-migrate: /' /tmp/move2.out
check move-back-succeeded test $rc = 0
check move-back-verified grep -q 'verify: sister sends to the destination: yes; source entry gone: yes' /tmp/move2.out
check move-back-gap-bounded gap_ok /tmp/move2.out
cat /tmp/check.out
check guest-back-here sh -c "xl list | grep -q '^$GUEST '"
DOMID=$(xl domid $GUEST 2>/dev/null)
check guest-vif-back-on-vwbr sh -c "[ \"\$(basename \"\$(readlink /sys/class/net/vif$DOMID.0/master)\")\" = vwbr ]"
# Both ends on this host again: the repoint made the connector collapse, with no manual step.
check collapsed-again sh -c '[ "$(grep -c "^7 .* collapsed$" /proc/vw/list)" = 2 ]'
check new-endpoint-on-vwbr sh -c "[ \"$(master_of "$(iface_of 7 $L:4789)")\" = vwbr ]"
check ping-guest-collapsed-again wait_for 60 $IP netns exec s ping -c 1 -W 2 $GIP
check collapsed-again-counters-grow grows 7 $L:4790 s $GIP
grep '^entry' /tmp/check.out
barrier moved-back
check guest-destroyed xl destroy $GUEST
kill $RECV $DONE_L 2>/dev/null
barrier done
kill $(ip netns pids s) 2>/dev/null
ip netns del s
check rmmod-vwire rmmod vwire
check_no_oops
exit $OVC_FAILS
