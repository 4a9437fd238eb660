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
#                                 (other machines' Domain 0); host 0 runs the guest. Then the guest moves to host 1
#                                 with its swap state (§6.2.4, "Both the data structure and the swap pages on disk
#                                 must be migrated with a VM"), by default live: host 0 runs `xl migrate` to host 1,
#                                 whose `xl migrate-receive -p` leaves the arrived guest paused, its blkback already
#                                 holding host 1's fresh /dev/coopswap0; once the source domain is gone, host 0's
#                                 `coopswap-move send` exports its device's page map, sends it and, once host 1's
#                                 `coopswap-move receive` imported it into its open device (its local store empty:
#                                 local copies do not move, so every page comes from the repository), powers its
#                                 device off; host 1 then unpauses the guest. With
#                                 COOPSWAP_NESTED_MOVE=save the move is stop-and-copy instead: `xl save` on host 0,
#                                 the save file sent along with the map, `xl restore` on host 1 after the import.
#                                 Either way the guest must go on with its checksum rounds, all ok, its swapped-out
#                                 pages fetched from the repository through host 1's device. For the live move the
#                                 hog sleeps 90 s after each round (overcast.guest_hog_pause), so that the pre-copy
#                                 converges: a guest dirtying its memory as fast as it pages takes minutes under TCG.
# Tunables (environment): COOPSWAP_NESTED_HOG_MIB (160; pair 96), COOPSWAP_NESTED_GUEST_MIB (128; pair 64),
# COOPSWAP_NESTED_ROUNDS (2; pair 1, before the move), COOPSWAP_NESTED_MOVE (pair: live or save; live).
. /overcast/tests/lib.sh
M=/overcast/modules
B=/overcast/bin
C=/sys/kernel/config/coopswap
D=$C/0
TOKEN=5a0c3e7b91d24f68a7e0b3c5d9f1a246
CLIENT=3
GUEST=csn-guest
GLOG=/var/log/xen/console/guest-$GUEST.log
me=${OVERCAST_HOST:-0}
if [ "${OVERCAST_TOPOLOGY:-nested}" = pair ]; then
  PAIR=1 REPO=10.99.0.2:9400 LISTEN=0.0.0.0:9400 PING=127.0.0.1:9400
  GUEST_MIB=${COOPSWAP_NESTED_GUEST_MIB:-64} HOG_MIB=${COOPSWAP_NESTED_HOG_MIB:-96} ROUNDS=${COOPSWAP_NESTED_ROUNDS:-1}
else
  PAIR=0 REPO=127.0.0.1:7400 LISTEN=127.0.0.1:7400 PING=127.0.0.1:7400
  GUEST_MIB=${COOPSWAP_NESTED_GUEST_MIB:-128} HOG_MIB=${COOPSWAP_NESTED_HOG_MIB:-160} ROUNDS=${COOPSWAP_NESTED_ROUNDS:-2}
fi
MOVE=${COOPSWAP_NESTED_MOVE:-live}
HOG_EXTRA=
[ "$PAIR" = 1 ] && [ "$MOVE" = live ] && HOG_EXTRA="overcast.guest_hog_pause=90"
# The page map travels from host 0 to host 1 over TCP 9500: live, with coopswap-move (its frame's CRC-32C; the
# receiver imports it); for a save, with the save file, through tar and socat, with their md5s.
XFER=/tmp/xfer
barrier() { if [ "$PAIR" = 1 ]; then check "barrier-$1" overcast-barrier "$1" "${2:-900}"; fi; }
stat_of() { awk -v k="$1" '$1 == k {print $2}' $D/stats; }
ok_rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* ok" "$GLOG" 2>/dev/null || true; }
bad_rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* BAD" "$GLOG" 2>/dev/null || true; }

run_repository() {
  repod_config $LISTEN 256 $CLIENT $TOKEN
  start_repod "$PING" "$CLIENT" "$TOKEN"
  # The repository's warnings go to the console as they happen (a malformed request, a refused client).
  tail -f /tmp/repod.log 2>/dev/null | awk '/WARN/ { print "repod: " $0; fflush() }' &
}

check dom0 grep -q control_d /proc/xen/capabilities

if [ "$PAIR" = 1 ] && [ "$me" = 1 ]; then
  # --- host 1: the page repository, in this Dom0; then the guest's destination -------------------------------------
  run_repository
  # A fresh device of the same size, with a local store of its own (empty: host 0's store is not copied). It exists
  # before the guest arrives: the guest's disk line names /dev/coopswap0.
  mount -t configfs none /sys/kernel/config 2>/dev/null
  check insmod-coopswap-dest insmod $M/coopswap.ko
  check zram-store-dest sh -c 'echo 288M > /sys/block/zram0/disksize'
  check configure-dest sh -c "mkdir $D && echo 256 > $D/size_mib && echo /dev/zram0 > $D/store && echo 1 > $D/power"
  if [ "$MOVE" = live ]; then
    # xl on host 0 talks to `xl migrate-receive` here over TCP 8002 (nc -e); -p leaves the guest paused on arrival.
    printf '#!/bin/sh\nexec xl migrate-receive -p\n' >/tmp/recv.sh && chmod 755 /tmp/recv.sh
    (nc -l -p 8002 -e /tmp/recv.sh; echo "receiver exited $?") >/tmp/receive.log 2>&1 &
  fi
  mkdir -p $XFER
  if [ "$MOVE" = live ]; then
    # The tool receives the map and imports it into this device, which the arriving guest's blkback holds open.
    ($B/coopswap-move receive --device $D --listen 0.0.0.0:9500 --map-file $XFER/map.bin --timeout 2400 \
      >/tmp/move.log 2>&1; echo "received $?" >/tmp/xfer.done) &
  else
    (socat -u TCP-LISTEN:9500,reuseaddr - | tar -C $XFER -xf -; echo "received $?" >/tmp/xfer.done) &
  fi
  barrier repo-ready
  barrier moved 2400
  check xfer-received wait_for 300 test -s /tmp/xfer.done
  ls -l $XFER
  if [ "$MOVE" = live ]; then
    cat /tmp/move.log
    check move-received grep -qx "received 0" /tmp/xfer.done
  else
    check xfer-intact sh -c "cd $XFER && md5sum -c sums"
  fi
  if [ "$MOVE" = live ]; then
    grep -v '^domainbuilder\|^xc: detail' /tmp/receive.log | tail -n 8
    check guest-arrived-paused sh -c "xl list | grep '^$GUEST ' | awk '{ exit !(\$5 ~ /p/) }'"
    xl list
    # The arrived guest's blkback holds this device open, and nothing was read or written through it yet.
    check dest-device-open-by-blkback sh -c "grep -q '^openers [1-9]' $D/state"
  fi
  if [ "$MOVE" = live ]; then
    check map-import grep -q "coopswap-move: map from .* imported into $D" /tmp/move.log
  else
    check map-import sh -c "echo $XFER/map.bin > $D/map_import"
  fi
  dmesg | grep 'page map imported\|imported with' | tail -n 2
  [ "$MOVE" = live ] && check map-import-while-open sh -c "dmesg | grep -q 'coopswap0: imported with [1-9] openers'"
  # The map brought the repository (its address, client id and capability) with it.
  check map-brought-repository grep -q "^0 $REPO client $CLIENT up" $D/repos
  check map-import-counts sh -c "dmesg | grep 'page map imported' | tail -n 1 | grep -q ' 0 pages with no readable copy'"
  check_fails second-import-refused "busy" sh -c "echo $XFER/map.bin > $D/map_import"
  r0=$(stat_of remote_reads)
  if [ "$MOVE" = live ]; then
    check guest-unpaused xl unpause $GUEST
  else
    # The guest comes back here with its swap disk on this host's /dev/coopswap0 (the save file's configuration).
    check xl-restore xl restore $XFER/guest.save
  fi
  check guest-here sh -c "xl list | grep -q '^$GUEST '"
  # xenconsoled names the log when the domain is introduced here (guest-NAME--incoming.log for xl migrate-receive,
  # guest-NAME.log for xl restore): whichever this move made; it starts at the move.
  GLOG=$(ls -t /var/log/xen/console/guest-$GUEST*.log 2>/dev/null | head -n 1)
  echo "coopswap-nested: host 1: guest console in $GLOG"
  DOMID=$(xl domid $GUEST 2>/dev/null)
  VBD=/sys/bus/xen-backend/devices/vbd-$DOMID-51728
  want=$(awk -F: '{ printf "%x:%x\n", $1, $2 }' /sys/block/coopswap0/dev)
  check blkback-on-coopswap-dest wait_for 60 sh -c "[ \"\$(cat $VBD/physical_device)\" = $want ]"
  # A whole new checksum round here: every page of the hog's file read back, the swapped-out ones from the
  # repository through this device (its store has none of them).
  check guest-round-here wait_for 1500 sh -c "[ \$(grep -c 'OVERCAST-GUEST-HOG round [0-9]* \(ok\|BAD\)' $GLOG) -ge 1 ]"
  grep "OVERCAST-GUEST-HOG" $GLOG | tail -n 3
  check guest-rounds-ok-here sh -c "[ $(ok_rounds) -ge 1 ] && [ $(bad_rounds) = 0 ]"
  cat $D/state $D/repos $D/stats
  check swap-ins-from-repository sh -c "[ $(stat_of remote_reads) -gt $r0 ]"
  check coopswap-no-io-errors-dest sh -c "[ $(stat_of io_errors) = 0 ] && [ $(stat_of local_reads) = 0 ]"
  check guest-destroyed-dest xl destroy $GUEST
  check device-released-dest wait_for 60 sh -c "grep -q '^openers 0' $D/state"
  check power-off-dest sh -c "echo 0 > $D/power"
  check rmdir-dev-dest rmdir $D
  check rmmod-coopswap-dest rmmod coopswap
  barrier guest-done 600
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
  --extra "overcast.guest_hog=$HOG_MIB $HOG_EXTRA" --keep --timeout 400
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

if [ "$PAIR" = 1 ]; then
  # --- the move: the guest leaves, then its page map follows; the device is powered off -------------------------------
  mkdir -p $XFER
  t0=$(now_ms)
  if [ "$MOVE" = live ]; then
    check xl-migrate xl migrate -s '' $GUEST "nc 10.99.0.2 8002"
    grep -v '^xc: detail\|^domainbuilder' /tmp/check.out | tail -n 5
  else
    check xl-save xl save $GUEST $XFER/guest.save
  fi
  t1=$(now_ms)
  check guest-left sh -c "! xl list | grep -q '^$GUEST '"
  check blkback-vbd-gone wait_for 60 sh -c "! test -e $VBD"
  check device-released wait_for 30 sh -c "grep -q '^openers 0' $D/state"
  if [ "$MOVE" = live ]; then
    # Export, send, host 1's import, and only then this device off (its pages stay at the repository).
    check coopswap-move $B/coopswap-move send --device $D --to 10.99.0.2:9500 --map-file $XFER/map.bin --power-off
    cat /tmp/check.out
    FILES=map.bin
  else
    check map-export sh -c "echo $XFER/map.bin > $D/map_export"
    FILES="guest.save map.bin"
    (cd $XFER && md5sum $FILES >sums)
    check xfer-send sh -c "tar -C $XFER -cf - sums $FILES | socat -u - TCP:10.99.0.2:9500,retry=30"
  fi
  dmesg | grep 'page map exported' | tail -n 1
  t2=$(now_ms)
  echo "coopswap-nested: $MOVE: xl $((t1 - t0)) ms, then export and transfer $((t2 - t1)) ms ($(cd $XFER && du -ck $FILES | tail -n 1 | cut -f1) KiB)"
  # The source device must not serve the guest's pages any more; powering it off keeps them at the repository.
  if [ "$MOVE" = live ]; then
    check power-off sh -c "[ \"\$(cat $D/power)\" = 0 ]"
  else
    check power-off sh -c "echo 0 > $D/power"
  fi
  barrier moved
else
  # --- teardown: the guest, then the device and the module -----------------------------------------------------------
  check guest-destroyed xl destroy $GUEST
  check blkback-vbd-gone wait_for 60 sh -c "! test -e $VBD"
  check device-released wait_for 30 sh -c "grep -q '^openers 0' $D/state"
  check power-off sh -c "echo 0 > $D/power"
fi
check rmdir-dev rmdir $D
check rmmod-coopswap rmmod coopswap
if [ "$PAIR" = 0 ]; then
  tail -n 5 /tmp/repod.log
  check repod-alive kill -0 $REPOD
  kill $REPOD
fi
barrier guest-done 2400
barrier all-done
check_no_oops
exit $OVC_FAILS
