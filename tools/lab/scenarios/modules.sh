#!/bin/sh
# Every Overcast module loads, passes its KUnit suites, does its job at the /proc and /sys surface, refuses bad
# input with the right errno and without changing state, and unloads cleanly — also while busy.
. /overcast/tests/lib.sh
M=/overcast/modules

# --- load all three; print their KUnit results for the runner ---------------------------------------------------
for m in blanket coopswap vwire; do
  check "insmod-$m" insmod $M/$m.ko
done
print_ktap overcast_
check lsmod-all sh -c 'lsmod | grep -q "^vwire" && lsmod | grep -q "^coopswap" && lsmod | grep -q "^blanket"'

# --- vwire: the /proc/vw control plane (Fig. 5.9) -----------------------------------------------------------------
check vw-dir test -d /proc/vw
check vw-create sh -c 'echo "7 10.99.0.1:4789 10.99.0.2:4789" > /proc/vw/create'
check vw-file-appears test -f /proc/vw/7
check vw-status-shows-remote sh -c 'grep -q "10.99.0.2:4789" /proc/vw/7'
check vw-list sh -c 'grep -q "^7 " /proc/vw/list'
check vw-iface-created sh -c 'test -d /sys/class/net/vw7 && grep -q "^ifname: vw7$" /proc/vw/7'
# Made through /proc/vw, the interface is of the rtnetlink kind vwire all the same: ip -d link shows its connector.
check vw-proc-iface-of-kind sh -c "/usr/sbin/ip -d link show vw7 | grep -q 'vwire id 7 local 10.99.0.1:4789 remote 10.99.0.2:4789'"
check_fails vw-create-duplicate "exists" sh -c 'echo "7 10.99.0.1:4789 10.99.0.3:4789" > /proc/vw/create'
check_fails vw-create-fieldcount "invalid" sh -c 'echo "8 10.99.0.1" > /proc/vw/create'
check_fails vw-create-badaddr "invalid" sh -c 'echo "8 10.99.0.1:4789 300.1.2.3:4789" > /proc/vw/create'
check_fails vw-create-binary "invalid" sh -c 'printf "\377\376\001\000" | dd of=/proc/vw/create bs=64'
check_fails vw-create-oversized "too long" sh -c 'head -c 5000 /dev/zero | tr "\0" "1" > /proc/vw/create'
# A port held by another socket on that address: EADDRINUSE, nothing created.
socat -u UDP-RECV:4900 /dev/null &
SOCAT=$!
# Wait until it holds the port (socat starts slowly under nested TCG).
i=0; while [ $i -lt 60 ] && ! grep -q ':1324 ' /proc/net/udp; do sleep 0.5; i=$((i + 1)); done
check_fails vw-create-port-in-use "in use" sh -c 'echo "8 10.99.0.1:4900 10.99.0.2:4900" > /proc/vw/create'
kill $SOCAT
check vw-bad-input-changed-nothing sh -c '[ "$(wc -l < /proc/vw/list)" = 1 ] && ! test -e /proc/vw/8 && ! test -e /sys/class/net/vw8'
check vw-repoint sh -c 'echo "10.99.0.5:4790" > /proc/vw/7 && grep -q "10.99.0.5:4790" /proc/vw/7'
check_fails vw-repoint-bad "invalid" sh -c 'echo "nonsense" > /proc/vw/7'
check vw-repoint-bad-kept-remote sh -c 'grep -q "10.99.0.5:4790" /proc/vw/7'
check_fails vw-destroy-unknown "no such" sh -c 'echo 99 > /proc/vw/destroy'
check vw-destroy sh -c 'echo 7 > /proc/vw/destroy && ! test -e /proc/vw/7 && ! test -e /sys/class/net/vw7'
check vw-manager-collapse sh -c 'echo "collapse off" > /proc/vw/manager && grep -q "collapse: off" /proc/vw/manager'
check_fails vw-manager-bad "invalid" sh -c 'echo "frobnicate" > /proc/vw/manager'
# --- vwire: ip link (rtnetlink + the iproute2 plugin link_vwire.so): the same entries as /proc/vw ------------------
IPB=/usr/sbin/ip
check vw-iplink-plugin test -f /usr/lib/x86_64-linux-gnu/ip/link_vwire.so
check vw-iplink-add $IPB link add blue7 type vwire id 17 local 10.99.0.1:4810 remote 10.99.0.2:4810
check vw-iplink-proc-file sh -c 'grep -q "^ifname: blue7$" /proc/vw/17 && grep -q "^remote: 10.99.0.2:4810$" /proc/vw/17'
$IPB -d link show blue7
check vw-iplink-details sh -c "$IPB -d link show blue7 | grep -q 'vwire id 17 local 10.99.0.1:4810 remote 10.99.0.2:4810'"
check vw-iplink-json sh -c "$IPB -d -j link show blue7 | grep -q '\"remote\":\"10.99.0.2:4810\"'"
check vw-iplink-repoint-via-proc sh -c "echo 10.99.0.6:4810 > /proc/vw/17 && $IPB -d link show blue7 | grep -q 'remote 10.99.0.6:4810'"
# ip link set ... type vwire remote ADDR: the same repoint as /proc/vw/<N> (id and local may only confirm).
check vw-iplink-set-repoint sh -c "$IPB link set blue7 type vwire remote 10.99.0.7:4810 && grep -q '^remote: 10.99.0.7:4810$' /proc/vw/17"
check vw-iplink-set-confirming sh -c "$IPB link set blue7 type vwire id 17 local 10.99.0.1:4810 remote 10.99.0.8:4810 && grep -q '^remote: 10.99.0.8:4810$' /proc/vw/17"
check_fails vw-iplink-set-other-id "invalid" $IPB link set blue7 type vwire id 18 remote 10.99.0.9:4810
check_fails vw-iplink-set-other-local "invalid" $IPB link set blue7 type vwire local 10.99.0.3:4810 remote 10.99.0.9:4810
check_fails vw-iplink-set-no-remote "missing" $IPB link set blue7 type vwire id 17
check_fails vw-iplink-set-bad-remote "invalid" $IPB link set blue7 type vwire remote 300.1.2.3:4810
check vw-iplink-set-bad-changed-nothing grep -q '^remote: 10.99.0.8:4810$' /proc/vw/17
check vw-iplink-set-plain sh -c "$IPB link set blue7 up && $IPB link set blue7 down"
check_fails vw-iplink-duplicate "exists" $IPB link add blue8 type vwire id 17 local 10.99.0.1:4810 remote 10.99.0.2:4810
check_fails vw-iplink-missing-remote "missing" $IPB link add blue8 type vwire id 18 local 10.99.0.1:4811
check_fails vw-iplink-bad-addr "invalid" $IPB link add blue8 type vwire id 18 local 10.99.0.1:4811 remote 300.1.2.3:4811
check_fails vw-iplink-id-zero "outside" $IPB link add blue8 type vwire id 0 local 10.99.0.1:4811 remote 10.99.0.2:4811
check_fails vw-iplink-unknown-word "unknown option" $IPB link add blue8 type vwire id 18 colour blue
check vw-iplink-bad-changed-nothing sh -c '! test -e /sys/class/net/blue8 && ! test -e /proc/vw/18 && [ "$(wc -l < /proc/vw/list)" = 1 ]'
check vw-iplink-kernel-name $IPB link add type vwire id 19 local 10.99.0.1:4812 remote 10.99.0.2:4812
check vw-iplink-kernel-name-shown sh -c 'grep -q "^ifname: vwire0$" /proc/vw/19 && test -e /sys/class/net/vwire0'
check vw-iplink-del $IPB link del blue7
check vw-iplink-del-gone sh -c "! test -e /sys/class/net/blue7 && ! grep -q '^17 ' /proc/vw/list"
dmesg | grep 'ip link del' | tail -1
# ip link del cannot remove /proc/vw/17 itself (it holds RTNL); the next /proc/vw write does.
check vw-iplink-file-reaped sh -c 'echo 99 > /proc/vw/destroy 2>/dev/null; ! test -e /proc/vw/17'
check vw-iplink-destroy-via-proc sh -c 'echo 19 > /proc/vw/destroy && ! test -e /sys/class/net/vwire0 && ! test -e /proc/vw/19'
# ... and one made through /proc/vw is deleted by ip link del like any other (its /proc file reaped next write).
check vw-proc-made-iplink-del sh -c "echo '21 10.99.0.1:4813 10.99.0.2:4813' > /proc/vw/create && $IPB link del vw21 && ! test -e /sys/class/net/vw21 && ! grep -q '^21 ' /proc/vw/list"
check vw-proc-made-file-reaped sh -c 'echo 99 > /proc/vw/destroy 2>/dev/null; ! test -e /proc/vw/21'

# --- vwire: the module-wide knobs, /sys/kernel/config/vwire (the same operations as /proc/vw/manager) -------------
K=/sys/kernel/config/vwire
check vw-knobs-dir test -d $K
check vw-knob-capacity grep -qx 256 $K/capacity
check vw-knob-collapse-follows-proc grep -qx 0 $K/collapse
check vw-knob-collapse-on sh -c "echo 1 > $K/collapse && grep -qx 1 $K/collapse && grep -q 'collapse: on' /proc/vw/manager"
check_fails vw-knob-collapse-garbage "invalid" sh -c "echo 1garbage > $K/collapse"
check_fails vw-knob-collapse-binary "invalid" sh -c "printf '\377\376' | dd of=$K/collapse bs=64"
check vw-knob-collapse-bad-changed-nothing grep -qx 1 $K/collapse
check vw-knob-port-default grep -qx 4789 $K/default_port
n=0
for bad in 0 65536 04789 abc 4789: -1 "''" "4789 4790"; do
  n=$((n + 1))
  check_fails "vw-knob-port-bad-$n" "invalid" sh -c "echo $bad > $K/default_port"
done
check vw-knob-port-bad-changed-nothing grep -qx 4789 $K/default_port
check vw-knob-port-set sh -c "echo 4801 > $K/default_port && grep -qx 4801 $K/default_port && grep -q 'default port: 4801' /proc/vw/manager"
check vw-knob-port-used sh -c 'echo "11 10.99.0.1 10.99.0.2" > /proc/vw/create && grep -q "^local: 10.99.0.1:4801$" /proc/vw/11 && grep -q "^remote: 10.99.0.2:4801$" /proc/vw/11'
check vw-knob-port-destroy-uses-it sh -c 'echo "11 10.99.0.1" > /proc/vw/destroy && ! test -e /proc/vw/11'
check vw-knob-endpoints sh -c "echo '13 10.99.0.1:4802 10.99.0.2:4802' > /proc/vw/create && echo '12 10.99.0.1:4803 10.99.0.2:4803' > /proc/vw/create && [ \"\$(cat $K/endpoints | tr '\n' ' ')\" = '12 13 ' ]"
# Counters: frames sent into vw12 (ARP for an address behind it) are counted — sent, or dropped where the lab
# has no route to 10.99.0.2 (vm topology); reset_counters zeroes them.
ip link set vw12 up && ip addr add 192.0.2.1/24 dev vw12 && ping -c 2 -W 1 192.0.2.2 >/dev/null 2>&1
# Down again before the reset: an up interface keeps sending frames of its own (IPv6 router solicitations, ARP
# retries) at times of the kernel's choosing, which would make "zero after reset" a race (seen once, nested).
ip link set vw12 down
counted() { ! grep -qx "tx_frames: 0" /proc/vw/12 || ! grep -qx "drops: 0" /proc/vw/12; }
check vw-knob-counted-before-reset counted
check_fails vw-knob-reset-bad "invalid" sh -c "echo 2 > $K/reset_counters"
check vw-knob-reset-bad-changed-nothing counted
check vw-knob-reset sh -c "echo 1 > $K/reset_counters && grep -qx 'tx_frames: 0' /proc/vw/12 && grep -qx 'drops: 0' /proc/vw/12"
check vw-knob-endpoints-empty sh -c "echo 12 > /proc/vw/destroy && echo 13 > /proc/vw/destroy && [ -z \"\$(cat $K/endpoints)\" ]"
echo 4789 > $K/default_port
# Writes racing from many processes: exactly one create of each id succeeds.
for i in 1 2 3 4 5 6 7 8; do (echo "42 10.99.0.1:5000 10.99.0.2:5000" > /proc/vw/create 2>/dev/null && echo ok >> /tmp/race.ok) & done
wait
check vw-racing-creates-one-wins sh -c '[ "$(wc -l < /tmp/race.ok)" = 1 ] && [ "$(grep -c "^42 " /proc/vw/list)" = 1 ]'

# --- unload while busy: an fd open on a /proc file and a live endpoint --------------------------------------------
echo "9 10.99.0.1:4800 10.99.0.2:4800" > /proc/vw/create
# ... and one made with ip link.
check vw-iplink-left-for-rmmod /usr/sbin/ip link add green20 type vwire id 20 local 10.99.0.1:4820 remote 10.99.0.2:4820
exec 3</proc/vw/9
# ... and creates/destroys racing with the unload (each create makes an interface and a socket).
(while :; do echo "60 10.99.0.1:5600 10.99.0.2:5600" > /proc/vw/create; echo 60 > /proc/vw/destroy; done) 2>/dev/null &
CHURN=$!
sleep 1
for m in vwire coopswap blanket; do
  check "rmmod-$m" rmmod $m
done
kill $CHURN
check vw-dir-gone sh -c '! test -e /proc/vw'
check vw-knobs-gone sh -c '! test -e /sys/kernel/config/vwire'
check vw-ifaces-gone sh -c '! ls /sys/class/net | grep -q "^vw" && ! test -e /sys/class/net/green20'
check_fails vw-stale-fd-read "error" sh -c 'cat <&3'
exec 3<&-
# And load again: nothing was left behind.
check reinsmod-vwire insmod $M/vwire.ko
check vw-reload-empty sh -c '[ ! -s /proc/vw/list ]'
check rermmod-vwire rmmod vwire
check_no_oops
exit $OVC_FAILS
