#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the QEMU guest test's initramfs: busybox and virtio-net, DHCP, off.
#
# Usage: make-initramfs.sh KERNEL_VERSION OUTPUT
#
# The guest loads the virtio network driver of the kernel whose modules are
# in /lib/modules/KERNEL_VERSION, asks for a lease on eth0 and powers off,
# saying on its console (each on a line of its own):
#   VMNET-GUEST-INIT                      its init started
#   VMNET-GUEST-LEASE <address> <MAC>     the lease eth0 took, or
#   VMNET-GUEST-NO-LEASE                  none
#   VMNET-GUEST-DONE                      nothing follows but power off
# Needs a static busybox (Debian: busybox-static), which also unpacks the
# modules and writes the archive, and modprobe (kmod, which Debian's kernels
# depend on).
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 KERNEL_VERSION OUTPUT" >&2
    exit 2
fi
version=$1
output=$2
busybox=/bin/busybox
# Found in /sbin even when the caller's PATH lacks it.
PATH=$PATH:/usr/sbin:/sbin

# A dynamic busybox would find no C library in the guest.
if ! [ -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "$0: $busybox is missing or not static (install busybox-static)" >&2
    exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root" "$output.tmp"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/modules"
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# The drivers and what they depend on, dependencies first, as modprobe
# would load them; built-in ones are listed as "builtin NAME" and skipped.
# af_packet is what udhcpc's raw socket needs, built in on Debian.
modprobe --set-version "$version" --show-depends --all \
    virtio_pci virtio_net af_packet >"$root/depends"
: >"$root/modules/order"
while read -r kind path _; do
    [ "$kind" = insmod ] || continue
    name=$(basename "$path")
    # busybox's insmod hands the file to the kernel as it is, and not every
    # kernel decompresses modules itself. busybox unpacks xz and gzip; zstd
    # needs the zstd package.
    case $name in
    *.ko.xz) "$busybox" unxz -c "$path" >"$root/modules/${name%.xz}" ;;
    *.ko.gz) "$busybox" gunzip -c "$path" >"$root/modules/${name%.gz}" ;;
    *.ko.zst) zstd -qdc "$path" >"$root/modules/${name%.zst}" ;;
    *) cp "$path" "$root/modules/$name" ;;
    esac
    # A module that two drivers need is listed twice; load it once.
    grep -qx "${name%.ko*}.ko" "$root/modules/order" ||
        echo "${name%.ko*}.ko" >>"$root/modules/order"
done <"$root/depends"
rm "$root/depends"

cat >"$root/udhcpc.script" <<'SCRIPT'
#!/bin/sh
# udhcpc calls this with what happened; only the lease matters here.
[ "$1" = bound ] && echo "$ip" >/lease
exit 0
SCRIPT

cat >"$root/init" <<'INIT'
#!/bin/sh
# The kernel starts this without a console: the archive has no device
# nodes (making them needs root), devtmpfs brings them.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "VMNET-GUEST-INIT"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
while read -r module; do
    insmod "/modules/$module" || echo "VMNET-GUEST-ERROR insmod $module"
done </modules/order
# The driver registers eth0 while probing, which may outlast insmod.
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ $tries -lt 100 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -q -n -t 10 -s /udhcpc.script
if [ -s /lease ]; then
    echo "VMNET-GUEST-LEASE $(cat /lease) $(cat /sys/class/net/eth0/address)"
else
    echo "VMNET-GUEST-NO-LEASE"
fi
echo "VMNET-GUEST-DONE"
poweroff -f
INIT
chmod 755 "$root/init" "$root/udhcpc.script"

# Written beside OUTPUT and renamed, so OUTPUT is whole or absent.
(cd "$root" && find . | "$busybox" cpio -o -H newc -R 0:0) >"$output.tmp"
mv "$output.tmp" "$output"
