#!/bin/sh
# nested: the Blanket Xen runs a PV guest of our kernel under xl, and our modules load in the Dom0 beside it.
. /overcast/tests/lib.sh
check xl-info xl info
check xl-list-dom0 sh -c 'xl list | grep -q "^Domain-0"'
for m in vwire coopswap blanket; do
  check "insmod-$m-dom0" insmod /overcast/modules/$m.ko
done
check pv-guest-boots overcast-guest-boot
check pv-guest-gone sh -c '! xl list | grep -q overcast-guest'
for m in blanket coopswap vwire; do
  check "rmmod-$m-dom0" rmmod $m
done
check_no_user_traps
check_no_oops
exit $OVC_FAILS
