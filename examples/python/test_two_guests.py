# SPDX-License-Identifier: Apache-2.0
# Example harness: two guests on the broker's `shared` network reach each other (pytest).
"""A pytest harness to copy: two guests on `shared`, one pings the other.

Uses only the fixtures the installed `vmnet-broker` package registers
(`vmnet_network`, `vmnet_interface`), against the broker at
$VMNET_BROKER_SOCKET (or the default socket). Run as root:

    VMNET_BROKER_SOCKET=/run/vmnet-broker/vmnet-broker.sock pytest -s examples/python

Guests are QEMU VMs where QEMU can run: each gets a TAP descriptor from
`vmnet_interface` (passed with pass_fds), boots the host's kernel with a
tiny busybox initramfs (made with tests/qemu/make-initramfs.sh from this
repository), takes a DHCP lease from the broker's dnsmasq, and the second
pings the first. Elsewhere they are network namespaces joined to the
network's bridge (`vmnet_network(...).bridge`) by veth pairs, with static
addresses from the top of the subnet. VMNET_EXAMPLE_GUESTS=qemu or
=namespace picks one; the default (auto) prefers QEMU.
"""
import ipaddress
import os
import pathlib
import queue
import shutil
import subprocess
import threading
import time
import uuid
from typing import List, Optional

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root")

# Bounds on waits, far above what they take (a TCG guest boots in ~10 s):
# a slow machine makes the test slower, never failed.
KVM_BOOT_SECONDS = 20
GUEST_SECONDS = 180
# The repository's initramfs builder; a copy of this file elsewhere names it
# in VMNET_EXAMPLE_INITRAMFS_SCRIPT.
INITRAMFS_SCRIPT = pathlib.Path(os.environ.get(
    "VMNET_EXAMPLE_INITRAMFS_SCRIPT",
    pathlib.Path(__file__).resolve().parents[2] / "tests" / "qemu" / "make-initramfs.sh"))

# Replaces make-initramfs.sh's /init (a later cpio archive overrides an
# earlier one's files): take a lease, then wait (first guest) or ping the
# address given as vmnet.peer= on the kernel command line (second guest).
GUEST_INIT = r"""#!/bin/sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "EXAMPLE-INIT"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
while read -r module; do insmod "/modules/$module"; done </modules/order
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ $tries -lt 100 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -q -n -t 10 -s /example-udhcpc.script
echo "EXAMPLE-LEASE $(cat /lease 2>/dev/null)"
peer=$(sed -n 's/.*vmnet\.peer=\([0-9.]*\).*/\1/p' /proc/cmdline)
if [ -n "$peer" ]; then
    result=UNREACHED
    for try in $(seq 30); do
        if ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then
            result=REACHED
            break
        fi
    done
    echo "EXAMPLE-$result $peer"
else
    sleep 600
fi
poweroff -f
"""
GUEST_UDHCPC = r"""#!/bin/sh
# Applies the lease (busybox udhcpc gives the prefix length as $mask).
if [ "$1" = bound ]; then
    ip addr add "$ip/$mask" dev "$interface"
    echo "$ip" >/lease
fi
exit 0
"""


def guest_kind() -> str:
    wanted = os.environ.get("VMNET_EXAMPLE_GUESTS", "auto")
    if wanted in ("qemu", "namespace"):
        return wanted
    return "qemu" if qemu_missing() is None else "namespace"


def host_kernel() -> Optional[str]:
    """The newest /boot/vmlinuz-VERSION whose modules are installed."""
    kernels = sorted(p for p in pathlib.Path("/boot").glob("vmlinuz-*")
                     if (pathlib.Path("/lib/modules") / p.name[len("vmlinuz-"):]).is_dir())
    return str(kernels[-1]) if kernels else None


def qemu_missing() -> Optional[str]:
    """Why QEMU guests cannot run here, or None."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if host_kernel() is None:
        return "no /boot/vmlinuz-VERSION with /lib/modules/VERSION"
    if not INITRAMFS_SCRIPT.exists():
        return f"{INITRAMFS_SCRIPT} not found (it is in the vmnet-broker repository)"
    if not os.path.exists("/bin/busybox"):
        return "/bin/busybox is missing (apt-get install busybox-static)"
    return None


@pytest.fixture(scope="module")
def initramfs(tmp_path_factory: pytest.TempPathFactory) -> str:
    reason = qemu_missing()
    if reason is not None:
        pytest.skip(reason)
    kernel = host_kernel()
    assert kernel is not None
    directory = tmp_path_factory.mktemp("guest")
    base = directory / "base.cpio"
    subprocess.run(["sh", str(INITRAMFS_SCRIPT), kernel.split("vmlinuz-", 1)[1], str(base)],
                   check=True)
    overlay = directory / "overlay"
    overlay.mkdir()
    for name, text in (("init", GUEST_INIT), ("example-udhcpc.script", GUEST_UDHCPC)):
        (overlay / name).write_text(text)
        (overlay / name).chmod(0o755)
    extra = subprocess.run(["/bin/busybox", "cpio", "-o", "-H", "newc", "-R", "0:0"],
                           input=b"init\nexample-udhcpc.script\n", cwd=overlay,
                           check=True, capture_output=True).stdout
    output = directory / "initramfs.cpio"
    output.write_bytes(base.read_bytes() + extra)
    return str(output)


class QemuGuest:
    """A VM on a TAP descriptor, its serial console read line by line."""

    kvm_works = True

    def __init__(self, tap, initramfs: str, peer: Optional[str] = None) -> None:
        self.tap = tap
        self.initramfs = initramfs
        self.peer = peer
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.console: List[str] = []
        self.process: Optional[subprocess.Popen] = None
        # KVM where it works; a KVM that cannot run a kernel (some nested
        # hosts) is noticed by a silent console and replaced by TCG.
        if QemuGuest.kvm_works and os.access("/dev/kvm", os.R_OK | os.W_OK):
            self.boot("kvm")
            if self.wait_for("EXAMPLE-INIT", KVM_BOOT_SECONDS) is not None:
                return
            self.close()
            QemuGuest.kvm_works = False  # the next guest goes straight to TCG
        self.boot("tcg")
        if self.wait_for("EXAMPLE-INIT", GUEST_SECONDS) is None:
            raise AssertionError("the guest did not start:\n" + "\n".join(self.console))

    def boot(self, accel: str) -> None:
        fd = self.tap.fileno()
        vhost = "on" if os.path.exists("/dev/vhost-net") else "off"
        append = "console=ttyS0 quiet panic=-1"
        if self.peer:
            append += f" vmnet.peer={self.peer}"
        self.lines = queue.Queue()
        self.process = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", accel, "-m", "256", "-nographic",
             "-no-reboot", "-kernel", host_kernel(), "-initrd", self.initramfs,
             "-append", append,
             "-netdev", f"tap,id=net0,fd={fd},vhost={vhost}",
             "-device", f"virtio-net-pci,netdev=net0,mac={self.tap.mac}"],
            pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace")
        threading.Thread(target=self.read, args=(self.process, self.lines),
                         daemon=True).start()

    @staticmethod
    def read(process: subprocess.Popen, lines: "queue.Queue[str]") -> None:
        for line in process.stdout:
            lines.put(line.strip())

    def wait_for(self, prefix: str, seconds: float) -> Optional[str]:
        """The first console line holding prefix, from there on, or None."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            self.console.append(line)
            # The firmware's escape sequences may precede the guest's text.
            if prefix in line:
                return line[line.index(prefix):]

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class NamespaceGuest:
    """A network namespace held by a sleeping process, with eth0 on a bridge."""

    def __init__(self, bridge: str, address: str, prefix_length: int) -> None:
        self.process = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        self.host_end = "vmg-" + uuid.uuid4().hex[:8]
        pid = str(self.process.pid)
        # The veth pair: one end a port of the network's bridge, the other
        # moved into the guest as eth0, once unshare has made the namespace.
        for _ in range(1000):
            if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        subprocess.run(["ip", "link", "add", self.host_end, "type", "veth",
                        "peer", "name", "eth0", "netns", pid], check=True)
        subprocess.run(["ip", "link", "set", self.host_end, "master", bridge, "up"],
                       check=True)
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "addr", "add", f"{address}/{prefix_length}", "dev", "eth0")
        self.run("ip", "link", "set", "eth0", "up")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.process.pid), "-n", *argv],
                              check=check, capture_output=True, text=True)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)
        self.process.kill()
        self.process.wait()


@needs_root
@pytest.mark.skipif(guest_kind() != "qemu", reason="QEMU guests not chosen or cannot run")
def test_two_qemu_guests_reach_each_other(vmnet_network, vmnet_interface,
                                          initramfs: str) -> None:
    network = vmnet_network("shared")
    subnet = ipaddress.IPv4Network(f"{network.subnet}/{network.prefix_length}")
    first = QemuGuest(vmnet_interface("shared"), initramfs)
    second = None
    try:
        lease = first.wait_for("EXAMPLE-LEASE", GUEST_SECONDS)
        assert lease is not None, "\n".join(first.console)
        address = lease.split()[1] if len(lease.split()) > 1 else ""
        assert address and ipaddress.IPv4Address(address) in subnet, lease
        second = QemuGuest(vmnet_interface("shared"), initramfs, peer=address)
        result = second.wait_for("EXAMPLE-REACHED", GUEST_SECONDS)
        assert result is not None, "\n".join(second.console)
        print(f"qemu guest {second.tap.mac} reached {address} on {network.bridge}")
    finally:
        for guest in (first, second):
            if guest is not None:
                guest.close()


@needs_root
@pytest.mark.skipif(guest_kind() != "namespace", reason="namespace guests not chosen")
def test_two_namespace_guests_reach_each_other(vmnet_network) -> None:
    network = vmnet_network("shared")
    subnet = ipaddress.IPv4Network(f"{network.subnet}/{network.prefix_length}")
    hosts = list(subnet.hosts())
    # Static addresses: on a network shared with other VMs, pick them outside
    # network.dhcp_start .. network.dhcp_end instead.
    addresses = [str(hosts[-2]), str(hosts[-1])]
    guests = []
    try:
        for address in addresses:
            guests.append(NamespaceGuest(network.bridge, address, network.prefix_length))
        # ping waits (-w) for the bridge port to start forwarding.
        ping = guests[0].run("ping", "-c", "1", "-w", "10", addresses[1], check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # Each reaches the host's side of the network too, the gateway.
        ping = guests[1].run("ping", "-c", "1", "-w", "10", network.gateway, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        print(f"namespace guests {addresses} reached each other on {network.bridge}")
    finally:
        for guest in guests:
            guest.close()
