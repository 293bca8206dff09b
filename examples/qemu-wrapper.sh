#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs QEMU, unprivileged, with a virtio NIC on a vmnet-broker network.
#
# Usage: examples/qemu-wrapper.sh [QEMU ARGS...]
#   e.g. examples/qemu-wrapper.sh -m 1G -enable-kvm -drive file=disk.qcow2
#
# The broker makes a TAP device on the network's bridge, owned by you, and
# vmnet-broker-client puts its descriptor on fd 3 of QEMU; the device and the
# network's reference go when QEMU exits. The guest gets the MAC the broker
# gave out (the same on every run, so it keeps its DHCP lease), taken from
# VMNET_BROKER_INTERFACES (compact JSON: the first interface's "mac":"...").
#
# Environment:
#   VMNET_NETWORK  the network (default: shared)
#   QEMU           the QEMU binary (default: qemu-system-x86_64)
#   VHOST          on or off (default: on when /dev/vhost-net is usable,
#                  which often means being in group kvm; off is slower)
#   VMNET_BROKER_SOCKET, VMNET_BROKER_CLIENT  the broker's socket, the CLI
[ -r /dev/vhost-net ] && [ -w /dev/vhost-net ] && : "${VHOST:=on}" || : "${VHOST:=off}"
export QEMU VHOST
exec "${VMNET_BROKER_CLIENT:-vmnet-broker-client}" run --tap "${VMNET_NETWORK:-shared}:3" -- sh -c 'mac=${VMNET_BROKER_INTERFACES#*\"mac\":\"}; exec "${QEMU:-qemu-system-x86_64}" -netdev tap,id=n0,fd=3,vhost="$VHOST" -device virtio-net-pci,netdev=n0,mac="${mac%%\"*}" "$@"' qemu-wrapper "$@"
