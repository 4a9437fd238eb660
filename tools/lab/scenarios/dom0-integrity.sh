#!/bin/sh
# Does user space compute correctly in this host? Self-verifying stress-ng stressors (integer, floating point,
# vector and memory copy code, several processes per CPU so that they preempt each other) and parallel checksums
# of one file. A failure here means the platform corrupts user-space state (e.g. FPU/vector registers across
# context switches), which no Overcast code can be blamed for. Documentation/lab.md, "Dom0 user-space corruption
# and eager FPU", has what this found.
. /overcast/tests/lib.sh
SECS=${DOM0_INTEGRITY_SECS:-60}
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|avx512f|xsave|xsaveopt|xsavec|xsaves|fxsr|sse4_2|pclmulqdq|fsgsbase|pku)$' | tr '\n' ' '; echo
check stress-cpu stress-ng --cpu 4 --cpu-method all --verify -t $SECS
check stress-vecfp stress-ng --vecfp 4 --verify -t $SECS
check stress-memcpy stress-ng --memcpy 4 --verify -t $SECS
check stress-mixed stress-ng --cpu 2 --vecmath 2 --memcpy 2 --verify -t $SECS
dd if=/dev/urandom of=/tmp/blob bs=1M count=16 2>/dev/null
REF=$(md5sum < /tmp/blob)
for j in 1 2 3 4; do ( i=0; while [ $i -lt 10 ]; do md5sum < /tmp/blob; i=$((i + 1)); done > /tmp/sums.$j ) & done
wait
check md5-consistent sh -c "[ \$(cat /tmp/sums.* | sort -u | wc -l) = 1 ] && grep -qF '$REF' /tmp/sums.1"
cat /tmp/sums.* | sort | uniq -c
# Memory management under stress while Xen maps guest memory into Dom0 (xl create, privcmd, grant tables):
# self-verifying page-touching stressors beside a PV guest booting and being destroyed.
if [ "${OVERCAST_XEN:-}" = dom0 ]; then
  ( for g in 1 2; do overcast-guest-boot --name integ$g --memory 64 --timeout 300 >/tmp/guest.$g 2>&1; echo "guest $g rc=$?"; done ) > /tmp/guests.log 2>&1 &
  GB=$!
fi
check stress-vm stress-ng --vm 2 --vm-bytes 64m --vm-method all --verify -t $SECS
check stress-mmap stress-ng --mmap 2 --mmap-bytes 32m --verify -t $SECS
check stress-fork-exec stress-ng --fork 2 --exec 2 -t $SECS
check stress-memcpy-2 stress-ng --memcpy 2 --vm 1 --vm-bytes 32m --verify -t $SECS
[ -n "${GB:-}" ] && { wait $GB; cat /tmp/guests.log; }
for j in 1 2 3 4; do ( i=0; while [ $i -lt 10 ]; do md5sum < /tmp/blob; i=$((i + 1)); done > /tmp/sums2.$j ) & done
wait
check md5-consistent-2 sh -c "[ \$(cat /tmp/sums2.* | sort -u | wc -l) = 1 ] && grep -qF '$REF' /tmp/sums2.1"
check_no_user_traps
check_no_oops
exit $OVC_FAILS
