#!/bin/sh
# make demo: what Overcast does today, live, in the nested lab (QEMU -> Xen 4.17 -> our Dom0 -> a PV guest).
. /overcast/tests/lib.sh
say() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
say "The Blanket Xen: Xen 4.17 running inside a QEMU VM (the 'provider' VM), our Linux 7.3 as its Dom0"
xl info | grep -E '^(host|release|xen_version|xen_caps|total_memory|free_memory|nr_cpus)'
xl list
say "Loading the Overcast modules in the Blanket Dom0 (their KUnit suites run at load)"
for m in blanket coopswap vwire; do insmod /overcast/modules/$m.ko && echo "loaded $m.ko"; done
lsmod | grep -E '^(vwire|coopswap|blanket)'
print_ktap overcast_ | grep -E '^(ok|not ok) '
say "VirtualWire control plane (/proc/vw, Fig. 5.9): create, inspect, repoint, destroy"
echo 'echo "7 10.99.0.1:4789 10.99.0.2:4789" > /proc/vw/create'
echo "7 10.99.0.1:4789 10.99.0.2:4789" > /proc/vw/create
cat /proc/vw/7
echo 'echo "10.99.0.5:4789" > /proc/vw/7   # the other end migrated'
echo "10.99.0.5:4789" > /proc/vw/7
cat /proc/vw/list
echo 'echo "7 bogus" > /proc/vw/create   # bad input is refused and changes nothing'
echo "7 bogus" > /proc/vw/create
dmesg | grep vwire: | tail -1
echo 7 > /proc/vw/destroy
say "A Blanket guest: a PV domU of our kernel started with xl inside the Blanket Xen"
overcast-guest-boot
say "Unloading the modules"
for m in vwire coopswap blanket; do rmmod $m && echo "unloaded $m"; done
say "The Xen-Blanket's two halves (§4.1): our drivers take the provider's virtio NIC and disk, and a Blanket guest"
echo "uses them through Xen's split drivers — its vif bridged onto bnet0, its disk xvdb on /dev/bvd0 (blkback)."
echo "(scenario blanket-guest: each PASS/FAIL line is one check; the guest's own results are its OVERCAST-GUEST lines)"
sh /overcast/tests/blanket-guest.sh || OVC_FAILS=$((OVC_FAILS + 1))
check_no_oops
exit $OVC_FAILS
