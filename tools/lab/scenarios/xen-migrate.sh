#!/bin/sh
# Live migration of a Blanket guest between two Blanket Xen hosts (pair --pair-kind nested; Dom0s on 10.99.0.1 and
# 10.99.0.2; one virtio disk, /dev/vda, opened by both QEMUs: the shared storage of the guest's swap disk).
# Host 0 boots a PV guest that pages under a memory hog (guest-init's overcast.guest_hog: a tmpfs file larger than
# its memory, checksummed round after round), then `xl migrate`s it live to host 1 over TCP (`-s ''`: xl runs the
# "host" string, `nc 10.99.0.2 8002`, as its channel instead of ssh; host 1 runs `xl migrate-receive` under nc -e).
# Host 1 must then run the guest, and every checksum round there must be ok — including the pages that were on the
# swap disk and the pages dirtied during the pre-copy rounds. Needs a hypervisor with shadow paging
# (scripts/build-xen): PV log-dirty mode.
. /overcast/tests/lib.sh
GUEST=mig-guest
GLOG=/var/log/xen/console/guest-$GUEST.log
MEM=${XEN_MIGRATE_MEM_MIB:-64}
HOG=${XEN_MIGRATE_HOG_MIB:-80}
me=${OVERCAST_HOST:-0}
barrier() { check "barrier-$1" overcast-barrier "$1" "${2:-900}"; }
rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* ok" "$GLOG" 2>/dev/null || true; }
bad_rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* BAD" "$GLOG" 2>/dev/null || true; }
check shared-disk test -b /dev/vda
check shadow-paging sh -c "xl dmesg | grep -q 'Compiled-in support:.*SHADOW_PAGING'"

if [ "$me" = 1 ]; then
  # xenconsoled names a guest's console log when the domain is introduced, and `xl migrate-receive` introduces it
  # as NAME--incoming (renamed to NAME only once the move is complete): the console of the moved guest on this
  # host is in guest-NAME--incoming.log, which starts empty at the move.
  GLOG=/var/log/xen/console/guest-$GUEST--incoming.log
  printf '#!/bin/sh\nexec xl migrate-receive\n' > /tmp/recv.sh && chmod 755 /tmp/recv.sh
  ( nc -l -p 8002 -e /tmp/recv.sh; echo "receiver exited $?" ) > /tmp/receive.log 2>&1 &
  barrier mig-ready
  barrier mig-done 1800
  check guest-arrived sh -c "xl list | grep -q '^$GUEST '"
  xl list
  cat /tmp/receive.log
  check receiver-started-domain grep -q 'migration target: Domain started' /tmp/receive.log
  r0=$(rounds)
  # First a heartbeat (the guest is scheduled and its timers fire here), then a whole new hog round (its memory,
  # including the pages on the swap disk, is readable here).
  check guest-alive-here wait_for 300 grep -q "OVERCAST-GUEST-TICK" "$GLOG"
  check guest-runs-here wait_for 600 sh -c "[ \$(grep -c 'OVERCAST-GUEST-HOG round [0-9]* ok' $GLOG) -ge $((r0 + 1)) ]"
  [ $OVC_FAILS = 0 ] || xen_guest_diag $GUEST
  grep "OVERCAST-GUEST-HOG" "$GLOG" | tail -n 3
  check guest-memory-intact-here sh -c "[ $(bad_rounds) = 0 ]"
  check guest-destroyed xl destroy $GUEST
  barrier mig-end
  check_no_oops
  exit $OVC_FAILS
fi

check guest-started overcast-guest-boot --name $GUEST --memory $MEM --disk 'phy:/dev/vda,xvdb,w' \
  --extra "overcast.guest_hog=$HOG" --keep --timeout 300
check guest-hog-ready wait_for 600 grep -q "OVERCAST-GUEST-HOG ready" $GLOG
check guest-first-round wait_for 600 sh -c "[ \$(grep -c 'OVERCAST-GUEST-HOG round [0-9]* ok' $GLOG) -ge 1 ]"
grep "OVERCAST-GUEST-HOG" $GLOG | tail -n 2
barrier mig-ready
t0=$(now_ms)
check xl-migrate xl migrate -s '' $GUEST "nc 10.99.0.2 8002"
t1=$(now_ms)
cat /tmp/check.out | grep -v '^xc: detail' | tail -n 20
echo "xen-migrate: xl migrate of a ${MEM} MiB guest paging under a ${HOG} MiB hog took $((t1 - t0)) ms"
check guest-left-this-host sh -c "! xl list | grep -q '^$GUEST '"
check guest-intact-before-move sh -c "[ $(bad_rounds) = 0 ]"
barrier mig-done
barrier mig-end
check_no_oops
exit $OVC_FAILS
