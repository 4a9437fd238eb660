#!/bin/sh
# Six PV guest create/destroy cycles and nothing else, then: did any Dom0 process crash? The quickest check of
# the lab platform itself (Documentation/lab.md, "Dom0 user-space corruption and eager FPU").
. /overcast/tests/lib.sh
for g in 1 2 3 4 5 6; do check guest-$g overcast-guest-boot --name gonly$g --memory 64 --timeout 300; for i in $(seq 1 200); do /bin/true; done; done
check_no_user_traps
check_no_oops
exit $OVC_FAILS
