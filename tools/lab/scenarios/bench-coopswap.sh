#!/bin/sh
# Benchmark of cooperative swap (issue 4, dissertation §6.2–6.3, Table 6.1) — run by `make bench-coopswap`
# (scripts/bench-coopswap), never by `make test`: it prints numbers, its checks only say the set-up worked.
#
# Host 1 (B) serves network memory two ways: coopswap-repod (our page repository) and nbd-server exporting a file
# in tmpfs (the paper's comparison: nbd on a RAM disk). Host 0 (A) measures, interleaved in the same boot:
#   coopswap    /dev/coopswap0, repository on B, local write-through store on a second modelled spinning disk
#   coopswap-z  /dev/coopswap1, repository on B, local write-through store on zram (guest RAM, compressed)
#   nbd         /dev/nbd0 -> nbd-server on B (RAM-backed)
#   disk        a virtio disk throttled to a spinning disk (the QEMU -drive arguments come from scripts/bench-coopswap)
#   zram        a zram disk
# fio 4 KiB random read / write at queue depth 1 (latency percentiles, IOPS) and 16 (throughput), rounds
# interleaved with the device order rotated each round; then a memory hog (coopswap-memcheck) with each device as
# the only swap. Result lines (parsed by scripts/bench-coopswap):
#   BENCH fio dev=D job=J round=R iops=F kibps=N p50_us=F p99_us=F cpu_pct=F
#   BENCH hog dev=D round=R secs=F rc=N mib=N pswpin=N pswpout=N cpu_user=% cpu_sys=% cpu_iowait=% cpu_idle=%
#   BENCH info key=value…
# Knobs on the kernel command line (--append): overcast.bench_rounds=N (3), overcast.bench_secs=N (4),
# overcast.bench_hog_rounds=N (1), overcast.bench_hog_extra=MiB (192),
# overcast.bench_hog_limit=SECS (600: a hog still running then is killed and reported with rc=cut), overcast.bench_devs="d1 d2 …" (all),
# overcast.bench_shape=1 (also shape the link to 1 Gbit/s with tc tbf on both hosts and repeat the fio rounds),
# overcast.bench_layout=log|fixed (log): coopswap's store_layout on the modelled disk (coopswap-z's zram store stays fixed).
. /overcast/tests/lib.sh
M=/overcast/modules
B=/overcast/bin
C=/sys/kernel/config/coopswap
TOKEN0=3c9e1f7a5b2d4e6081a7c3f9d5e2b4a6
TOKEN1=7d2b9c4e1f6a3058b7e9d1c3a5f2e4b8
PEER=10.99.0.2
me=${OVERCAST_HOST:-0}
SIZE_MIB=384

opt() { # opt NAME DEFAULT: value of overcast.bench_NAME= on the kernel command line
  v=$(tr ' ' '\n' < /proc/cmdline | sed -n "s/^overcast\.bench_$1=//p" | tail -1)
  echo "${v:-$2}"
}
ROUNDS=$(opt rounds 3)
SECS=$(opt secs 4)
HOG_ROUNDS=$(opt hog_rounds 1)
HOG_EXTRA=$(opt hog_extra 192)
HOG_LIMIT=$(opt hog_limit 600)
SHAPE=$(opt shape 0)
DEVS=$(opt devs "coopswap,coopswap-z,nbd,disk,zram" | tr ',' ' ')
LAYOUT=$(opt layout log)
barrier() { check "barrier-$1" overcast-barrier "$1" "${2:-300}"; }
shape() { # shape on|off: tc tbf 1 Gbit/s on eth0 (the paper's network)
  if [ "$1" = on ]; then
    /usr/sbin/tc qdisc replace dev eth0 root tbf rate 1gbit burst 256kb latency 10ms
  else
    /usr/sbin/tc qdisc del dev eth0 root 2>/dev/null || true
  fi
}

if [ "$me" = 1 ]; then
  # --- host B: the page repository and the nbd server (both RAM) ------------------------------------------------
  cat > /tmp/repod.toml <<EOT
listen = "0.0.0.0:9400"
capacity_mib = 448
memlock = "require"
[[client]]
id = 10
name = "coopswap0"
token = "$TOKEN0"
[[client]]
id = 11
name = "coopswap1"
token = "$TOKEN1"
EOT
  start_repod 127.0.0.1:9400 10 "$TOKEN0"
  # nbd: a sparse file in tmpfs (RAM), as the paper's nbd on a RAM disk.
  truncate -s ${SIZE_MIB}M /run/nbd.img
  cat > /tmp/nbd.conf <<EOT
[generic]
[bench]
    exportname = /run/nbd.img
EOT
  check nbd-server nbd-server -C /tmp/nbd.conf
  iperf3 -s -D >/dev/null 2>&1
  barrier bench-ready 600
  barrier shape-on 7200
  [ "$SHAPE" = 1 ] && { shape on; echo "shaped: $(/usr/sbin/tc qdisc show dev eth0)"; }
  barrier shape-off 7200
  shape off
  barrier bench-done 7200
  tail -n 5 /tmp/repod.log
  grep -E 'MemTotal|MemAvailable' /proc/meminfo
  exit $OVC_FAILS
fi

# --- host A: the devices --------------------------------------------------------------------------------------------
mount -t configfs none /sys/kernel/config 2>/dev/null
echo "BENCH info mem_total_mib=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) cpus=$(nproc) rounds=$ROUNDS secs=$SECS hog_rounds=$HOG_ROUNDS hog_extra_mib=$HOG_EXTRA hog_limit_s=$HOG_LIMIT shape=$SHAPE store_layout=$LAYOUT"
bydisk() { # the /dev/vdX whose virtio serial is $1
  for s in /sys/block/vd*/serial; do
    [ "$(cat "$s" 2>/dev/null)" = "$1" ] && { d=${s%/serial}; echo /dev/${d##*/}; return 0; }
  done
  return 1
}
DISK=$(bydisk bcs-swap) || fail disk-present "no virtio disk with serial bcs-swap (scripts/bench-coopswap adds it)"
STORE=$(bydisk bcs-store) || fail store-present "no virtio disk with serial bcs-store (scripts/bench-coopswap adds it)"
echo "BENCH info disk=$DISK store=$STORE"
for d in $DISK $STORE; do
  echo "BENCH info throttle ${d##*/} $(cat /sys/block/${d##*/}/size) sectors"
done
# zram0: the zram swap; zram1: coopswap-z's local store.
[ -e /sys/block/zram1 ] || cat /sys/class/zram-control/hot_add >/dev/null
check zram0-size sh -c "echo ${SIZE_MIB}M > /sys/block/zram0/disksize"
check zram1-size sh -c "echo ${SIZE_MIB}M > /sys/block/zram1/disksize"
echo "BENCH info zram_comp=$(cat /sys/block/zram0/comp_algorithm | tr ' ' '\n' | sed -n 's/^\[\(.*\)\]$/\1/p')"

check insmod-coopswap insmod $M/coopswap.ko
check configure-coopswap0 sh -c "mkdir $C/0 && echo $LAYOUT > $C/0/store_layout && echo $SIZE_MIB > $C/0/size_mib && echo $STORE > $C/0/store && echo 1 > $C/0/power"
check configure-coopswap1 sh -c "mkdir $C/1 && echo $SIZE_MIB > $C/1/size_mib && echo /dev/zram1 > $C/1/store && echo 1 > $C/1/power"
barrier bench-ready 600
check repo-add-0 sh -c "echo 'add $PEER:9400 10 $TOKEN0' > $C/0/repos && grep -q '^0 $PEER:9400 client 10 up' $C/0/repos"
check repo-add-1 sh -c "echo 'add $PEER:9400 11 $TOKEN1' > $C/1/repos && grep -q '^0 $PEER:9400 client 11 up' $C/1/repos"
check nbd-client nbd-client -N bench $PEER 10809 /dev/nbd0 -b 4096
check nbd-size sh -c "[ \$(cat /sys/block/nbd0/size) = $((SIZE_MIB * 2048)) ]"
iperf3 -c $PEER -t 3 -J > /tmp/iperf.json 2>&1 &&
  echo "BENCH info link_mbps=$(awk '/"sum_received"/ {s=1} s && /"bits_per_second"/ {gsub(/[ ,]/, ""); split($0, a, ":"); printf "%.0f", a[2] / 1e6; exit}' /tmp/iperf.json)"

devpath() {
  case $1 in
    coopswap) echo /dev/coopswap0 ;;
    coopswap-z) echo /dev/coopswap1 ;;
    nbd) echo /dev/nbd0 ;;
    disk) echo "$DISK" ;;
    zram) echo /dev/zram0 ;;
  esac
}

# fio_result DIR: "iops=… kibps=… p50_us=… p99_us=…" from fio's JSON (section read or write).
fio_result() {
  awk -v want="$1" '
    /"read" : \{/ { sec = "read" } /"write" : \{/ { sec = "write" } /"trim" : \{/ { sec = "trim" } /"sync" : \{/ { sec = "sync" }
    sec == want && /"clat_ns" : \{/ { clat = 1 }
    sec == want && /"lat_ns" : \{/ { clat = 0 }
    function val() { v = $0; gsub(/[ ,]/, "", v); split(v, a, ":"); return a[2] }
    sec == want && /"iops" :/ && iops == "" { iops = val() }
    sec == want && /"bw" :/ && bw == "" { bw = val() }
    sec == want && clat && /"50.000000" :/ { p50 = val() }
    sec == want && clat && /"99.000000" :/ { p99 = val() }
    END { printf "iops=%.1f kibps=%d p50_us=%.1f p99_us=%.1f", iops, bw, p50 / 1000, p99 / 1000 }
  ' /tmp/fio.json
}
cpu_busy() { awk '/^cpu / {printf "%d %d\n", $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }

# run_fio DEV JOB ROUND
run_fio() {
  dev=$1 job=$2 round=$3 path=$(devpath "$1")
  case $job in
    rr1) a="--rw=randread --ioengine=psync --iodepth=1" dir=read ;;
    rw1) a="--rw=randwrite --ioengine=psync --iodepth=1" dir=write ;;
    rr16) a="--rw=randread --ioengine=libaio --iodepth=16" dir=read ;;
    rw16) a="--rw=randwrite --ioengine=libaio --iodepth=16" dir=write ;;
  esac
  set -- $(cpu_busy)
  b0=$1 t0=$2
  # shellcheck disable=SC2086
  if fio --name=b --filename="$path" $a --bs=4k --size=64M --direct=1 --runtime="$SECS" --time_based \
      --output-format=json --output=/tmp/fio.json >/tmp/fio.err 2>&1; then
    set -- $(cpu_busy)
    cpu=$(awk -v b="$(($1 - b0))" -v t="$(($2 - t0))" 'BEGIN {printf "%.0f", (t > 0) ? (100 * b / t) : 0}')
    echo "BENCH fio dev=$dev job=$job round=$round $(fio_result $dir) cpu_pct=$cpu"
  else
    fail "fio-$dev-$job-$round" "$(tail -c 300 /tmp/fio.err | tr '\n' ' ')"
  fi
}

# Every device gets the 64 MiB region fio reads written once first: a page never written is zeroes without any I/O
# on coopswap and zram, which would flatter them.
for dev in $DEVS; do
  check "prefill-$dev" fio --name=p --filename="$(devpath $dev)" --rw=write --bs=1M --size=64M --direct=1 \
      --ioengine=psync --output=/tmp/prefill.out
done

# round labels: N unshaped, sN shaped
fio_rounds() { # fio_rounds LABEL: the fio rounds, the device order rotated each round
  lbl=$1 r=1
  while [ $r -le "$ROUNDS" ]; do
    set -- $DEVS
    k=1
    while [ $k -lt $r ]; do first=$1; shift; set -- "$@" "$first"; k=$((k + 1)); done
    for d in "$@"; do
      for job in rr1 rw1 rr16 rw16; do run_fio "$d" "$job" "$lbl$r"; done
    done
    r=$((r + 1))
  done
}

phase0=$(awk '{print $1}' /proc/uptime)
fio_rounds ""
echo "BENCH info fio_phase_secs=$(awk -v t="$phase0" '{printf "%.0f", $1 - t}' /proc/uptime)"
barrier shape-on 7200
if [ "$SHAPE" = 1 ]; then
  shape on
  echo "shaped: $(/usr/sbin/tc qdisc show dev eth0)"
  fio_rounds s
  shape off
fi
barrier shape-off 7200
cat $C/0/stats $C/1/stats

# --- memory hog with each device as the only swap -------------------------------------------------------------------
# The fio data is discarded first (on coopswap that drops it at the repository, which then has room for the swap).
for dev in $DEVS; do
  case $dev in coopswap*) check "discard-$dev" blkdiscard "$(devpath $dev)" ;; esac
  check "mkswap-$dev" mkswap "$(devpath $dev)"
done
vm() { awk -v k="$1" '$1 == k {print $2}' /proc/vmstat; }
# The guest's CPU time split over a hog (user+nice, system+irq+softirq, iowait, idle: % of the window): tells a hog
# that waits for its swap device from one whose vCPU is the limit.
cpu_now() { awk '$1 == "cpu" {print $2 + $3, $4 + $7 + $8, $6, $5; exit}' /proc/stat; }
cpu_split() {
  echo "$1 $2" | awk '{t = ($5 - $1) + ($6 - $2) + ($7 - $3) + ($8 - $4); if (t <= 0) t = 1
    printf "cpu_user=%.1f cpu_sys=%.1f cpu_iowait=%.1f cpu_idle=%.1f", 100 * ($5 - $1) / t, 100 * ($6 - $2) / t,
      100 * ($7 - $3) / t, 100 * ($8 - $4) / t}'
}
# The reserve Documentation/coopswap.md's quick start asks for when swapping over the network (the kernel's default
# of about 2.8 MiB let the OOM killer in with swap free); the same for every device, so the comparison stays fair.
sysctl -q vm.min_free_kbytes=16384
echo "BENCH info min_free_kbytes=$(cat /proc/sys/vm/min_free_kbytes)"
r=1
while [ $r -le "$HOG_ROUNDS" ]; do
  set -- $DEVS
  k=1
  while [ $k -lt $r ]; do first=$1; shift; set -- "$@" "$first"; k=$((k + 1)); done
  for dev in "$@"; do
    path=$(devpath $dev)
    if ! swapon "$path"; then fail "swapon-$dev-$r" "swapon $path failed"; continue; fi
    sync; echo 3 > /proc/sys/vm/drop_caches
    avail=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
    mib=$((avail + HOG_EXTRA))
    i0=$(vm pswpin) o0=$(vm pswpout) s0=$(awk '{print $1}' /proc/uptime) c0=$(cpu_now)
    timeout -s KILL "$HOG_LIMIT" $B/coopswap-memcheck --mib $mib --passes 2 --seed $r >/tmp/hog.out 2>&1
    rc=$?
    s1=$(awk '{print $1}' /proc/uptime) c1=$(cpu_now)
    cut=$(awk -v a="$s0" -v b="$s1" -v l="$HOG_LIMIT" 'BEGIN {print (b - a >= l) ? 1 : 0}')
    [ "$cut" = 1 ] && rc=cut
    echo "BENCH hog dev=$dev round=$r secs=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", b - a}') rc=$rc mib=$mib pswpin=$(($(vm pswpin) - i0)) pswpout=$(($(vm pswpout) - o0)) $(cpu_split "$c0" "$c1")"
    sed 's/^/  /' /tmp/hog.out
    [ "$rc" = 0 ] || [ "$rc" = cut ] || fail "hog-$dev-$r" "coopswap-memcheck exited $rc on $dev: $(tail -c 200 /tmp/hog.out | tr '\n' ' ')"
    check "swapoff-$dev-$r" swapoff "$path"
  done
  r=$((r + 1))
done

echo "--- coopswap0 (local store on the modelled disk)"; cat $C/0/repos $C/0/stats
echo "--- coopswap1 (local store on zram)"; cat $C/1/repos $C/1/stats
check no-io-errors sh -c "grep -q '^io_errors 0' $C/0/stats && grep -q '^io_errors 0' $C/1/stats"
nbd-client -d /dev/nbd0 >/dev/null 2>&1
check teardown sh -c "echo 0 > $C/0/power && echo 0 > $C/1/power && rmdir $C/0 $C/1"
barrier bench-done 7200
check_no_oops
exit $OVC_FAILS
