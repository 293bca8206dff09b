# SPDX-License-Identifier: Apache-2.0
# The pytest plugin's fixtures, in a pytest run of their own (pytester).
from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from conftest import Broker, wait_for

# A harness's test file, using only the plugin's fixtures (registered by the
# installed package's pytest11 entry point: nothing imports the plugin here).
HARNESS = '''
import os
import pathlib
import shutil
import fcntl
import time

def mine(connection):
    return [p for p in connection.status()["peers"] if p["pid"] == os.getpid()]

def test_uses_fixtures(vmnet_connection, vmnet_network, vmnet_interface):
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    network = vmnet_network("shared")
    assert network.name == "shared"
    host = vmnet_network("host")
    assert vmnet_network("host") == host
    iface = vmnet_interface("shared")
    assert iface.network == "shared" and iface.bridge == network.bridge
    fcntl.fcntl(iface.fileno(), fcntl.F_GETFD)
    with open("tap", "w") as f:
        f.write(iface.name)
    held = [p["networks"] for p in mine(vmnet_connection)]
    assert held == [["host", "shared"]] or held == [["shared", "host"]]

def test_previous_teardown_left_nothing(vmnet_connection):
    # The previous test's connection is closed and its device goes. The
    # broker closes its own copy of a sent descriptor on a thread of its own
    # (issue 10), so the device may outlive this process's close by that
    # close: wait for it (bounded), as for anything the broker does later.
    assert [p["networks"] for p in mine(vmnet_connection)] == [[]]
    device = "/sys/class/net/" + open("tap").read()
    deadline = time.monotonic() + 10
    while os.path.exists(device) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(device)
'''


def test_plugin_fixtures(broker: Broker, pytester: pytest.Pytester,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMNET_BROKER_SOCKET", broker.socket)
    pytester.makepyfile(test_harness=HARNESS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    pid = int((pytester.path / "pid").read_text())
    tap = (pytester.path / "tap").read_text()
    # Once that pytest has exited, the broker holds nothing for it.
    wait_for(lambda: not [p for p in broker.status()["peers"] if p["pid"] == pid],
             "the harness's peer to go")
    wait_for(lambda: not os.path.exists(f"/sys/class/net/{tap}"), "the TAP device to go")


def test_plugin_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    for fixture in ("vmnet_connection", "vmnet_network", "vmnet_interface"):
        result.stdout.fnmatch_lines([f"*{fixture}*"])


EXAMPLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "python" / "test_two_guests.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/python is not in this tree (an sdist)")
@pytest.mark.parametrize("kind", ["auto", "namespace"])
def test_example_harness(broker: Broker, pytester: pytest.Pytester,
                         monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    # The example a user copies, run as they would, against our broker: its
    # default (QEMU guests where QEMU can run) and its namespace guests.
    monkeypatch.setenv("VMNET_BROKER_SOCKET", broker.socket)
    monkeypatch.setenv("VMNET_EXAMPLE_GUESTS", kind)
    monkeypatch.setenv("VMNET_EXAMPLE_INITRAMFS_SCRIPT",
                       str(EXAMPLE.parents[2] / "tests" / "qemu" / "make-initramfs.sh"))
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-s", "-rs")
    # One of its two tests runs, the other is skipped as not chosen.
    result.assert_outcomes(passed=1, skipped=1)
    print("\n".join(line for line in result.outlines if "reached" in line))
    wait_for(lambda: not [p for p in broker.status()["peers"]
                          if p["networks"] and p["pid"] != os.getpid()],
             "the example's references to go")
