# SPDX-License-Identifier: Apache-2.0
# Test harness: the real broker binary in a private network namespace, on a private socket.
"""Starts $VMNET_BROKER_BIN (the broker from the build) for the session.

Like tests/integration/harness.c, the test process first moves itself into
new network and mount namespaces (lo up, /sys mounted again for the new
namespace), so nothing any test does reaches the host's interfaces, and
becomes the reaper of what the broker leaves behind (dnsmasq). Without root,
or without the broker binary, every test is skipped with the reason.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Callable, Iterator

import pytest

import vmnet_broker

pytest_plugins = ["pytester"]

# Far longer than anything takes: a slow machine makes a test slower, never
# failed.
WAIT_SECONDS = 20.0
NOBODY = 65534

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_CHILD_SUBREAPER = 36

# Networks the tests use beyond the built-in shared and host. Without DHCP
# and router advertisements no dnsmasq runs, so creating nine is quick.
QUIET = {"mode": "host", "dhcp": False, "ipv6": False}
CONFIGS = {
    **{f"n{i}": QUIET for i in range(1, 10)},
    "rootonly": {**QUIET, "allowed_users": ["root"]},
    # Overlaps the dummy interface's address: creation fails (CREATE_FAILURE).
    "overlap": {**QUIET, "subnet": "10.123.0.1"},
    # With DHCP: its dnsmasq fails at every restart (FAILING_DNSMASQ).
    "degraded": {"mode": "host", "ipv6": False},
}

# Stands in for dnsmasq (the broker's test hook VMNET_BROKER_DNSMASQ): the
# network "degraded" gets the real dnsmasq once, then each restart fails at
# once, so the broker gives up on it; the other networks' dnsmasq runs as
# usual. The broker starts it with --conf-file=RUNTIME_DIR/NETWORK/dnsmasq.conf.
FAILING_DNSMASQ = """#!/bin/sh
case "$*" in
*/degraded/dnsmasq.conf*)
    [ -e "$0.started" ] && exit 1
    : > "$0.started" ;;
esac
exec /usr/sbin/dnsmasq "$@"
"""
OVERLAP_ADDRESS = "10.123.0.5/24"

_skip_reason = None


def _enter_private_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"{what}: {os.strerror(error)}")

    # Runs before any test thread exists (unshare(CLONE_NEWNS) needs that).
    check(libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    check(libc.umount2(b"/sys", MNT_DETACH), "umount /sys")
    check(libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None), "mount /sys")
    check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def pytest_configure(config: pytest.Config) -> None:
    global _skip_reason
    if os.geteuid() != 0:
        _skip_reason = ("needs root: the broker runs in a private network "
                        "namespace and makes bridges")
    elif not os.path.isfile(os.environ.get("VMNET_BROKER_BIN", "")):
        _skip_reason = "VMNET_BROKER_BIN does not name the broker binary (ctest sets it)"
    else:
        _enter_private_namespace()


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if _skip_reason is not None:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=_skip_reason))


class Broker:
    """One broker process, its socket, configuration and log."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="vmnet-py-")
        # nobody must reach the socket (0666 itself) for the NOT_ALLOWED test.
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "broker.sock")
        self.config_dir = os.path.join(self.dir, "config")
        self.log_path = os.path.join(self.dir, "broker.log")
        os.mkdir(self.config_dir)
        for name, config in CONFIGS.items():
            with open(os.path.join(self.config_dir, name + ".json"), "w") as f:
                json.dump(config, f)
        self.process: "subprocess.Popen[bytes] | None" = None

    def start(self) -> None:
        wrapper = os.path.join(self.dir, "failing-dnsmasq.sh")
        with open(wrapper, "w") as f:
            f.write(FAILING_DNSMASQ)
        os.chmod(wrapper, 0o755)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [os.environ["VMNET_BROKER_BIN"], "--socket", self.socket,
                 "--config-dir", self.config_dir, "--idle-timeout", "1",
                 # The test's own guest MAC key, never the host's.
                 "--state-dir", os.path.join(self.dir, "state")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                # The default instance's plain names ("vmb-..."), which the
                # tests expect.
                env={**os.environ, "VMNET_BROKER_INSTANCE": "default",
                     "VMNET_BROKER_DNSMASQ": wrapper})
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                with vmnet_broker.connect(self.socket) as connection:
                    connection.status()
                return
            except vmnet_broker.Error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the broker did not start:\n" + self.log())
                time.sleep(0.01)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def status(self) -> dict:
        with vmnet_broker.connect(self.socket) as connection:
            return connection.status()

    def peers(self, name: str) -> int:
        """How many peers hold network name (0 when it does not exist)."""
        for network in self.status()["networks"]:
            if network["name"] == name:
                return network["peers"]
        return 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGTERM is ignored while peers are connected: then SIGKILL.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _kill_orphans()
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill_orphans() -> None:
    """Ends and reaps what the broker left to us (we are the subreaper)."""
    me = os.getpid()
    children = set()
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                children.update(int(pid) for pid in f.read().split())
        except OSError:
            pass
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass


_session_broker: "Broker | None" = None


def _session_broker_status() -> str:
    try:
        return json.dumps(_session_broker.status()) if _session_broker else "no broker"
    except Exception as error:  # for a failure message only
        return f"unavailable ({error})"


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    global _session_broker
    b = _session_broker = Broker()
    # The process-wide connection (acquire_network()) and the plugin's
    # fixtures find the broker through the environment, as users' code does.
    os.environ[vmnet_broker.SOCKET_ENV] = b.socket
    # For CREATE_FAILURE: an address (on lo, in our namespace) that the
    # "overlap" network's subnet overlaps.
    subprocess.run(["ip", "addr", "add", OVERLAP_ADDRESS, "dev", "lo"], check=True)
    try:
        b.start()
        yield b
    finally:
        log = b.log() if os.path.exists(b.log_path) else ""
        b.stop()
        if os.environ.get("VMNET_BROKER_SHOW_LOG"):
            print(log)


def wait_for(condition: Callable[[], bool], what: "str | Callable[[str], str]") -> None:
    """Polls condition until it holds; fails after WAIT_SECONDS. what names
    the wait (or formats it with the broker's status, for the failure)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            if callable(what):
                what = what(_session_broker_status())
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
