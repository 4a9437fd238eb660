#!/bin/sh
# The Overdriver agent on a VM swapping on coopswap (issue 5, dissertation §6.2): /dev/coopswap0 (zram as its local
# write-through store) is the VM's swap; the agent `overdriver` watches the device's configfs counters
# (reads + writes, pages/s) at 1 s intervals, with window 8 of 12 and a duration threshold of 10 s (the paper's
# 10 s / 120 s scaled down). Action templates are a script recording its arguments. A memory hog that verifies every
# byte (coopswap-memcheck) makes real paging: a short burst must be classified transient (the coopswap action only),
# a long one sustained (exactly one migrate, with the VM's domain and the advertised target that has room). A second
# configured VM whose device never pages must get no action.
. /overcast/tests/lib.sh
M=/overcast/modules
B=/overcast/bin
C=/sys/kernel/config/coopswap
D=$C/0
W=/tmp/od
ACT=$W/actions
LOG=$W/agent.log
RATE=${OVERDRIVER_LAB_RATE:-200}   # pages/s above which an interval is overloaded (the paper's default)

mount -t configfs none /sys/kernel/config 2>/dev/null
mkdir -p $W/state

count() { grep -c -- "$1" "$2" 2>/dev/null || true; }
pages() { echo $(( $(cat $D/reads) + $(cat $D/writes) )); }

# --- the VM's swap: /dev/coopswap0 with a zram local store -------------------------------------------------------
check insmod-coopswap insmod $M/coopswap.ko
check zram-size sh -c 'echo 384M > /sys/block/zram0/disksize'
check coopswap-dev sh -c "mkdir $D && echo 320 > $D/size_mib && echo /dev/zram0 > $D/store && echo 1 > $D/power"
check mkswap mkswap /dev/coopswap0
# The reserve for swap over the network (Documentation/coopswap.md, Quick start).
check min-free-kbytes sh -c 'echo 16384 > /proc/sys/vm/min_free_kbytes'
check swapon swapon /dev/coopswap0
# A second device that nobody swaps on: the counters of an idle VM.
check coopswap-idle-dev mkdir $C/1

# --- the agent ------------------------------------------------------------------------------------------------------
cat > $W/record.sh <<'EOT'
#!/bin/sh
# An action: record the number of arguments and the arguments.
echo "$# $*" >> /tmp/od/actions
EOT
chmod 755 $W/record.sh
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
coopswap = "$W/record.sh coopswap {vm} {domain}"
migrate = "$W/record.sh migrate {domain} {target} {memory_mib}"
timeout_secs = 10

[targets]
# blanket1 is this host (never chosen), tiny has too little room: the migration must go to blanket2.
hosts = [{ host = "blanket1", free_mib = 8192 }, { host = "tiny", free_mib = 512 }, { host = "blanket2", free_mib = 1536 }]
self_host = "blanket1"

[metrics]
file = "$W/metrics.prom"

[[vm]]
name = "guest1"
domain = "7"
memory_mib = 1024
source = { kind = "coopswap", dir = "$D" }

[[vm]]
name = "idle1"
domain = "8"
memory_mib = 1024
source = { kind = "coopswap", dir = "$C/1" }
EOT
check agent-binary test -x $B/overdriver
check agent-config $B/overdriver --config $W/overdriver.toml check-config
RUST_LOG=info $B/overdriver --config $W/overdriver.toml run >$LOG 2>&1 &
AGENT=$!
check agent-running wait_for 20 grep -Eq '"ticks": ([3-9]|[1-9][0-9]+),' $W/state/status.json
check agent-watches-coopswap grep -q "watching guest1 (domain 7, coopswap:$D" $LOG
check agent-idle-before sh -c "[ ! -s $ACT ] && $B/overdriver --config $W/overdriver.toml status | grep -q '^guest1 *normal'"

# --- the VM's memory allocation: a memory cgroup (memory.high) smaller than what the hog touches -------------------
# The hog is the VM's workload; memory.high plays the VM's allocation (the paper's VMs have less memory allocated than
# requested, §6.2.2), so the hog pages through /dev/coopswap0 while the agent and the shell keep their memory.
# memory.high, not memory.max: over it the kernel reclaims and throttles; a 4 MiB memory.max OOM-killed the hog when
# reclaim could not keep up with the slow (TCG) swap device.
G=/sys/fs/cgroup/guest1
ALLOC=${OVERDRIVER_LAB_ALLOC:-4}     # MiB
SHORT=${OVERDRIVER_LAB_SHORT:-5}     # MiB the hog touches: one pass is a short burst
check cgroup2 sh -c "mkdir -p /sys/fs/cgroup && (mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null; true) && echo +memory > /sys/fs/cgroup/cgroup.subtree_control"
check cgroup-alloc sh -c "mkdir -p $G && echo ${ALLOC}M > $G/memory.high"
# hog MIB SEED: one run of coopswap-memcheck in the cgroup: writes every page, reads every byte back (exit 0 = all right).
hog() { sh -c "echo \$\$ > $G/cgroup.procs && exec $B/coopswap-memcheck --mib $1 --passes 1 --seed $2"; }

# --- a short burst: transient, cooperative swap only ---------------------------------------------------------------
echo "overdriver: allocation ${ALLOC} MiB; short burst: coopswap-memcheck --mib $SHORT --passes 1"
p0=$(pages); t0=$(now_ms)
check short-burst-verified hog $SHORT 11
t1=$(now_ms); p1=$(pages)
echo "overdriver: short burst took $((t1 - t0)) ms, $((p1 - p0)) pages through coopswap0, $(( (p1 - p0) * 1000 / (t1 - t0 + 1) )) pages/s"
check short-burst-paged sh -c "[ $((p1 - p0)) -gt $((RATE * 2)) ]"
check short-burst-ended wait_for 15 grep -q ',guest1,[0-9.]*,transient$' $W/state/episodes.csv
check short-transient-started grep -q 'guest1: overload started (rate [0-9]*/s): transient, cooperative swap' $LOG
check short-coopswap-action sh -c "[ \"\$(cat $ACT)\" = '3 coopswap guest1 7' ]"
check short-no-migrate sh -c "! grep -q migrate $ACT && ! grep -q 'sustained overload' $LOG"
cat $ACT $W/state/episodes.csv

# --- a long burst: sustained, one migration to blanket2 ---------------------------------------------------------------
# The hog runs again and again until the migration action has run (in a cloud the VM then leaves the overloaded host)
# or 90 s passed; each run of coopswap-memcheck verifies every byte it wrote.
echo "overdriver: long burst: coopswap-memcheck --mib $SHORT --passes 1, repeated until the migration runs"
start=$(now_ms); seed=20; runs=0; bad=0
while ! grep -q migrate $ACT && [ $(( $(now_ms) - start )) -lt 90000 ]; do
  hog $SHORT $seed >$W/memcheck.out 2>&1 || { bad=$((bad + 1)); cat $W/memcheck.out; }
  seed=$((seed + 1)); runs=$((runs + 1))
done
t1=$(now_ms)
echo "overdriver: long burst took $((t1 - start)) ms, $runs hog runs"
check long-burst-verified sh -c "[ $bad = 0 ] && [ $runs -gt 0 ]"
check long-sustained grep -Eq 'guest1: sustained overload after [0-9]+ s \(([89]|1[012]) of 12 intervals overloaded, threshold 10 s\): migrate' $LOG
check long-after-threshold sh -c "s=\$(sed -n 's/.*guest1: sustained overload after \([0-9]*\) s.*/\1/p' $LOG | head -1); [ -n \"\$s\" ] && [ \$s -ge 10 ]"
check long-migrate-action wait_for 10 grep -q '^4 migrate 7 blanket2 1024$' $ACT
check long-migrated grep -q 'guest1: migrated to blanket2; profile reset' $LOG
check long-migrated-recorded grep -q ',guest1,[0-9.]*,migrated$' $W/state/episodes.csv
# Let the agent watch 6 more intervals (an overload after the migration, as the VM is still here, would be seen), then
# count: one migration, and nothing ever for the idle VM.
ticks() { sed -n 's/^ *"ticks": \([0-9]*\),$/\1/p' $W/state/status.json; }
ticks_at_least() { [ "$(ticks)" -ge "$1" ] 2>/dev/null; }
t=$(ticks)
check agent-ticks-on wait_for 20 ticks_at_least $((${t:-0} + 6))
check long-episode-over sh -c "$B/overdriver --config $W/overdriver.toml status | grep -q '^guest1 *normal'"
check exactly-one-migrate sh -c "[ \$(grep -c migrate $ACT) = 1 ]"
check coopswap-actions-only-guest1 sh -c "! grep -v '^3 coopswap guest1 7\$' $ACT | grep -v '^4 migrate 7 blanket2 1024\$' | grep -q ."
check idle-vm-untouched sh -c "! grep -q 'idle1: ' $LOG"
check metrics-migration grep -q 'overdriver_vm_migrations_total{vm="guest1"} 1' $W/metrics.prom
cat $ACT $W/state/episodes.csv
$B/overdriver --config $W/overdriver.toml status
grep -v ' DEBUG ' $LOG | tail -n 30

# --- teardown ---------------------------------------------------------------------------------------------------------
check agent-alive kill $AGENT
wait $AGENT 2>/dev/null
check swapoff swapoff /dev/coopswap0
check no-io-errors grep -q '^io_errors 0' $D/stats
check power-off sh -c "echo 0 > $D/power && rmdir $D $C/1"
check rmmod-coopswap rmmod coopswap
check_no_oops
exit $OVC_FAILS
