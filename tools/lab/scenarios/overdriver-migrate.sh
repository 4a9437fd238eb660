#!/bin/sh
# Overdriver ends a sustained overload with a real live migration between two Blanket Xen hosts (issue 5,
# dissertation §6.2.1, §6.2.4). Topology: pair --pair-kind nested (two QEMUs, each Xen 4.17 + our Dom0, Dom0s on
# 10.99.0.1 / 10.99.0.2). The guest's swap disk (xvdb) is cooperative swap, as in §6.2.4: host 0's /dev/coopswap0
# (local store: zram), its pages on the page repository in host 1's Dom0 (10.99.0.2:9400). The swap state moves with
# the guest: host 1 has a fresh /dev/coopswap0 waiting, and the migrate action, after `xl migrate`, sends the
# device's page map there with `coopswap-move send`; host 1's `coopswap-move receive` imports it into its device,
# which the arrived (paused) guest's blkback already holds, and unpauses the guest. (Until 2026-11-27 the swap disk
# was a virtio disk both QEMUs opened, shared storage as in the paper's testbed.)
#
# Host 0 runs a PV guest (64 MiB) that pages under a memory hog (80 MiB) (guest-init's overcast.guest_hog: a tmpfs file
# larger than its memory, read back and checksummed round after round). The agent `overdriver` in host 0's Dom0
# discovers the guest's swap disk in the Xen block back-end (/sys/bus/xen-backend/devices/vbd-<domid>-51728) and
# watches its request rate; the overload is sustained, so its migrate action moves the guest live to the advertised
# target with room, host 1 (`xl migrate` over TCP, see migrate.sh below). The guest must leave host 0, run on host 1,
# and go on checksumming its memory with every round ok — including the pages that were on its swap disk.
#
# In `make test` (scripts/run-tests); Documentation/overdriver-agent.md, "Moving a VM between two Xen hosts".
. /overcast/tests/lib.sh
B=/overcast/bin
M=/overcast/modules
D=/sys/kernel/config/coopswap/0
TOKEN=6b1d4f8a02c35e97b8f1c4d6e0a2b357
CLIENT=5
REPO=10.99.0.2:9400
W=/tmp/od
ACT=$W/actions
LOG=$W/agent.log
GUEST=od-guest
GLOG=/var/log/xen/console/guest-$GUEST.log
GUEST_MIB=64
HOG_MIB=${OVERDRIVER_MIGRATE_HOG_MIB:-80}
# A live migration of the paging guest took 8-11 minutes under nested TCG (shadow log-dirty pre-copy rounds; the
# whole scenario about 11.5 on an idle machine): the action's time-out and the waits for its end allow 20.
MIGRATE_SECS=1200
RATE=${OVERDRIVER_MIGRATE_RATE:-5}     # swap-disk requests/s above which an interval is overloaded (TCG is slow)
me=${OVERCAST_HOST:-0}
barrier() { check "barrier-$1" overcast-barrier "$1" "${2:-600}"; }

rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* ok" "$GLOG" 2>/dev/null || true; }
bad_rounds() { grep -c "OVERCAST-GUEST-HOG round [0-9]* BAD" "$GLOG" 2>/dev/null || true; }
stat_of() { awk -v k="$1" '$1 == k {print $2}' $D/stats; }
# The guest's swap device, /dev/coopswap0, on both hosts: 256 MiB, a zram local store.
mount -t configfs none /sys/kernel/config 2>/dev/null
check insmod-coopswap insmod $M/coopswap.ko
check zram-store sh -c 'echo 288M > /sys/block/zram0/disksize'
check coopswap-dev sh -c "mkdir $D && echo 256 > $D/size_mib && echo /dev/zram0 > $D/store && echo 1 > $D/power"

if [ "$me" = 1 ]; then
  # xenconsoled names a guest's console log when the domain is introduced, and `xl migrate-receive` introduces it
  # as NAME--incoming (renamed to NAME only once the move is complete): the console of the moved guest on this
  # host is in guest-NAME--incoming.log, which starts empty at the move.
  GLOG=/var/log/xen/console/guest-$GUEST--incoming.log
  # --- host 1: the migration target ----------------------------------------------------------------------------
  # The page repository of host 0's device.
  repod_config 0.0.0.0:9400 192 $CLIENT $TOKEN
  start_repod 127.0.0.1:9400 $CLIENT $TOKEN
  # The receiving end of the migrate action: `xl migrate` on host 0 talks to `xl migrate-receive` here over one TCP
  # connection on port 8002 (nc -e runs the receiver with the socket as its stdin and stdout); -p leaves the arrived
  # guest paused until its page map is here. Then the map: coopswap-move imports it into this host's device (the
  # guest's blkback holds it by then) and unpauses the guest.
  printf '#!/bin/sh\nexec xl migrate-receive -p\n' > /tmp/recv.sh && chmod 755 /tmp/recv.sh
  ( nc -l -p 8002 -e /tmp/recv.sh; echo "receiver exited $?" ) > /tmp/receive.log 2>&1 &
  RECV=$!
  ( $B/coopswap-move receive --device $D --listen 0.0.0.0:9500 --timeout 3000 --then "xl unpause $GUEST"; \
    echo "move exited $?" ) > /tmp/move.log 2>&1 &
  barrier repo-ready
  barrier od-ready 900
  barrier od-migrated $((MIGRATE_SECS + 300))
  check guest-arrived wait_for 300 sh -c "xl list | grep -q '^$GUEST '"
  xl list
  grep -v '^domainbuilder\|^xc: detail' /tmp/receive.log | tail -n 30
  check move-done wait_for 120 grep -q "^move exited" /tmp/move.log
  cat /tmp/move.log
  check map-imported-then-unpaused sh -c "grep -q 'coopswap-move: map from .* imported into $D' /tmp/move.log && grep -q 'ran .xl unpause $GUEST.' /tmp/move.log && grep -qx 'move exited 0' /tmp/move.log"
  dmesg | grep 'page map imported\|imported with' | tail -n 2
  check map-import-while-open sh -c "dmesg | grep -q 'coopswap0: imported with [1-9] openers'"
  check map-brought-repository grep -q "^0 $REPO client $CLIENT up" $D/repos
  r_remote=$(stat_of remote_reads)
  # The guest runs here: its console (now logged by this Dom0's xenconsoled) shows new rounds, all ok.
  r0=$(rounds)
  check guest-runs-here wait_for 400 sh -c "[ \$(grep -c 'OVERCAST-GUEST-HOG round [0-9]* ok' $GLOG) -ge $((r0 + 1)) ]"
  check guest-memory-intact-here sh -c "[ $(bad_rounds) = 0 ]"
  grep "OVERCAST-GUEST-HOG" "$GLOG" | tail -n 5
  cat $D/repos $D/stats
  # Its swapped-out pages came from the repository through this host's device (its own store had none of them).
  check swap-ins-from-repository-here sh -c "[ $(stat_of remote_reads) -gt $r_remote ] && [ $(stat_of io_errors) = 0 ]"
  check receive-log-clean sh -c "! grep -qi 'error\|fail' /tmp/receive.log"
  check guest-destroyed xl destroy $GUEST
  check device-released wait_for 60 sh -c "grep -q '^openers 0' $D/state"
  check coopswap-teardown sh -c "echo 0 > $D/power && rmdir $D && rmmod coopswap"
  kill $RECV $REPOD 2>/dev/null
  barrier od-end
  check_no_oops
  exit $OVC_FAILS
fi

# --- host 0: the overloaded host ------------------------------------------------------------------------------------
mkdir -p $W/state
barrier repo-ready
check repo-add sh -c "echo 'add $REPO $CLIENT $TOKEN' > $D/repos && grep -q '^0 $REPO client $CLIENT up' $D/repos"
check guest-started overcast-guest-boot --name $GUEST --memory $GUEST_MIB --disk 'phy:/dev/coopswap0,xvdb,w' \
  --extra "overcast.guest_hog=$HOG_MIB" --keep --timeout 300
DOMID=$(xl domid $GUEST)
echo "overdriver-migrate: guest $GUEST is domain $DOMID"
VBD=/sys/bus/xen-backend/devices/vbd-$DOMID-51728
check guest-swap-disk-backend test -e $VBD/statistics/rd_req
check guest-hog-ready wait_for 400 grep -q "OVERCAST-GUEST-HOG ready" $GLOG
grep "OVERCAST-GUEST-HOG" $GLOG

# The migrate action: a live migration, `xl migrate` (log-dirty pre-copy rounds while the guest runs, then a short
# stop-and-copy), with its channel a TCP connection to host 1's `xl migrate-receive` (`-s ''` makes xl run the "host"
# string as the transport instead of ssh). PV live migration needs log-dirty mode, which needs a hypervisor built
# with CONFIG_SHADOW_PAGING (scripts/build-xen). Then the guest's swap state: its device's page map to the target's
# device (coopswap-move; the target imports it and unpauses the guest), and this device off (its pages stay at the
# repository). A failed map move fails the action, as a failed migration does.
cat > $W/migrate.sh <<'EOT'
#!/bin/sh
# migrate.sh DOMAIN TARGET
echo "migrate $1 $2" >> /tmp/od/actions
xl migrate -s '' "$1" "nc $2 8002" || exit 1
exec /overcast/bin/coopswap-move send --device 0 --to "$2:9500" --power-off
EOT
chmod 755 $W/migrate.sh
cat > $W/overdriver.toml <<EOT
[agent]
interval_secs = 1
state_dir = "$W/state"

[detector]
overload_rate = $RATE.0
window = 12
window_overloaded = 8
sustained_secs = 10
quiet_intervals = 3

[profiler]
min_threshold_secs = 4

[actions]
coopswap = "sh -c 'echo coopswap \$0 >> $ACT' {domain}"
migrate = "$W/migrate.sh {domain} {target}"
timeout_secs = $MIGRATE_SECS

[targets]
# This host never takes its own VM; "small" has too little room; the migration must go to 10.99.0.2.
hosts = [{ host = "10.99.0.1", free_mib = 4096 }, { host = "small", free_mib = 64 }, { host = "10.99.0.2", free_mib = 512 }]
self_host = "10.99.0.1"

[discover]
blkback_root = "/sys/bus/xen-backend/devices"
blkback_devid = 51728
memory_mib = $GUEST_MIB

[metrics]
file = "$W/metrics.prom"
EOT
check agent-config $B/overdriver --config $W/overdriver.toml check-config
barrier od-ready
r_before=$(rounds)
t0=$(now_ms)
RUST_LOG=info $B/overdriver --config $W/overdriver.toml run >$LOG 2>&1 &
AGENT=$!
check agent-discovers-guest wait_for 30 grep -q "watching dom$DOMID (domain $DOMID, blkback:$VBD" $LOG
check agent-sustained wait_for 300 grep -Eq "dom$DOMID: sustained overload after [0-9]+ s \(([89]|1[012]) of 12 intervals overloaded, threshold 10 s\): migrate" $LOG
check migrate-action-args wait_for 10 grep -q "^migrate $DOMID 10.99.0.2\$" $ACT
check agent-migrated wait_for $MIGRATE_SECS grep -q "dom$DOMID: migrated to 10.99.0.2" $LOG
t1=$(now_ms)
echo "overdriver-migrate: agent start to migration done: $((t1 - t0)) ms; rounds on this host: $(( $(rounds) - r_before )) after the agent started"
check guest-left-this-host sh -c "! xl list | grep -q '^$GUEST '"
check guest-intact-before sh -c "[ $(bad_rounds) = 0 ]"
# One migration; a failed attempt (the action's exit status) is retried after the back-off and logged as such.
check exactly-one-migration sh -c "[ \$(grep -c 'migrated to' $LOG) = 1 ]"
check failed-attempts-retried sh -c "[ \$(grep -c '^migrate' $ACT) = \$((1 + \$(grep -c 'migrate attempt [0-9]* failed' $LOG))) ]"
check migration-recorded grep -q ",dom$DOMID,[0-9.]*,migrated\$" $W/state/episodes.csv
barrier od-migrated
# The VM is gone from this host: the agent forgets it without acting on it again.
check agent-forgets-guest wait_for 30 grep -q "dom$DOMID.*\(vanished\|gone\|removed\)" $LOG
# Before the move the guest's swap-ins came from the repository; after it this device is off, its map sent.
cat $D/stats
check coopswap-swapped-here sh -c "[ $(stat_of remote_stores) -gt 1000 ] && [ $(stat_of remote_reads) -gt 0 ] && [ $(stat_of io_errors) = 0 ]"
check coopswap-off-after-move sh -c "[ \"\$(cat $D/power)\" = 0 ] && dmesg | grep -q 'coopswap0: page map exported'"
check coopswap-teardown sh -c "rmdir $D && rmmod coopswap"
cat $ACT
grep -v ' DEBUG ' $LOG | tail -n 25
check agent-stops kill $AGENT
wait $AGENT 2>/dev/null
barrier od-end
check_no_oops
exit $OVC_FAILS
