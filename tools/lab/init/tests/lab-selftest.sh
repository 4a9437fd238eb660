#!/bin/sh
# Built-in scenario: checks the lab itself (the rootfs tools, the network plan, the Xen toolstack and a PV
# guest in nested). Runs with any overlay, or none.
check() { # name command...
    n=$1; shift
    if out=$("$@" 2>&1); then
        echo "OVERCAST-CHECK PASS $n"
    else
        echo "OVERCAST-CHECK FAIL $n $(echo "$out" | tail -n 1)"
    fi
}
echo "topology=$OVERCAST_TOPOLOGY host=$OVERCAST_HOST xen=$OVERCAST_XEN kernel=$(uname -r)"
for t in ip bridge tc iperf3 fio stress-ng nbd-client nbd-server mkswap swapon insmod; do
    check "tool-$t" sh -c "command -v $t"
done
check iperf3-runs iperf3 --version
check proc-mounted test -e /proc/self/stat
check debugfs-mounted test -d /sys/kernel/debug/tracing -o -d /sys/kernel/debug/block
if [ "$OVERCAST_TOPOLOGY" = pair ]; then
    peer=10.99.0.$((2 - OVERCAST_HOST))
    # The hosts boot at different speeds: meet first, then ping, then meet again before powering off.
    check barrier-start overcast-barrier selftest-start 90
    check ping-peer ping -c 3 -W 2 $peer
    check barrier-end overcast-barrier selftest-end 60
fi
if [ "$OVERCAST_TOPOLOGY" = nested ]; then
    check xen-dom0 test "$OVERCAST_XEN" = dom0
fi
if [ "$OVERCAST_XEN" = dom0 ]; then
    check xen-toolstack test "$OVERCAST_XEN_TOOLSTACK" = up
    check xl-list xl list
    if [ -f /overcast/guest/bzImage ]; then
        if overcast-guest-boot --timeout 180; then
            echo "OVERCAST-CHECK PASS pv-guest-boots"
        else
            echo "OVERCAST-CHECK FAIL pv-guest-boots see the guest console above"
        fi
        # A guest kernel that crashes while booting (here: it has no init to run) is started once more, then
        # reported as crashed twice; its consoles go to a file (they hold the panic, which is meant).
        overcast-guest-boot --name crashy --extra "rdinit=/nonexistent init=/nonexistent" --timeout 120 \
            >/tmp/crashy.out 2>&1
        rc=$?
        if [ $rc != 0 ] && grep -q "destroying it and starting it again, once" /tmp/crashy.out \
            && grep -q "crashed while booting, twice" /tmp/crashy.out && ! xl domid crashy >/dev/null 2>&1; then
            echo "OVERCAST-CHECK PASS guest-boot-crash-retried"
        else
            echo "OVERCAST-CHECK FAIL guest-boot-crash-retried rc=$rc: $(grep overcast-guest-boot: /tmp/crashy.out | tail -n 3 | tr '\n' ' ' | sed 's/OVERCAST-/OVERCAST_/g')"
        fi
    else
        echo "OVERCAST-CHECK SKIP pv-guest-boots no /overcast/guest/bzImage in the overlay"
    fi
fi
exit 0
