#!/bin/sh
# The Xen-Blanket's two halves together (issue 6 item 4, dissertation §4.1, §4.2.2, Fig. 4.2): the Blanket Dom0
# drives the provider's virtio devices with our drivers only — blanket_net (bnet0) and blanket_blk (bvd0), the C
# virtio_net/virtio_blk unbound — and re-exports them to a Blanket guest through Xen's split drivers: the guest's vif
# (netback) is bridged onto bnet0 (xenbr0), its disk xvdb is /dev/bvd0 through blkback. The guest (guest-init's
# overcast.guest_peer / overcast.guest_disk checks) pings a host beyond the provider NIC and runs iperf3 to it, reads
# data Dom0 wrote through blanket_blk and writes data Dom0 then reads back through blanket_blk. Also: the peer pings
# the guest, blanket.ko cannot be unloaded while the guest uses bvd0, and unloads cleanly and reloads afterwards.
#
# Topologies:
#   pair --pair-kind nested   host 0 as above; host 1 (C drivers) serves iperf3 at 10.99.0.2 and pings the guest
#                             (10.99.0.3). Needs an extra virtio-blk disk on the QEMU command line (scripts/run-tests).
#   nested                    the user-net gateway 10.0.2.2 is the host beyond the NIC (ping only: user-net has no
#                             iperf3 server); the guest is 10.0.2.16.
. /overcast/tests/lib.sh
M=/overcast/modules
IP=/usr/sbin/ip
me=${OVERCAST_HOST:-0}
topo=${OVERCAST_TOPOLOGY:-nested}
ADDR=${OVERCAST_IP:-10.0.2.15/24}
GUEST=blanket-guest
GLOG=/var/log/xen/console/guest-$GUEST.log
if [ "$topo" = pair ]; then
  PEER=10.99.0.$((2 - me)) GIP=10.99.0.3 RAMDISK=/overcast/guest/initrd-net.gz
else
  PEER=10.0.2.2 GIP=10.0.2.16 RAMDISK=/overcast/guest/initrd.gz
fi
barrier() { [ "$topo" = pair ] || return 0; udp_barrier "$@"; }
[ "$topo" = pair ] && udp_barrier_listen

# --- pair, host 1: the host beyond the provider NIC ------------------------------------------------------------------
if [ "$topo" = pair ] && [ "$me" = 1 ]; then
  iperf3 -s -D -p 5201 --logfile /tmp/iperf3-server.log
  barrier up 900
  barrier guest-checked 1500
  # Traffic towards the guest: in through host 0's provider NIC, bnet0, xenbr0, the guest's vif.
  check ping-guest-from-peer sh -c "ping -c 5 -W 5 $GIP"
  check peer-sees-guest-mac sh -c "$IP neigh show $GIP | grep -q '00:16:3e'"
  $IP neigh show $GIP
  barrier peer-pinged 300
  barrier done 900
  check_no_oops
  exit $OVC_FAILS
fi

# --- Dom0: our drivers take the provider's devices -------------------------------------------------------------------
check dom0 grep -q control_d /proc/xen/capabilities
VN= VB=
for d in /sys/bus/virtio/devices/*; do
  case "$(cat "$d/device" 2>/dev/null)" in
    0x0001) [ -z "$VN" ] && VN=$(basename "$d") ;;
    0x0002) [ -z "$VB" ] && VB=$(basename "$d") ;;
  esac
done
echo "blanket-guest: provider NIC $VN, provider disk $VB"
check has-nic-and-disk test -n "$VN" -a -n "$VB"
drv() { basename "$(readlink /sys/bus/virtio/devices/$1/driver 2>/dev/null)" 2>/dev/null; }
check insmod-blanket insmod $M/blanket.ko
take() { # take DEVICE C-DRIVER OUR-DRIVER
  [ "$(drv "$1")" = "$2" ] && echo "$1" > /sys/bus/virtio/drivers/$2/unbind
  echo "$1" > /sys/bus/virtio/drivers/$3/bind && [ "$(drv "$1")" = "$3" ]
}
check nic-to-blanket-net take "$VN" virtio_net blanket_net
check disk-to-blanket-blk take "$VB" virtio_blk blanket_blk
# "Our drivers only": no virtio device is left with the C drivers.
check no-c-virtio-net sh -c '! ls /sys/bus/virtio/drivers/virtio_net | grep -q "^virtio"'
check no-c-virtio-blk sh -c '! ls /sys/bus/virtio/drivers/virtio_blk | grep -q "^virtio"'
check bnet0-exists test -e /sys/class/net/bnet0
check bvd0-exists test -b /dev/bvd0
if ! test -e /sys/class/net/bnet0 || ! test -b /dev/bvd0; then
  barrier up 900; barrier guest-checked 60; barrier peer-pinged 60; barrier done 60; check_no_oops; exit $OVC_FAILS
fi

# Dom0's own address moves to the bridge that bnet0 is a port of (Xen's usual xenbr0 set-up).
check bridge sh -c "$IP link add xenbr0 type bridge && $IP link set xenbr0 up"
check bnet0-on-bridge sh -c "$IP link set bnet0 master xenbr0 && $IP link set bnet0 up"
check dom0-address sh -c "$IP addr flush dev xenbr0; $IP addr add $ADDR dev xenbr0"
barrier up 900
check dom0-ping-peer wait_for 60 ping -c 1 -W 2 $PEER

# Data Dom0 writes through blanket_blk (past its page cache) for the guest to read.
dd if=/dev/urandom of=/tmp/dom0-data bs=64k count=128 2>/dev/null
SUM=$(md5sum </tmp/dom0-data); SUM=${SUM%% *}
check dom0-writes-bvd0 dd if=/tmp/dom0-data of=/dev/bvd0 bs=64k count=128 oflag=direct conv=notrunc
rx0=$(cat /sys/class/net/bnet0/statistics/rx_bytes) tx0=$(cat /sys/class/net/bnet0/statistics/tx_bytes)

# --- the Blanket guest ------------------------------------------------------------------------------------------------
check guest-started overcast-guest-boot --name $GUEST --ramdisk $RAMDISK --vif --disk 'phy:/dev/bvd0,xvdb,w' \
  --extra "overcast.guest_ip=$GIP/24 overcast.guest_peer=$PEER overcast.guest_disk=$SUM" --keep --timeout 400
DOMID=$(xl domid $GUEST 2>/dev/null)
echo "blanket-guest: guest $GUEST is domain $DOMID"
VBD=/sys/bus/xen-backend/devices/vbd-$DOMID-51728
want=$(awk -F: '{ printf "%x:%x\n", $1, $2 }' /sys/block/bvd0/dev)
check blkback-on-bvd0 sh -c "[ \"\$(cat $VBD/physical_device)\" = $want ]"
check vif-on-xenbr0 sh -c "[ \"\$(basename \"\$(readlink /sys/class/net/vif$DOMID.0/master)\")\" = xenbr0 ]"
check_fails rmmod-refused-while-guest-uses-bvd0 "unavailable" rmmod blanket
check guest-checks-done wait_for 600 grep -q "OVERCAST-GUEST-CHECKS done" $GLOG
grep "OVERCAST-GUEST-\(NET\|DISK\|CHECKS\)" $GLOG | tr -d '\r'
guest_ok() { grep -q "OVERCAST-GUEST-$1 $2 ok" $GLOG; }
check guest-ping-peer guest_ok NET ping
check guest-ping-full-size guest_ok NET ping-full-size
if [ "$topo" = pair ]; then
  check guest-iperf3-tcp-send guest_ok NET iperf3-tcp-send
  check guest-iperf3-tcp-receive guest_ok NET iperf3-tcp-receive
  check guest-iperf3-udp-1400 guest_ok NET iperf3-udp-1400
  # The guest's streams crossed the provider NIC through blanket_net: more than 4 MB each way on bnet0.
  check bnet0-carried-guest-traffic sh -c "[ \$((\$(cat /sys/class/net/bnet0/statistics/rx_bytes) - $rx0)) -gt 4000000 ] && [ \$((\$(cat /sys/class/net/bnet0/statistics/tx_bytes) - $tx0)) -gt 4000000 ]"
fi
check guest-reads-dom0-data guest_ok DISK read-dom0-data
check guest-write-read-back guest_ok DISK write-read-back
GSUM=$(grep -o "OVERCAST-GUEST-DISK write-read-back ok md5=[0-9a-f]*" $GLOG | sed 's/.*md5=//')
echo "blanket-guest: blkback vbd-$DOMID-51728: rd_req $(cat $VBD/statistics/rd_req) wr_req $(cat $VBD/statistics/wr_req); vif$DOMID.0: $(cat /sys/class/net/vif$DOMID.0/statistics/rx_bytes) B in, $(cat /sys/class/net/vif$DOMID.0/statistics/tx_bytes) B out"
check blkback-served sh -c "[ \$(cat $VBD/statistics/rd_req) -gt 0 ] && [ \$(cat $VBD/statistics/wr_req) -gt 0 ]"
$IP -s link show bnet0
barrier guest-checked 1500
barrier peer-pinged 300

# --- the guest goes; Dom0 reads what it wrote, through blanket_blk -----------------------------------------------------
check guest-destroyed xl destroy $GUEST
check blkback-vbd-gone wait_for 60 sh -c "! test -e $VBD"
# guest_data_intact: the 16 MiB the guest wrote at 16 MiB, read O_DIRECT through blanket_blk, has the guest's md5.
guest_data_intact() {
  local s
  s=$(dd if=/dev/bvd0 bs=64k skip=256 count=256 iflag=direct 2>/dev/null | md5sum)
  echo "Dom0 reads md5=${s%% *}, the guest wrote md5=$GSUM"
  [ -n "$GSUM" ] && [ "${s%% *}" = "$GSUM" ]
}
check dom0-reads-guest-data guest_data_intact

# --- unload and reload blanket.ko: the devices come back with the same names, the guest's data still there ----------
removed_clean() { dmesg | grep "blanket_net: $VN: bnet0 removed" | tail -1 | grep -q '0 outstanding; header errors rx 0 tx 0'; }
check rmmod-blanket rmmod blanket
check rmmod-net-clean removed_clean
check devices-released sh -c "! test -e /sys/class/net/bnet0 && ! test -e /dev/bvd0"
check reinsmod-blanket insmod $M/blanket.ko
# The devices are driverless after rmmod: loading blanket.ko probes them at once (no manual bind).
bound_to() { [ "$(drv "$1")" = "$2" ]; }
check net-bound-at-load wait_for 10 bound_to "$VN" blanket_net
check disk-bound-at-load wait_for 10 bound_to "$VB" blanket_blk
check same-names-after-reload sh -c "test -e /sys/class/net/bnet0 && test -b /dev/bvd0"
check guest-data-after-reload guest_data_intact
check bnet0-back-on-bridge sh -c "$IP link set bnet0 master xenbr0 && $IP link set bnet0 up"
check dom0-ping-after-reload wait_for 60 ping -c 1 -W 2 $PEER
barrier done 900
check rmmod-blanket-end rmmod blanket
check_no_user_traps
check_no_oops
exit $OVC_FAILS
