#!/bin/sh
# Overdriver ends a sustained overload with a real live migration between two Blanket Xen hosts (issue 5,
# dissertation §6.2.1, §6.2.4). Topology: pair --pair-kind nested (two QEMUs, each Xen 4.17 + our Dom0, Dom0s on
# 10.99.0.1 / 10.99.0.2), and one virtio disk that both QEMUs open (the shared storage a migration needs, like the
# paper's testbed): the guest's swap disk, `phy:/dev/vda` = xvdb.
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
# The shared disk: the only virtio disk, /dev/vda, in both Dom0s.
check shared-disk test -b /dev/vda

if [ "$me" = 1 ]; then
  # xenconsoled names a guest's console log when the domain is introduced, and `xl migrate-receive` introduces it
  # as NAME--incoming (renamed to NAME only once the move is complete): the console of the moved guest on this
  # host is in guest-NAME--incoming.log, which starts empty at the move.
  GLOG=/var/log/xen/console/guest-$GUEST--incoming.log
  # --- host 1: the migration target ----------------------------------------------------------------------------
  # The receiving end of the migrate action: `xl migrate` on host 0 talks to `xl migrate-receive` here over one TCP
  # connection on port 8002 (nc -e runs the receiver with the socket as its stdin and stdout).
  printf '#!/bin/sh\nexec xl migrate-receive\n' > /tmp/recv.sh && chmod 755 /tmp/recv.sh
  ( nc -l -p 8002 -e /tmp/recv.sh; echo "receiver exited $?" ) > /tmp/receive.log 2>&1 &
  RECV=$!
  barrier od-ready 900
  barrier od-migrated $((MIGRATE_SECS + 300))
  check guest-arrived wait_for 300 sh -c "xl list | grep -q '^$GUEST '"
  xl list
  grep -v '^domainbuilder\|^xc: detail' /tmp/receive.log | tail -n 30
  # The guest runs here: its console (now logged by this Dom0's xenconsoled) shows new rounds, all ok.
  r0=$(rounds)
  check guest-runs-here wait_for 400 sh -c "[ \$(grep -c 'OVERCAST-GUEST-HOG round [0-9]* ok' $GLOG) -ge $((r0 + 1)) ]"
  check guest-memory-intact-here sh -c "[ $(bad_rounds) = 0 ]"
  grep "OVERCAST-GUEST-HOG" "$GLOG" | tail -n 5
  check receive-log-clean sh -c "grep -q 'migration target: Domain started' /tmp/receive.log && ! grep -qi 'error\|fail' /tmp/receive.log"
  check guest-destroyed xl destroy $GUEST
  kill $RECV 2>/dev/null
  barrier od-end
  check_no_oops
  exit $OVC_FAILS
fi

# --- host 0: the overloaded host ------------------------------------------------------------------------------------
mkdir -p $W/state
check guest-started overcast-guest-boot --name $GUEST --memory $GUEST_MIB --disk 'phy:/dev/vda,xvdb,w' \
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
# with CONFIG_SHADOW_PAGING (scripts/build-xen). The swap disk is on the shared storage.
cat > $W/migrate.sh <<'EOT'
#!/bin/sh
# migrate.sh DOMAIN TARGET
echo "migrate $1 $2" >> /tmp/od/actions
exec xl migrate -s '' "$1" "nc $2 8002"
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
cat $ACT
grep -v ' DEBUG ' $LOG | tail -n 25
check agent-stops kill $AGENT
wait $AGENT 2>/dev/null
barrier od-end
check_no_oops
exit $OVC_FAILS
