#!/bin/sh
# coopswap in one VM (issue 4): /dev/coopswap0 configured through configfs with a zram disk as the local
# write-through store and a coopswap-repod on 127.0.0.1 as page repository; fio with data verification; swap under a
# memory hog that verifies every byte after swap-in, also with the repository killed mid-run; rmmod and power-off
# refused while swap is active; malformed configuration refused with the right errno and no state change.
. /overcast/tests/lib.sh
M=/overcast/modules
B=/overcast/bin
C=/sys/kernel/config/coopswap
D=$C/0
TOKEN=00112233445566778899aabbccddeeff
# wait_repod [PORT]: until the repository on 127.0.0.1:PORT (7400) answers a PING (at most 30 s).
wait_repod() {
  i=0
  while [ $i -lt 30 ]; do
    COOPSWAP_TOKEN=$TOKEN $B/coopswap-client --server 127.0.0.1:${1:-7400} --client-id 1 ping >/dev/null 2>&1 && return 0
    sleep 1; i=$((i + 1))
  done
  return 1
}

mount -t configfs none /sys/kernel/config 2>/dev/null
ip link set lo up 2>/dev/null

check insmod-coopswap insmod $M/coopswap.ko
check configfs-dir test -d $C
check mkdir-dev mkdir $D
check_fails mkdir-badname "invalid" mkdir $C/notanumber

# --- local store: a zram disk (the lab VM has no disk; zram keeps the swapped pages compressed in RAM) ------------
check zram-size sh -c 'echo 384M > /sys/block/zram0/disksize'

# --- configuration and bad input -----------------------------------------------------------------------------------
check_fails size-garbage "invalid" sh -c "echo lots > $D/size_mib"
check_fails size-zero "invalid" sh -c "echo 0 > $D/size_mib"
check_fails store-relative "invalid" sh -c "echo dev/zram0 > $D/store"
check_fails power-unconfigured "invalid" sh -c "echo 1 > $D/power"
check bad-input-changed-nothing sh -c "[ \"\$(cat $D/size_mib)\" = 0 ] && [ -z \"\$(cat $D/store)\" ] && [ \"\$(cat $D/power)\" = 0 ]"
check size-set sh -c "echo 320 > $D/size_mib"
check store-set sh -c "echo /dev/zram0 > $D/store"
check_fails store-missing-file "no such file" sh -c "echo /nonexistent > $D/store && echo 1 > $D/power"
check store-set-again sh -c "echo /dev/zram0 > $D/store"
check power-on sh -c "echo 1 > $D/power"
check dev-appears test -b /dev/coopswap0
check dev-size sh -c '[ "$(cat /sys/block/coopswap0/size)" = $((320 * 2048)) ]'
check dev-4k-blocks sh -c '[ "$(cat /sys/block/coopswap0/queue/logical_block_size)" = 4096 ]'
check_fails size-while-on "busy" sh -c "echo 64 > $D/size_mib"
check state-on sh -c "grep -q 'power on' $D/state"

# --- plain block device, local store only: fio writes and verifies every block ------------------------------------
check fio-verify-local fio --name=v --filename=/dev/coopswap0 --rw=randwrite --bs=4k --size=16M --direct=1 \
    --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --output=/tmp/fio1.out
check stats-count-writes sh -c "[ \$(cat $D/writes) -ge 4096 ] && [ \$(cat $D/reads) -ge 4096 ]"
check stats-local-reads sh -c "grep -q '^local_reads [1-9]' $D/stats"

# --- a local store that refuses writes for a moment ---------------------------------------------------------------
# Device 1's store is a sparse file on a 1 MiB tmpfs that a filler has filled, like a thin store whose disk is full:
# every new page fails with ENOSPC. With no repository a write completes only once its local copy is written, so
# the writer's retries are what the application sees. Space back within the retry window (about 3 s): the write
# finishes, correct. Space gone for good: the write fails with EIO after 10 tries, later writes get one try each,
# and the first write that succeeds again says so.
D1=$C/1
T=/mnt/tiny
stat1() { awk -v k="$1" '$1 == k {print $2}' $D1/stats; }
mkdir -p $T && mount -t tmpfs -o size=1m tiny $T && truncate -s 8M $T/store
check tiny-device sh -c "mkdir $D1 && echo 8 > $D1/size_mib && echo $T/store > $D1/store && echo 1 > $D1/power"
head -c 131072 /dev/urandom > /tmp/tiny.data
dd if=/dev/zero of=$T/fill bs=4k 2>/dev/null
( sleep 1; rm -f $T/fill ) &
check tiny-write-waits-for-space dd if=/tmp/tiny.data of=/dev/coopswap1 bs=128k count=1 oflag=direct
wait
check tiny-retried sh -c "[ $(stat1 local_write_retries) -ge 1 ] && [ $(stat1 local_write_errors) = 0 ]"
check tiny-retry-log sh -c "dmesg | grep -q 'coopswap1: local store write of slots [0-9]*..=[0-9]* to $T/store failed (ENOSPC); trying again'"
check tiny-data-intact sh -c "dd if=/dev/coopswap1 bs=128k count=1 iflag=direct 2>/dev/null | cmp - /tmp/tiny.data"
dd if=/dev/zero of=$T/fill bs=4k 2>/dev/null
check_fails tiny-write-fails-without-space "input/output error" \
    dd if=/tmp/tiny.data of=/dev/coopswap1 bs=128k count=1 seek=1 oflag=direct
# The request fails as soon as one of its pages has no copy; the other writer may still be retrying its part of the
# 32 pages then, so the count is awaited (it reaches 32 when that writer gives up too, within the 3-s window).
settle_errors() { for _ in $(seq 50); do [ "$(stat1 local_write_errors)" -ge 32 ] && break; sleep 0.1; done; }
settle_errors
check tiny-gave-up sh -c "dmesg | grep -q 'coopswap1: local store write of slots [0-9]*..=[0-9]* to $T/store failed (ENOSPC, 10 tries)' && grep -q '^local_write_errors 32\$' $D1/stats"
r1=$(stat1 local_write_retries)
check_fails tiny-failing-store-one-try "input/output error" \
    dd if=/tmp/tiny.data of=/dev/coopswap1 bs=4k count=1 seek=64 oflag=direct
check tiny-no-retry-while-failing test "$(stat1 local_write_retries)" = "$r1"
rm -f $T/fill
check tiny-works-again dd if=/tmp/tiny.data of=/dev/coopswap1 bs=128k count=1 seek=1 oflag=direct
check tiny-works-again-log sh -c "dmesg | grep -q 'coopswap1: local store $T/store takes writes again'"
check tiny-data-intact-again sh -c "dd if=/dev/coopswap1 bs=128k count=1 skip=1 iflag=direct 2>/dev/null | cmp - /tmp/tiny.data"
check tiny-teardown sh -c "echo 0 > $D1/power && rmdir $D1"
umount $T

# --- a page repository on 127.0.0.1 -----------------------------------------------------------------------------
cat > /tmp/repod.toml <<EOT
listen = "127.0.0.1:7400"
capacity_mib = 48
memlock = "try"
[[client]]
id = 1
token = "$TOKEN"
EOT
chmod 600 /tmp/repod.toml
if [ -x $B/coopswap-repod ]; then
  $B/coopswap-repod --config /tmp/repod.toml >/tmp/repod.log 2>&1 &
  REPOD=$!
  check repod-running wait_repod
else
  fail repod-binary "no $B/coopswap-repod in the overlay (cargo build --release -p coopswap-repod)"
fi
check_fails repo-add-wrong-token "permission denied" sh -c "echo 'add 127.0.0.1:7400 1 ffffffffffffffffffffffffffffffff' > $D/repos"
check_fails repo-add-garbage "invalid" sh -c "echo 'add nowhere 1 $TOKEN' > $D/repos"
check_fails repo-add-refused "refused" sh -c "echo 'add 127.0.0.1:7499 1 $TOKEN' > $D/repos"
check repo-bad-input-changed-nothing sh -c "[ -z \"\$(cat $D/repos)\" ]"
check repo-add sh -c "echo 'add 127.0.0.1:7400 1 $TOKEN' > $D/repos"
check repo-listed sh -c "grep -q '^0 127.0.0.1:7400 client 1 up' $D/repos"
FIO="fio --name=v --filename=/dev/coopswap0 --rw=randwrite --bs=4k --size=16M --direct=1 --ioengine=psync --verify=crc32c --verify_fatal=1"
check fio-verify-remote $FIO --do_verify=1 --output=/tmp/fio2.out
check stats-remote sh -c "grep -q '^remote_stores [1-9]' $D/stats && grep -q '^remote_reads [1-9]' $D/stats"
check repo-holds-pages sh -c "grep -q '^0 127.0.0.1:7400 client 1 up pages [1-9]' $D/repos"
cat $D/repos $D/stats

# --- store_layout: fixed (page p in slot p) or log (the next free slot) -------------------------------------------
# Device 2, 8 MiB on a file store, its own repository on port 7402. With the writers held (local_hold) fio writes 200
# random pages at queue depth 16 (each completes once the repository has it; the local copies wait in the 256
# buffers); released, the writers write what queued up. In place, 200 random pages are about 200 local writes;
# log-structured they went to 200 consecutive slots: at most 2 writes of up to 128 pages. Then the repository dies
# and fio verifies every block from the local copies, wherever the page map put them.
D2=$C/2
stat2() { awk -v k="$1" '$1 == k {print $2}' $D2/stats; }
sed 's/127.0.0.1:7400/127.0.0.1:7402/' /tmp/repod.toml > /tmp/repodL.toml && chmod 600 /tmp/repodL.toml
LFIO="fio --name=l --filename=/dev/coopswap2 --rw=randwrite --bs=4k --size=800k --direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c --verify_fatal=1"
truncate -s 8M /tmp/layout.store
check layout-default sh -c "mkdir $D2 && [ \"\$(cat $D2/store_layout)\" = fixed ]"
check_fails layout-garbage "invalid" sh -c "echo sideways > $D2/store_layout"
check_fails layout-binary "invalid" sh -c "printf 'log\\000x' | dd of=$D2/store_layout 2>&1"
check layout-bad-input-changed-nothing sh -c "[ \"\$(cat $D2/store_layout)\" = fixed ]"
# layout_round LAYOUT: the round above; leaves the number of local writes it took in /tmp/layout-LAYOUT.ios.
layout_round() {
  $B/coopswap-repod --config /tmp/repodL.toml >/tmp/repodL.log 2>&1 &
  RL=$!
  wait_repod 7402 || return 1
  { [ -d $D2 ] || mkdir $D2; } && echo $1 > $D2/store_layout && echo 8 > $D2/size_mib && echo /tmp/layout.store > $D2/store &&
    echo 1 > $D2/power && echo "add 127.0.0.1:7402 1 $TOKEN" > $D2/repos && echo 1 > $D2/local_hold || return 1
  ios=$(stat2 local_ios)
  $LFIO --do_verify=0 --output=/tmp/fio-layout.out || return 1
  echo 0 > $D2/local_hold
  i=0; while ! grep -qx 'local_queue 0' $D2/state && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  echo $(($(stat2 local_ios) - ios)) > /tmp/layout-$1.ios
  kill -9 $RL; wait $RL 2>/dev/null
  $LFIO --verify_only=1 --output=/tmp/fio-layout-verify.out || return 1
  [ "$(stat2 io_errors)" = 0 ] && [ "$(stat2 local_write_errors)" = 0 ] || return 1
  echo 0 > $D2/power && rmdir $D2
}
check layout-fixed-round layout_round fixed
check layout-fixed-in-place sh -c "[ \$(cat /tmp/layout-fixed.ios) -ge 180 ]"
check layout-log-round layout_round log
check layout-log-runs sh -c "[ \$(cat /tmp/layout-log.ios) -le 4 ]"
echo "coopswap: 200 random pages took $(cat /tmp/layout-fixed.ios) local writes in place, $(cat /tmp/layout-log.ios) log-structured"
check_fails layout-while-on "busy" sh -c "mkdir $D2 && echo 8 > $D2/size_mib && echo /tmp/layout.store > $D2/store && echo 1 > $D2/power && echo log > $D2/store_layout"
check layout-teardown sh -c "echo 0 > $D2/power && rmdir $D2"
rm -f /tmp/layout.store

# --- the repository dies: every block still correct, read from the local copy ------------------------------------
check fio-write-again $FIO --do_verify=0 --output=/tmp/fio3.out
kill -9 $REPOD 2>/dev/null; wait $REPOD 2>/dev/null
local_before=$(awk '/^local_reads/ {print $2}' $D/stats)
check fio-verify-repo-dead $FIO --verify_only=1 --output=/tmp/fio4.out
check repo-marked-down sh -c "grep -q '^0 127.0.0.1:7400 client 1 down pages 0' $D/repos"
check reads-served-locally sh -c "[ \$(awk '/^local_reads/ {print \$2}' $D/stats) -ge \$(($local_before + 4096)) ]"
check no-io-errors sh -c "grep -q '^io_errors 0' $D/stats"
cat $D/repos $D/stats

# --- drain, live: repository A's pages move to repository B while fio writes and verifies another region ----------
# (issue 4 item 4; Documentation/coopswap.md, "Draining a repository"). Indexes: 0 is the dead one above, 1 = A, 2 = B.
sed 's/127.0.0.1:7400/127.0.0.1:7401/' /tmp/repod.toml > /tmp/repodB.toml && chmod 600 /tmp/repodB.toml
$B/coopswap-repod --config /tmp/repod.toml >/tmp/repodA.log 2>&1 &
REPODA=$!
$B/coopswap-repod --config /tmp/repodB.toml >/tmp/repodB.log 2>&1 &
REPODB=$!
check repodA-running wait_repod
check repodB-running wait_repod 7401
check repo-add-A-B sh -c "echo 'add 127.0.0.1:7400 1 $TOKEN' > $D/repos && echo 'add 127.0.0.1:7401 1 $TOKEN' > $D/repos"
check fio-write-spread $FIO --do_verify=0 --output=/tmp/fio5.out
pages_of() { awk -v i="$1" '$1 == i { for (f = 1; f < NF; f++) if ($f == "pages") print $(f + 1) }' $D/repos; }
# held_at PORT: pages the repository on PORT holds for client 1 (its quota minus its room, from a PING).
held_at() { COOPSWAP_TOKEN=$TOKEN $B/coopswap-client --server 127.0.0.1:$1 --client-id 1 ping | awk '{ for (f = 1; f < NF; f++) { if ($f == "quota") q = $(f + 1); if ($f == "for") r = $(f + 1) } } END { print q - r }'; }
cat $D/repos
echo "coopswap: before the drain A holds $(held_at 7400) pages, B $(held_at 7401)"
both_hold() { [ "$(pages_of 1)" -gt 1000 ] && [ "$(pages_of 2)" -gt 1000 ]; }
check pages-on-both both_hold
check_fails drain-unknown "no such file" sh -c "echo 'drain 9' > $D/repos"
check_fails drain-dead-one "not connected" sh -c "echo 'drain 0' > $D/repos"
check_fails drain-garbage "invalid" sh -c "echo 'drain one' > $D/repos"
check_fails drain-extra-word "invalid" sh -c "echo 'drain 1 now' > $D/repos"
check drain-bad-input-changed-nothing sh -c "grep -q '^1 127.0.0.1:7400 client 1 up pages' $D/repos"
# The other region (16-24 MiB): written and verified by fio during the drain.
fio --name=live --filename=/dev/coopswap0 --offset=16M --size=8M --rw=randwrite --bs=4k --direct=1 --ioengine=psync \
  --verify=crc32c --verify_fatal=1 --do_verify=1 --loops=3 --output=/tmp/fio6.out &
LIVE=$!
sleep 1
check drain-A sh -c "echo 'drain 1' > $D/repos"
dmesg | grep -E 'coopswap0: (draining|repository 1 drained)' | tail -2
check live-fio-during-drain wait $LIVE
cat $D/repos
check A-out-of-service sh -c "grep -q '^1 127.0.0.1:7400 client 1 down pages 0 .* reason: drained by the administrator' $D/repos"
a_empty() { [ "$(held_at 7400)" = 0 ]; }
b_full() { [ "$(pages_of 2)" -ge 4096 ] && [ "$(held_at 7401)" -ge 4096 ]; }
check A-holds-nothing a_empty
check B-holds-all b_full
check drain-report sh -c "dmesg | grep -q 'coopswap0: repository 1 drained and out of service: [1-9][0-9]* pages moved'"
local_before=$(awk '/^local_reads/ {print $2}' $D/stats)
remote_before=$(awk '/^remote_reads/ {print $2}' $D/stats)
check fio-verify-after-drain $FIO --verify_only=1 --output=/tmp/fio7.out
# The moved pages are read from B, not from the local store.
check read-from-B sh -c "[ \$(awk '/^remote_reads/ {print \$2}' $D/stats) -ge \$(($remote_before + 4000)) ] && [ \$(awk '/^local_reads/ {print \$2}' $D/stats) -lt \$(($local_before + 96)) ]"
check no-io-errors-drain sh -c "grep -q '^io_errors 0' $D/stats"
check_fails drain-again-refused "not connected" sh -c "echo 'drain 1' > $D/repos"
cat $D/stats

# --- reconnect: B stalls (SIGSTOP) and is declared dead; back (SIGCONT), `reconnect 2` puts it in service again and
# drops the pages it still held from before (the page map forgot them when it went down) --------------------------
check_fails reconnect-in-service "already connected" sh -c "echo 'reconnect 2' > $D/repos"
check_fails reconnect-unknown "no such file" sh -c "echo 'reconnect 9' > $D/repos"
check_fails reconnect-garbage "invalid" sh -c "echo 'reconnect' > $D/repos"
kill -STOP $REPODB
check fio-verify-B-stalled $FIO --verify_only=1 --output=/tmp/fio8.out
check B-declared-down sh -c "grep -q '^2 127.0.0.1:7401 client 1 down pages 0 .* reason: timed out' $D/repos"
kill -CONT $REPODB
b_has_old() { [ "$(held_at 7401)" -ge 4096 ]; }
check B-still-holds-old-pages b_has_old
check reconnect-B sh -c "echo 'reconnect 2' > $D/repos"
check B-back-in-service sh -c "grep -q '^2 127.0.0.1:7401 client 1 up pages 0' $D/repos"
b_empty() { [ "$(held_at 7401)" = 0 ]; }
check B-old-pages-dropped b_empty
check reconnect-log sh -c "dmesg | grep -q 'coopswap0: repository 2 (127.0.0.1:7401) back in service (.* pages allowed; [1-9][0-9]* old pages dropped there)'"
dmesg | grep 'back in service' | tail -1
check reconnect-drained-A sh -c "echo 'reconnect 1' > $D/repos && grep -q '^1 127.0.0.1:7400 client 1 up' $D/repos"
check fio-after-reconnect $FIO --do_verify=1 --output=/tmp/fio9.out
check pages-on-both-again both_hold
check no-io-errors-reconnect sh -c "grep -q '^io_errors 0' $D/stats"
cat $D/repos

# --- automatic reconnection (auto_reconnect 1): B killed, then started again on its port; a timer brings it back
# after the wait (1 s, doubling after each failed attempt), with no I/O on the device meanwhile, dropping the pages it
# held from before --------------------------------------------------------------------------------------------------
# The first repository (index 0, gone since the start; A listens on its port now) is not to come back: removed.
check remove-dead-0 sh -c "echo 'remove 0' > $D/repos"
check auto-reconnect-off-by-default grep -qx 0 $D/auto_reconnect
check_fails auto-reconnect-garbage "invalid" sh -c "echo maybe > $D/auto_reconnect"
check auto-reconnect-on sh -c "echo 1 > $D/auto_reconnect && grep -qx 1 $D/auto_reconnect"
kill -9 $REPODB 2>/dev/null; wait $REPODB 2>/dev/null
check fio-verify-B-killed $FIO --verify_only=1 --output=/tmp/fio9a.out
check B-down-again sh -c "grep -q '^2 127.0.0.1:7401 client 1 down' $D/repos"
io_count() { echo "$(cat $D/reads) $(cat $D/writes)"; }
IO0=$(io_count)
$B/coopswap-repod --config /tmp/repodB.toml >/tmp/repodB2.log 2>&1 &
REPODB=$!
check repodB-restarted wait_repod 7401
# Up to 70 s (attempts 1, 2, 4, 8, 16, 32 s apart) until B is listed up again, with the device idle.
check B-back-automatically wait_for 70 grep -q '^2 127.0.0.1:7401 client 1 up' $D/repos
check B-back-without-io test "$(io_count)" = "$IO0"
check auto-reconnect-log sh -c "dmesg | grep -q 'coopswap0: repository 2 (127.0.0.1:7401) back in service automatically'"
dmesg | grep -E 'coopswap0: repository 2 .*(automatic|automatically)' | tail -3
check remove-0-not-retried sh -c "grep -q '^0 127.0.0.1:7400 client 1 down' $D/repos && ! dmesg | grep -q 'repository 0 (127.0.0.1:7400) back in service automatically'"
check fio-after-auto-reconnect $FIO --do_verify=1 --output=/tmp/fio9d.out
b_has_pages() { [ "$(pages_of 2)" -gt 0 ]; }
check pages-on-B-again b_has_pages
check no-io-errors-auto-reconnect sh -c "grep -q '^io_errors 0' $D/stats"
echo 0 > $D/auto_reconnect
cat $D/repos
echo 'remove 1' > $D/repos
echo 'remove 2' > $D/repos
kill $REPODA $REPODB 2>/dev/null; wait $REPODA $REPODB 2>/dev/null

# --- an IPv6 repository ([::1]:7402), index 3: every page of a fio pass stored there and read back ------------------
sed 's/127.0.0.1:7400/[::1]:7402/' /tmp/repod.toml > /tmp/repod6.toml && chmod 600 /tmp/repod6.toml
$B/coopswap-repod --config /tmp/repod6.toml >/tmp/repod6.log 2>&1 &
REPOD6=$!
wait_repod6() {
  i=0
  while [ $i -lt 30 ]; do
    COOPSWAP_TOKEN=$TOKEN $B/coopswap-client --server '[::1]:7402' --client-id 1 ping >/dev/null 2>&1 && return 0
    sleep 1; i=$((i + 1))
  done
  return 1
}
check repod6-running wait_repod6
check_fails repo-add-v6-unbracketed "invalid" sh -c "echo 'add ::1:7402 1 $TOKEN' > $D/repos"
check_fails repo-add-v6-scoped "invalid" sh -c "echo 'add [fe80::1%1]:7402 1 $TOKEN' > $D/repos"
check_fails repo-add-v6-refused "refused" sh -c "echo 'add [::1]:7499 1 $TOKEN' > $D/repos"
check repo-add-v6 sh -c "echo 'add [::1]:7402 1 $TOKEN' > $D/repos"
check repo-v6-listed sh -c "grep -q '^3 \[::1\]:7402 client 1 up' $D/repos"
remote_before=$(awk '/^remote_reads/ {print $2}' $D/stats)
check fio-verify-v6 $FIO --do_verify=1 --output=/tmp/fio10.out
v6_holds() { [ "$(pages_of 3)" -ge 4096 ]; }
check v6-repo-holds-pages v6_holds
check reads-from-v6 sh -c "[ \$(awk '/^remote_reads/ {print \$2}' $D/stats) -ge \$(($remote_before + 4000)) ]"
cat $D/repos

# --- the repository dies while local copies are still behind (the writer held): a read of those pages waits for
# their local write and returns every byte right ---------------------------------------------------------------------
stat_of() { awk -v k="$1" '$1 == k {print $2}' $D/stats; }
check_fails local-hold-garbage "invalid" sh -c "echo maybe > $D/local_hold"
check local-hold sh -c "echo 1 > $D/local_hold && [ \"\$(cat $D/local_hold)\" = 1 ]"
BEHIND="fio --name=b --filename=/dev/coopswap0 --rw=write --bs=4k --offset=64M --size=128k --direct=1 --ioengine=psync --verify=crc32c --verify_fatal=1"
ios_before=$(stat_of local_ios) behind_before=$(stat_of local_behind)
# 32 pages (< 64 buffers): the writes complete on the repository's acknowledgement, their local copies wait.
check behind-write $BEHIND --do_verify=0 --output=/tmp/fio11.out
check behind-queued sh -c "grep -qx 'local_queue 32' $D/state"
kill -9 $REPOD6 2>/dev/null; wait $REPOD6 2>/dev/null
waits_before=$(stat_of local_waits)
errors_before=$(stat_of io_errors)
( sleep 5; echo 0 > $D/local_hold ) &
RELEASE=$!
t0=$(date +%s)
check behind-read-after-repo-died $BEHIND --verify_only=1 --output=/tmp/fio12.out
t1=$(date +%s)
wait $RELEASE
echo "coopswap: the reads of pages behind took $((t1 - t0)) s (the writer was released after 5 s)"
check behind-read-waited-for-local sh -c "[ $((t1 - t0)) -ge 3 ] && [ \$(awk '\$1 == \"local_waits\" {print \$2}' $D/stats) -gt $waits_before ]"
check behind-no-io-errors sh -c "[ \$(awk '\$1 == \"io_errors\" {print \$2}' $D/stats) = $errors_before ]"
check behind-written sh -c "grep -qx 'local_queue 0' $D/state && [ \"\$(cat $D/local_hold)\" = 0 ]"
# Those 32 consecutive pages, queued one after the other while the writer was held, went to the store as runs of up
# to 32 pages (one write each): at most 2 writes (a read waiting for one page may release the writer mid-queue).
echo "coopswap: local writes for the 32 held pages: $(( $(stat_of local_ios) - ios_before )) (local_behind +$(( $(stat_of local_behind) - behind_before )))"
merged() { [ $(( $(stat_of local_ios) - ios_before )) -le 2 ]; }
check behind-written-merged merged
cat $D/repos $D/stats
echo 'remove 3' > $D/repos

# --- swap under a memory hog that verifies every byte, with a (new) repository ------------------------------------
# A repository in the same VM takes part in the memory pressure: its own allocations can wait for reclaim, which waits
# for this swap device, so it may stall until the client's timeout declares it dead (then the local copies serve).
$B/coopswap-repod --config /tmp/repod.toml >/tmp/repod2.log 2>&1 &
REPOD=$!
check repod2-running wait_repod
check repo-add-new sh -c "echo 'add 127.0.0.1:7400 1 $TOKEN' > $D/repos && grep -q '^4 127.0.0.1:7400 client 1 up' $D/repos"
check mkswap mkswap /dev/coopswap0
# As for any swap over the network (nbd's advice too): larger free-memory reserves, so that kswapd starts early
# and the memalloc allocations of swap-out (TCP's, the local store's) have room (the default on 512 MiB is ~2.8 MiB).
check min-free-kbytes sh -c 'echo 16384 > /proc/sys/vm/min_free_kbytes'
check swapon swapon /dev/coopswap0
avail=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
HOG=$((avail + 64))
echo "coopswap: MemAvailable ${avail} MiB, hog ${HOG} MiB"
writes_before=$(cat $D/writes)
check memcheck-swap $B/coopswap-memcheck --mib $HOG --passes 2 --seed 1
check swap-was-used sh -c "[ \$(cat $D/writes) -gt \$(($writes_before + 8192)) ]"
check_fails rmmod-while-swap "unload" rmmod coopswap
check module-still-loaded sh -c 'lsmod | grep -q "^coopswap"'
check_fails power-off-while-swap "busy" sh -c "echo 0 > $D/power"
check still-swapping sh -c 'grep -q coopswap0 /proc/swaps'
cat $D/repos $D/stats

# --- and the repository killed in the middle of a second run -------------------------------------------------------
avail=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
HOG=$((avail + 48))
echo "coopswap: MemAvailable ${avail} MiB, hog ${HOG} MiB"
$B/coopswap-memcheck --mib $HOG --passes 2 --seed 2 >/tmp/memcheck3.out 2>&1 &
HOGPID=$!
sleep 10
kill -9 $REPOD 2>/dev/null
check memcheck-repo-killed wait $HOGPID
cat /tmp/memcheck3.out
check all-repos-down sh -c "! grep -q ' up' $D/repos"
check no-io-errors-after-swap sh -c "grep -q '^io_errors 0' $D/stats"
cat $D/repos $D/stats

tail -n 5 /tmp/repod.log /tmp/repod2.log 2>/dev/null

# --- teardown -----------------------------------------------------------------------------------------------------
# With automatic reconnection on and the repository dead, the timer keeps trying (no I/O needed); switching the
# device off cancels the next attempt (no attempt after it, no oops).
check auto-reconnect-on-at-end sh -c "echo 1 > $D/auto_reconnect"
check auto-attempts-while-idle wait_for 15 sh -c "dmesg | grep -q 'coopswap0: repository [0-9]* (.*) not back yet'"
check swapoff swapoff /dev/coopswap0
check power-off timeout 30 sh -c "echo 0 > $D/power"
N_ATTEMPTS=$(dmesg | grep -c 'coopswap0: repository [0-9]* (.*) not back yet')
sleep 3
check no-attempt-after-power-off test "$(dmesg | grep -c 'coopswap0: repository [0-9]* (.*) not back yet')" = "$N_ATTEMPTS"
check dev-gone sh -c '! test -e /dev/coopswap0'
check rmdir-dev rmdir $D
check rmmod-coopswap rmmod coopswap
check_no_oops
exit $OVC_FAILS
