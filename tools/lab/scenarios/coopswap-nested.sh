#!/bin/sh
# Cooperative swap in the Blanket Dom0 (issue 4, dissertation §6.1.2, §6.2.4): the paper's client sits in Domain 0,
# below the guest, so it stays guest-agnostic. Dom0 creates /dev/coopswap0 (local write-through store: a zram disk in
# Dom0; page repository: coopswap-repod), and a PV guest gets it as its swap disk through blkback
# (`phy:/dev/coopswap0,xvdb,w`). The guest runs the memory hog of guest-init (overcast.guest_hog=MIB: a tmpfs file
# larger than its memory, checksummed round after round), so its pages go guest → blkfront → blkback → coopswap →
# repository + local store and back. Checks: every round ok and none BAD, the guest really swapped (the guest's swap
# use, blkback's request counters, coopswap's counters: pages stored on and fetched from the repository), the device
# cannot be powered off or the module unloaded while the guest uses it, and a clean teardown.
#
# Topologies:
#   nested                        the repository runs in the same Dom0 (127.0.0.1:7400). Dom0 itself is not under
#                                 memory pressure here (the guest is), so the repository is not caught in the
#                                 swapping (unlike coopswap-swap's single VM).
#   pair --pair-kind nested       the repository runs in host 1's Dom0 (10.99.0.2:9400), as in the dissertation
#                                 (other machines' Domain 0); host 0 runs the guest.
# Tunables (environment): COOPSWAP_NESTED_HOG_MIB (160), COOPSWAP_NESTED_GUEST_MIB (128), COOPSWAP_NESTED_ROUNDS (2).
. /overcast/tests/lib.sh
M=/overcast/modules
B=/overcast/bin
C=/sys/kernel/config/coopswap
D=$C/0
TOKEN=5a0c3e7b91d24f68a7e0b3c5d9f1a246
CLIENT=3
GUEST=csn-guest
GLOG=/var/log/xen/console/guest-$GUEST.log
GUEST_MIB=${COOPSWAP_NESTED_GUEST_MIB:-128}
HOG_MIB=${COOPSWAP_NESTED_HOG_MIB:-160}
ROUNDS=${COOPSWAP_NESTED_ROUNDS:-2}
me=${OVERCAST_HOST:-0}
if [ "${OVERCAST_TOPOLOGY:-nested}" = pair ]; then
  PAIR=1 REPO=10.99.0.2:9400 LISTEN=0.0.0.0:9400 PING=127.0.0.1:9400
else
  PAIR=0 REPO=127.0.0.1:7400 LISTEN=127.0.0.1:7400 PING=127.0.0.1:7400
fi
barrier() { if [ "$PAIR" = 1 ]; then check "barrier-$1" overcast-barrier "$1" "${2:-900}"; fi; }
stat_of() { awk -v k="$1" '$1 == k {print $2}' $D/stats; }
ok_rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* ok" "$GLOG" 2>/dev/null || true; }
bad_rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* BAD" "$GLOG" 2>/dev/null || true; }

run_repository() {
  cat > /tmp/repod.toml <<EOT
listen = "$LISTEN"
capacity_mib = 256
memlock = "try"
[[client]]
id = $CLIENT
name = "dom0-host0"
token = "$TOKEN"
EOT
  start_repod "$PING" "$CLIENT" "$TOKEN"
  # The repository's warnings go to the console as they happen (a malformed request, a refused client).
  tail -f /tmp/repod.log 2>/dev/null | awk '/WARN/ { print "repod: " $0; fflush() }' &
}

check dom0 grep -q control_d /proc/xen/capabilities

if [ "$PAIR" = 1 ] && [ "$me" = 1 ]; then
  # --- host 1: the page repository, in this Dom0 -----------------------------------------------------------------
  run_repository
  barrier repo-ready
  barrier guest-done 1800
  tail -n 5 /tmp/repod.log
  check repod-alive kill -0 $REPOD
  kill $REPOD
  barrier all-done
  check_no_oops
  exit $OVC_FAILS
fi

# --- the guest's host: Dom0 with the cooperative-swap device ---------------------------------------------------------
mount -t configfs none /sys/kernel/config 2>/dev/null
ip link set lo up 2>/dev/null
check insmod-coopswap insmod $M/coopswap.ko
check zram-store sh -c 'echo 288M > /sys/block/zram0/disksize'
check configure sh -c "mkdir $D && echo 256 > $D/size_mib && echo /dev/zram0 > $D/store && echo 1 > $D/power"
check dev-appears test -b /dev/coopswap0
[ "$PAIR" = 0 ] && run_repository
barrier repo-ready
check repo-add sh -c "echo 'add $REPO $CLIENT $TOKEN' > $D/repos && grep -q '^0 $REPO client $CLIENT up' $D/repos"

# The guest: its swap disk (xvdb) is /dev/coopswap0 through blkback.
check guest-started overcast-guest-boot --name $GUEST --memory $GUEST_MIB --disk 'phy:/dev/coopswap0,xvdb,w' \
  --extra "overcast.guest_hog=$HOG_MIB" --keep --timeout 400
DOMID=$(xl domid $GUEST 2>/dev/null)
echo "coopswap-nested: guest $GUEST is domain $DOMID, hog $HOG_MIB MiB in $GUEST_MIB MiB"
VBD=/sys/bus/xen-backend/devices/vbd-$DOMID-51728
check blkback-vbd test -e $VBD/statistics/rd_req
# blkback's physical_device is the backing device's major:minor in hex: it must be /dev/coopswap0.
want=$(awk -F: '{ printf "%x:%x\n", $1, $2 }' /sys/block/coopswap0/dev)
echo "coopswap-nested: blkback physical_device $(cat $VBD/physical_device 2>&1), coopswap0 is $want"
check blkback-on-coopswap sh -c "[ \"\$(cat $VBD/physical_device)\" = $want ]"
check device-opened-by-blkback sh -c "grep -q '^openers [1-9]' $D/state"
check_fails power-off-refused-in-use "busy" sh -c "echo 0 > $D/power"
check_fails rmmod-refused-in-use "unavailable" rmmod coopswap
check guest-hog-ready wait_for 900 grep -q "OVERCAST-GUEST-HOG ready" $GLOG
grep "OVERCAST-GUEST-HOG\|OVERCAST-GUEST-UP" $GLOG
check guest-hog-rounds wait_for 1200 sh -c "[ \$(grep -c 'OVERCAST-GUEST-HOG round [0-9]* \(ok\|BAD\)' $GLOG) -ge $ROUNDS ]"
grep "OVERCAST-GUEST-HOG" $GLOG | tail -n 6
check guest-rounds-ok sh -c "[ $(ok_rounds) -ge $ROUNDS ]"
check guest-never-bad sh -c "[ $(bad_rounds) = 0 ] && ! grep -q 'OVERCAST-GUEST-HOG ERROR' $GLOG"
# The guest really swapped: its rounds report swap in use, blkback served requests both ways, and coopswap stored
# pages on the repository and fetched them back (with the local copies written through).
check guest-swap-used grep -q "OVERCAST-GUEST-HOG round [0-9]* ok swap_kb=[1-9]" $GLOG
echo "coopswap-nested: blkback vbd-$DOMID-51728: rd_req $(cat $VBD/statistics/rd_req) wr_req $(cat $VBD/statistics/wr_req) rd_sect $(cat $VBD/statistics/rd_sect) wr_sect $(cat $VBD/statistics/wr_sect)"
check blkback-reads sh -c "[ \$(cat $VBD/statistics/rd_req) -gt 0 ]"
check blkback-writes sh -c "[ \$(cat $VBD/statistics/wr_req) -gt 0 ]"
cat $D/state $D/repos $D/stats
[ "$PAIR" = 0 ] && grep -v DEBUG /tmp/repod.log | tail -n 5
check coopswap-writes sh -c "[ \$(cat $D/writes) -gt 1000 ]"
check coopswap-stores sh -c "[ $(stat_of remote_stores) -gt 1000 ]"
check coopswap-fetches sh -c "[ $(stat_of remote_reads) -gt 0 ]"
check coopswap-no-io-errors sh -c "[ $(stat_of io_errors) = 0 ] && [ $(stat_of local_write_errors) = 0 ]"
check repo-still-up sh -c "grep -q '^0 $REPO client $CLIENT up' $D/repos"

# --- teardown: the guest, then the device and the module -------------------------------------------------------------
check guest-destroyed xl destroy $GUEST
check blkback-vbd-gone wait_for 60 sh -c "! test -e $VBD"
check device-released wait_for 30 sh -c "grep -q '^openers 0' $D/state"
check power-off sh -c "echo 0 > $D/power"
check rmdir-dev rmdir $D
check rmmod-coopswap rmmod coopswap
if [ "$PAIR" = 0 ]; then
  tail -n 5 /tmp/repod.log
  check repod-alive kill -0 $REPOD
  kill $REPOD
fi
barrier guest-done
barrier all-done
check_no_oops
exit $OVC_FAILS
