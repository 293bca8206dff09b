# SPDX-License-Identifier: Apache-2.0
# Example harness: two guests on the broker's `shared` network reach each other (pytest).
"""A pytest harness to copy: two guests on `shared`, one pings the other.

Uses only the fixtures the installed `vmnet-broker` package registers
(`vmnet_network`, `vmnet_interface`), against the broker at
$VMNET_BROKER_SOCKET (or the default socket). Run as root (the guests are
network namespaces joined to the network's bridge by veth pairs):

    VMNET_BROKER_SOCKET=/run/vmnet-broker/vmnet-broker.sock pytest examples/python

`test_tap_descriptors_for_qemu` shows the other way a VM joins: a TAP
descriptor per guest, passed to QEMU with pass_fds (it checks the
descriptors and prints the command line; booting real guests needs a kernel
and an image, which a harness brings).

The guests use static addresses from the top of the subnet; on a network
shared with other VMs, pick addresses outside the DHCP range
(network.dhcp_start .. network.dhcp_end) or take leases instead.
"""
import ipaddress
import os
import shutil
import subprocess
import time
import uuid

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root")


class NamespaceGuest:
    """A network namespace held by a sleeping process, with eth0 on a bridge."""

    def __init__(self, bridge: str, address: str, prefix_length: int) -> None:
        self.process = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        self.host_end = "vmg-" + uuid.uuid4().hex[:8]
        pid = str(self.process.pid)
        # The veth pair: one end a port of the network's bridge, the other
        # moved into the guest as eth0, once unshare has made the namespace.
        for _ in range(200):
            if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        self.run_host("ip", "link", "add", self.host_end, "type", "veth",
                      "peer", "name", "eth0", "netns", pid)
        self.run_host("ip", "link", "set", self.host_end, "master", bridge, "up")
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "addr", "add", f"{address}/{prefix_length}", "dev", "eth0")
        self.run("ip", "link", "set", "eth0", "up")

    @staticmethod
    def run_host(*argv: str) -> None:
        subprocess.run(argv, check=True)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.process.pid), "-n", *argv],
                              check=check, capture_output=True, text=True)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)
        self.process.kill()
        self.process.wait()


@needs_root
def test_two_namespace_guests_reach_each_other(vmnet_network) -> None:
    network = vmnet_network("shared")
    subnet = ipaddress.IPv4Network(f"{network.subnet}/{network.prefix_length}")
    hosts = list(subnet.hosts())
    addresses = [str(hosts[-2]), str(hosts[-1])]
    guests = []
    try:
        for address in addresses:
            guests.append(NamespaceGuest(network.bridge, address, network.prefix_length))
        # A few tries: the bridge port needs a moment to start forwarding.
        ping = guests[0].run("ping", "-c", "1", "-w", "10", addresses[1], check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # And each reaches the host's side of the network, the gateway.
        ping = guests[1].run("ping", "-c", "1", "-w", "10", network.gateway, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        for guest in guests:
            guest.close()


@needs_root
def test_tap_descriptors_for_qemu(vmnet_interface) -> None:
    taps = [vmnet_interface("shared"), vmnet_interface("shared")]
    assert taps[0].mac != taps[1].mac and taps[0].bridge == taps[1].bridge
    for index, tap in enumerate(taps):
        fd = tap.fileno()
        command = ["qemu-system-x86_64", "-nographic", "-m", "256",
                   "-netdev", f"tap,id=net0,fd={fd},vhost=on",
                   "-device", f"virtio-net-pci,netdev=net0,mac={tap.mac}",
                   "-kernel", "YOUR-KERNEL", "-initrd", "YOUR-INITRD"]
        print(f"guest {index}:", " ".join(command))
        # A child gets the descriptor through pass_fds (it is close-on-exec
        # otherwise): here a shell that checks it is open, where the harness
        # would start QEMU with the command above.
        subprocess.run(["sh", "-c", f"test -e /proc/self/fd/{fd}"],
                       pass_fds=[fd], check=True)
    if shutil.which("qemu-system-x86_64") is None:
        print("qemu-system-x86_64 is not installed: apt-get install qemu-system-x86")
