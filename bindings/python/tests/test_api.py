# SPDX-License-Identifier: Apache-2.0
# The Python API against the real broker: calls, attributes, errors, peers, TAP descriptors.
from __future__ import annotations

import fcntl
import gc
import importlib.metadata
import ipaddress
import json
import os
import pathlib
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import uuid as uuidlib

import pytest

import vmnet_broker
from vmnet_broker import _errors
from conftest import NOBODY, Broker, wait_for

TUNGETIFF = 0x800454D2
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def peers_of_pid(status: dict, pid: int) -> list:
    return [p for p in status["peers"] if p["pid"] == pid]


def unused(broker: Broker, name: str) -> None:
    """Waits until no peer holds name: a connection an earlier test closed
    is dropped by the broker asynchronously."""
    wait_for(lambda: broker.peers(name) == 0,
             f"{name} to be unused (status: {{}})".format)


def tap_name(fd: int) -> str:
    ifreq = fcntl.ioctl(fd, TUNGETIFF, b"\0" * 40)
    return ifreq[:16].split(b"\0", 1)[0].decode()


def link(name: str) -> dict:
    out = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", name],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name],
                          capture_output=True).returncode == 0


# ---- Module ------------------------------------------------------------------


def test_version_constants_strerror() -> None:
    # One source of truth: the package's metadata and the C library's
    # version both come from CMake's project(VERSION).
    assert vmnet_broker.__version__ == importlib.metadata.version("vmnet-broker")
    assert vmnet_broker.version() == vmnet_broker.__version__
    assert re.match(r"^\d+\.\d+\.\d+$", vmnet_broker.__version__)
    names = ["SUCCESS", "CONNECTION_FAILURE", "INVALID_REPLY", "NOT_ALLOWED",
             "INVALID_REQUEST", "NOT_FOUND", "CREATE_FAILURE", "INTERNAL_ERROR"]
    assert [getattr(vmnet_broker, n) for n in names] == list(range(8))
    assert [getattr(vmnet_broker._native, "VMNET_BROKER_" + n) for n in names] == list(range(8))
    assert vmnet_broker.strerror(vmnet_broker.NOT_FOUND) == "network not found"
    assert vmnet_broker.strerror(99) == "unknown status"
    assert vmnet_broker.strerror(2**40) == "unknown status"
    with pytest.raises(TypeError):
        vmnet_broker.strerror("5")  # type: ignore[arg-type]
    assert vmnet_broker.DEFAULT_SOCKET == "/run/vmnet-broker/vmnet-broker.sock"
    assert vmnet_broker.SOCKET_ENV == "VMNET_BROKER_SOCKET"


def test_exception_classes() -> None:
    expected = [
        (vmnet_broker.ConnectionFailureError, 1),
        (vmnet_broker.InvalidReplyError, 2),
        (vmnet_broker.NotAllowedError, 3),
        (vmnet_broker.InvalidRequestError, 4),
        (vmnet_broker.NotFoundError, 5),
        (vmnet_broker.CreateFailureError, 6),
        (vmnet_broker.InternalError, 7),
    ]
    for cls, code in expected:
        error = vmnet_broker.error_from_code(code)
        assert type(error) is cls and isinstance(error, vmnet_broker.Error)
        assert error.code == code and str(error) == vmnet_broker.strerror(code)
        assert cls().code == code
    # A code a later library may add: the base class, with that code.
    error = vmnet_broker.error_from_code(42)
    assert type(error) is vmnet_broker.Error and error.code == 42
    with pytest.raises(vmnet_broker.Error) as raised:
        _errors._raise_status(42)
    assert type(raised.value) is vmnet_broker.Error and raised.value.code == 42
    # Exceptions cross processes (multiprocessing pickles them).
    import pickle
    copy = pickle.loads(pickle.dumps(vmnet_broker.NotAllowedError()))
    assert type(copy) is vmnet_broker.NotAllowedError and copy.code == 3
    assert copy.broker_message is None
    # The broker's message follows the strerror text, and survives pickling.
    error = vmnet_broker.error_from_code(6, "subnet overlaps")
    assert str(error) == vmnet_broker.strerror(6) + ": subnet overlaps"
    assert error.broker_message == "subnet overlaps"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, str(copy), copy.broker_message) == \
        (vmnet_broker.CreateFailureError, 6, str(error), "subnet overlaps")
    with pytest.raises(vmnet_broker.InternalError) as raised:
        _errors._raise_status(7, "why")
    assert raised.value.broker_message == "why"


# ---- Connections and networks ------------------------------------------------


def test_acquire_attributes_release(broker: Broker) -> None:
    unused(broker, "shared")
    with vmnet_broker.connect(broker.socket) as connection:
        network = connection.acquire("shared")
        assert network.name == "shared" and network.mode == "shared"
        assert network.bridge and network.bridge.startswith("vmb-")
        subnet = ipaddress.IPv4Network(f"{network.subnet}/{network.mask}")
        assert subnet.prefixlen == network.prefix_length == 24
        assert ipaddress.IPv4Address(network.gateway) in subnet
        assert uuidlib.UUID(network.uuid).version == 4
        assert isinstance(network.mtu, int) and network.mtu >= 576
        # The DHCP range and DNS server of a network that runs dnsmasq.
        assert ipaddress.IPv4Address(network.dhcp_start) in subnet
        assert ipaddress.IPv4Address(network.dhcp_end) in subnet
        assert network.dns is None or ipaddress.IPv4Address(network.dns)
        if network.ipv6_prefix is not None:
            assert ipaddress.IPv6Network(
                f"{network.ipv6_prefix}/{network.ipv6_prefix_length}")
        assert network.description is None
        as_dict = network.to_dict()
        assert as_dict == json.loads(network.json)
        assert as_dict["uuid"] == network.uuid and as_dict["bridge"] == network.bridge
        text = repr(network)
        for part in (network.name, network.bridge, network.subnet, network.uuid):
            assert part in text
        # Equal by uuid: the same instance of the network, acquired again.
        again = connection.acquire("shared")
        assert again == network and hash(again) == hash(network)
        assert again is not network and network != "shared"
        with pytest.raises(AttributeError):
            network.name = "other"  # type: ignore[misc]
        with pytest.raises(TypeError):
            vmnet_broker.Network()

        mine = peers_of_pid(connection.status(), os.getpid())
        assert any(p["networks"] == ["shared"] for p in mine)
        connection.release("shared")
        assert broker.peers("shared") == 0
        with pytest.raises(vmnet_broker.NotFoundError) as raised:
            connection.release("shared")
        assert raised.value.code == vmnet_broker.NOT_FOUND


def test_network_without_optional_fields(broker: Broker) -> None:
    with vmnet_broker.Connection(broker.socket) as connection:
        network = connection.acquire("n1")
        assert network.mode == "host"
        # No dnsmasq, no IPv6: absent fields read as None and 0.
        assert network.dhcp_start is None and network.dhcp_end is None
        assert network.ipv6_prefix is None and network.ipv6_prefix_length == 0


def test_connection_socket_from_environment_and_paths(broker: Broker,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMNET_BROKER_SOCKET", broker.socket)
    with vmnet_broker.connect() as connection:
        assert connection.status()["peers"]
    with vmnet_broker.Connection(pathlib.Path(broker.socket)) as connection:
        assert connection.acquire("host").mode == "host"
    with vmnet_broker.connect(os.fsencode(broker.socket), timeout=10) as connection:
        assert connection.status()["networks"] is not None
    monkeypatch.setenv("VMNET_BROKER_SOCKET", broker.socket + ".missing")
    with pytest.raises(vmnet_broker.ConnectionFailureError) as raised:
        vmnet_broker.connect()
    assert raised.value.code == 1 and str(raised.value) == vmnet_broker.strerror(1)


def test_status_fields_and_version(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        connection.acquire("host")
        status = connection.status()
        assert status["version"] == vmnet_broker.__version__
        host = [n for n in status["networks"] if n["name"] == "host"][0]
        assert host["mode"] == "host" and host["peers"] >= 1
        assert host["idle_remaining"] is None and host["persistent"] is False
        me = peers_of_pid(status, os.getpid())
        assert me and me[0]["uid"] == 0


def test_typed_status_matches_the_object(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        network = connection.acquire("host")
        status = connection.get_status()
        assert status.version == vmnet_broker.__version__
        assert status.to_dict()["version"] == status.version
        host = status.network("host")
        assert host is not None and status.network("no-such-network") is None
        assert (host.name, host.mode, host.bridge, host.subnet, host.prefix_length,
                host.uuid) == ("host", "host", network.bridge, network.subnet,
                               network.prefix_length, network.uuid)
        assert host.peers >= 1 and host.idle_remaining is None
        assert host.persistent is False
        # A healthy network: not degraded, no reason.
        assert host.degraded is False and host.degraded_reason is None
        me = [p for p in status.peers if p.pid == os.getpid()]
        assert me and me[0].uid == 0 and me[0].gid == 0 and "host" in me[0].networks
        for item in (status, host, me[0]):
            with pytest.raises(TypeError):
                type(item)()


def test_degraded_once_dnsmasq_is_given_up(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        connection.acquire("degraded")
        connection.acquire("host")
        whole = connection.get_status().network("degraded")
        assert whole is not None and not whole.degraded and whole.degraded_reason is None
        with open(os.path.join(broker.dir, "degraded", "dnsmasq.pid")) as f:
            pid = int(f.read())
        # Killed, it fails at each restart (a second apart): after five
        # failures in a row the broker gives up on it.
        os.kill(pid, signal.SIGKILL)

        def degraded() -> bool:
            network = connection.get_status().network("degraded")
            return network is not None and network.degraded

        wait_for(degraded, lambda status: f"degraded in {status}\nlog:\n{broker.log()}")
        network = connection.get_status().network("degraded")
        assert network is not None and network.degraded is True
        assert network.degraded_reason is not None and "dnsmasq" in network.degraded_reason
        # The decoded object says the same.
        [entry] = [n for n in connection.status()["networks"] if n["name"] == "degraded"]
        assert entry["degraded"] is True
        assert entry["degraded_reason"] == network.degraded_reason
        host = connection.get_status().network("host")
        assert host is not None and host.degraded is False and host.degraded_reason is None


def test_closed_connection(broker: Broker) -> None:
    connection = vmnet_broker.connect(broker.socket)
    fd = connection.fileno()
    assert stat.S_ISSOCK(os.fstat(fd).st_mode)
    assert not connection.closed and "fd=" in repr(connection)
    with connection:
        pass
    assert connection.closed and "closed" in repr(connection)
    connection.close()  # idempotent
    for call in (lambda: connection.acquire("shared"),
                 lambda: connection.release("shared"),
                 lambda: connection.open_interface("shared"),
                 connection.status, connection.fileno, connection.shutdown,
                 lambda: connection.set_timeout(1)):
        with pytest.raises(ValueError):
            call()


def test_two_connections_are_two_peers(broker: Broker) -> None:
    unused(broker, "shared")
    unused(broker, "host")
    with vmnet_broker.connect(broker.socket) as a, vmnet_broker.connect(broker.socket) as b:
        a.acquire("shared")
        b.acquire("host")
        held = sorted(tuple(p["networks"]) for p in peers_of_pid(a.status(), os.getpid())
                      if p["networks"])
        assert held == [("host",), ("shared",)]
        assert broker.peers("shared") >= 1 and broker.peers("host") >= 1


def test_reference_dropped_when_connection_closed(broker: Broker) -> None:
    unused(broker, "n2")
    connection = vmnet_broker.connect(broker.socket)
    connection.acquire("n2")
    assert broker.peers("n2") == 1
    connection.close()
    wait_for(lambda: broker.peers("n2") == 0, "n2's reference to be dropped")


def test_reference_dropped_when_process_killed(broker: Broker) -> None:
    unused(broker, "n3")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold n3 until killed
        try:
            os.close(read_end)
            connection = vmnet_broker.connect(broker.socket)
            connection.acquire("n3")
            os.write(write_end, b"held\n")
            while True:
                signal.pause()
        finally:
            os._exit(1)
    os.close(write_end)
    try:
        assert os.read(read_end, 5) == b"held\n"
        status = broker.status()
        assert [p["networks"] for p in peers_of_pid(status, pid)] == [["n3"]]
        assert broker.peers("n3") == 1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
    wait_for(lambda: broker.peers("n3") == 0 and not peers_of_pid(broker.status(), pid),
             "the killed process's reference to be dropped")


def test_bad_arguments(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        for method in (connection.acquire, connection.release, connection.open_interface,
                       vmnet_broker.acquire_network, vmnet_broker.release_network,
                       vmnet_broker.open_interface):
            for bad in (None, b"shared", 5, ["shared"]):
                with pytest.raises(TypeError):
                    method(bad)  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                method("sha\0red")
            with pytest.raises(ValueError):  # not encodable as UTF-8
                method("\udc80")
        # Well-formed str, invalid network name: the broker's answer.
        for bad in ("", "bad/name", "x" * 5000, "-lead", "sp ace"):
            with pytest.raises(vmnet_broker.InvalidRequestError) as raised:
                connection.acquire(bad)
            assert raised.value.code == vmnet_broker.INVALID_REQUEST
            # The broker says what a valid name is (or, for a request
            # over its size limit, that it is too long).
            message = raised.value.broker_message
            reason = "too long" if len(bad) > 1000 else "invalid network name"
            assert message and reason in message, message
            assert str(raised.value) == f"{vmnet_broker.strerror(4)}: {message}"
            assert connection.last_message == message
        # The connection still works after all that; a success clears the
        # connection's message.
        assert connection.acquire("host").name == "host"
        assert connection.last_message is None
        for bad_timeout in ("1", [1], True):
            with pytest.raises(TypeError):
                connection.set_timeout(bad_timeout)  # type: ignore[arg-type]
        for bad_timeout in (-1, float("nan"), 1e12):
            with pytest.raises(ValueError):
                connection.set_timeout(bad_timeout)
        with pytest.raises(TypeError):
            vmnet_broker.connect(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            vmnet_broker.connect("/tmp/a\0b")


def test_not_found(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        with pytest.raises(vmnet_broker.NotFoundError) as raised:
            connection.acquire("nosuchnetwork")
        assert raised.value.code == 5
        assert str(raised.value).startswith(vmnet_broker.strerror(5))
        # With or without a message from the broker, the text and the
        # attribute agree.
        if raised.value.broker_message is None:
            assert str(raised.value) == vmnet_broker.strerror(5)
        else:
            assert raised.value.broker_message in str(raised.value)
        with pytest.raises(vmnet_broker.NotFoundError):
            connection.open_interface("nosuchnetwork")


def test_ninth_network_is_internal_error(broker: Broker) -> None:
    # With the cycle collector off, close() alone must end the connection,
    # even though the caught exception's traceback (a reference cycle with
    # `raised`) outlives the call that raised it.
    gc.disable()
    try:
        with vmnet_broker.connect(broker.socket) as connection:
            for i in range(1, 9):
                connection.acquire(f"n{i}")
            with pytest.raises(vmnet_broker.InternalError) as raised:
                connection.acquire("n9")
            assert raised.value.code == 7
            # The broker names the limit, in the exception and on the
            # connection (the last call on it).
            message = raised.value.broker_message
            assert message and "8 networks" in message, message
            assert message in str(raised.value)
            assert connection.last_message == message
            # Still a working peer holding its eight.
            held = peers_of_pid(connection.status(), os.getpid())
            assert any(len(p["networks"]) == 8 for p in held)
        unused(broker, "n8")
    finally:
        gc.enable()


def test_create_failure(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        with pytest.raises(vmnet_broker.CreateFailureError) as raised:
            connection.acquire("overlap")
        assert raised.value.code == 6
        # Why the creation failed: the overlapping subnet.
        message = raised.value.broker_message
        assert message and "overlap" in message and "10.123." in message, message
        assert connection.last_message == message


def _child_as_nobody(broker: Broker, name: str) -> int:
    """The status code a client running as nobody gets acquiring name."""
    pid = os.fork()
    if pid == 0:
        code = 100
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                with vmnet_broker.connect(broker.socket) as connection:
                    connection.acquire(name)
                code = 0
            except vmnet_broker.Error as error:
                code = error.code
        finally:
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def test_not_allowed_for_non_root_peer(broker: Broker) -> None:
    # The socket is 0666: nobody connects, and is refused the root-only
    # network but not an open one (so 3 is the policy, not the socket).
    assert stat.S_IMODE(os.stat(broker.socket).st_mode) == 0o666
    assert _child_as_nobody(broker, "rootonly") == vmnet_broker.NOT_ALLOWED
    assert _child_as_nobody(broker, "n4") == vmnet_broker.SUCCESS
    with vmnet_broker.connect(broker.socket) as connection:
        assert connection.acquire("rootonly").name == "rootonly"


def _silent_server(path: str, reply: bytes | None) -> tuple[socket.socket, threading.Event]:
    """A SOCK_SEQPACKET listener that takes one request and answers reply
    (None: never answers). Stands in for a broken or stuck broker."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    got_request = threading.Event()

    def serve() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(65536)
            got_request.set()
            if reply is not None:
                peer.send(reply)
            peer.recv(65536)  # until the client goes away

    threading.Thread(target=serve, daemon=True).start()
    return listener, got_request


def test_invalid_reply(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "garbage.sock")
    listener, _ = _silent_server(path, b"this is not json")
    with listener, vmnet_broker.connect(path) as connection:
        with pytest.raises(vmnet_broker.InvalidReplyError) as raised:
            connection.acquire("shared")
        assert raised.value.code == 2


def test_gil_released_and_shutdown_cancels(tmp_path: pathlib.Path) -> None:
    # A call waiting on a broker that never answers must let other threads
    # run: the fake server (a Python thread) receives the request and this
    # thread gets to cancel the call while it still waits. Were the GIL
    # held, nothing would run until the call's 600 s timeout ended it, and
    # `finished` would be set by then.
    path = str(tmp_path / "stuck.sock")
    listener, got_request = _silent_server(path, None)
    connection = vmnet_broker.connect(path, timeout=600)
    outcome: list = []
    finished = threading.Event()

    def call() -> None:
        try:
            connection.acquire("shared")
            outcome.append(None)
        except vmnet_broker.Error as error:
            outcome.append(error)
        finished.set()

    worker = threading.Thread(target=call)
    worker.start()
    with listener:
        assert got_request.wait(60)
        assert not finished.is_set()
        connection.shutdown()
        worker.join()
    assert isinstance(outcome[0], vmnet_broker.ConnectionFailureError)
    with pytest.raises(vmnet_broker.ConnectionFailureError):
        connection.status()
    connection.close()


def test_timeout(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "stuck.sock")
    listener, _ = _silent_server(path, None)
    with listener, vmnet_broker.connect(path, timeout=0.2) as connection:
        with pytest.raises(vmnet_broker.ConnectionFailureError):
            connection.acquire("shared")
        # The connection is lost: a late reply can never be taken.
        with pytest.raises(vmnet_broker.ConnectionFailureError):
            connection.acquire("shared")


# ---- The process-wide connection -----------------------------------------------


def test_process_wide_connection(broker: Broker) -> None:
    unused(broker, "n5")
    network = vmnet_broker.acquire_network("n5")
    assert network.name == "n5" and network.mode == "host"
    holders = [p for p in broker.status()["peers"] if "n5" in p["networks"]]
    assert [p["pid"] for p in holders] == [os.getpid()]
    vmnet_broker.release_network("n5")
    assert broker.peers("n5") == 0
    with pytest.raises(vmnet_broker.NotFoundError):
        vmnet_broker.release_network("n5")
    with vmnet_broker.open_interface("n6") as iface:
        assert iface.network == "n6" and link_exists(iface.name)
    vmnet_broker.release_network("n6")
    with pytest.raises(vmnet_broker.NotFoundError):
        vmnet_broker.acquire_network("nosuchnetwork")
    # The process-wide connection's message, in the exception and after.
    with pytest.raises(vmnet_broker.InvalidRequestError) as raised:
        vmnet_broker.acquire_network("-lead")
    message = raised.value.broker_message
    assert message and "invalid network name" in message, message
    assert vmnet_broker.last_message() == message
    vmnet_broker.acquire_network("n5")
    assert vmnet_broker.last_message() is None
    vmnet_broker.release_network("n5")


def test_forked_child_gets_its_own_process_wide_peer(broker: Broker) -> None:
    unused(broker, "n7")
    vmnet_broker.acquire_network("n7")
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(read_end)
                vmnet_broker.acquire_network("n7")
                os.write(write_end, b"x")
                while True:
                    signal.pause()
            finally:
                os._exit(code)
        os.close(write_end)
        try:
            assert os.read(read_end, 1) == b"x"
            holders = sorted(p["pid"] for p in broker.status()["peers"] if "n7" in p["networks"])
            assert holders == sorted([os.getpid(), pid])
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
        wait_for(lambda: broker.peers("n7") == 1, "the child's reference to go")
        # The parent's connection still works and still holds n7.
        assert vmnet_broker.acquire_network("n7").name == "n7"
    finally:
        vmnet_broker.release_network("n7")


# ---- Interfaces ----------------------------------------------------------------


def test_interface_is_a_tap_on_the_bridge(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        network = connection.acquire("shared")
        iface = connection.open_interface("shared")
        assert iface.name and iface.name.startswith("vmt-")
        assert MAC.match(iface.mac or "")
        assert iface.network == "shared" and iface.bridge == network.bridge
        assert iface.mtu == network.mtu
        assert iface.to_dict()["name"] == iface.name
        # The guest's addresses, known before it boots.
        assert iface.ipv4 == iface.to_dict()["ipv4"]
        assert iface.ipv4 and network.subnet
        assert ipaddress.ip_address(iface.ipv4) in ipaddress.ip_network(
            f"{network.subnet}/{network.prefix_length}")
        assert iface.ipv6 == iface.to_dict()["ipv6"]
        assert iface.ipv6 and network.ipv6_prefix
        assert ipaddress.ip_address(iface.ipv6) in ipaddress.ip_network(
            f"{network.ipv6_prefix}/64")
        assert iface.name in repr(iface)
        with pytest.raises(AttributeError):
            iface.name = "other"  # type: ignore[misc]
        fd = iface.fileno()
        assert tap_name(fd) == iface.name
        info = link(iface.name)
        assert info["master"] == network.bridge
        assert info["linkinfo"]["info_kind"] == "tun"
        # Close-on-exec, yet passes to a child through pass_fds.
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        child = subprocess.run(
            [sys.executable, "-c",
             "import fcntl, sys; fd = int(sys.argv[1]);"
             "r = fcntl.ioctl(fd, 0x800454D2, b'\\0' * 40);"
             "print(r[:16].split(b'\\0', 1)[0].decode())", str(fd)],
            pass_fds=[fd], check=True, capture_output=True, text=True)
        assert child.stdout.strip() == iface.name
        # Closing the only descriptor removes the device.
        with iface:
            pass
        assert iface.closed and "closed" in repr(iface)
        iface.close()  # idempotent
        with pytest.raises(ValueError):
            iface.fileno()
        with pytest.raises(ValueError):
            iface.detach()
        wait_for(lambda: not link_exists(iface.name), "the TAP device to go")
        assert iface.name and iface.mac  # still readable


def test_interface_detach(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        iface = connection.open_interface("shared")
        fd = iface.detach()
        assert iface.closed
        try:
            # Ours now: freeing the interface left it open.
            del iface
            assert stat.S_ISCHR(os.fstat(fd).st_mode)
            name = tap_name(fd)
            assert link_exists(name)
        finally:
            os.close(fd)
        wait_for(lambda: not link_exists(name), "the detached TAP device to go")


# ---- Ownership: no growth over many calls ----------------------------------------


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024


def test_no_memory_growth_over_100000_acquires(broker: Broker) -> None:
    with vmnet_broker.connect(broker.socket) as connection:
        held = connection.acquire("shared")
        # Warm up: allocator arenas, the interpreter's caches.
        for _ in range(2000):
            connection.acquire("shared").uuid
            connection.status()
        before = rss_kib()
        for i in range(100_000):
            network = connection.acquire("shared")
            if i % 1000 == 0:
                assert network == held
                connection.status()
                try:
                    connection.acquire("nosuchnetwork")
                except vmnet_broker.NotFoundError:
                    pass
        after = rss_kib()
    # One leaked network (struct, JSON text, parsed object) is hundreds of
    # bytes: 100,000 would be tens of MiB. Allow allocator noise only.
    assert after - before < 2048, f"RSS grew from {before} KiB to {after} KiB"


# ---- Threads and event loops ----------------------------------------------------


def test_one_connection_shared_by_threads(broker: Broker) -> None:
    # The C library serializes calls on a connection: every reply reaches
    # the thread that asked.
    with vmnet_broker.connect(broker.socket) as connection:
        expected = {"shared": connection.acquire("shared").uuid,
                    "host": connection.acquire("host").uuid}
        errors: list = []

        def work(name: str) -> None:
            try:
                for _ in range(300):
                    assert connection.acquire(name).uuid == expected[name]
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(name,))
                   for name in ("shared", "host", "shared", "host")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


def test_fileno_signals_broker_gone(tmp_path: pathlib.Path) -> None:
    # An event loop watches fileno(): it turns readable when the broker
    # goes away (here a stand-in that hangs up after the first request).
    import selectors
    path = str(tmp_path / "hangup.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    with listener, vmnet_broker.connect(path) as connection:
        peer, _ = listener.accept()
        with selectors.DefaultSelector() as selector:
            selector.register(connection.fileno(), selectors.EVENT_READ)
            assert selector.select(0) == []
            peer.close()
            assert selector.select(20), "fileno() did not turn readable"
        with pytest.raises(vmnet_broker.Error):
            connection.acquire("shared")


def test_close_during_a_call_in_another_thread(tmp_path: pathlib.Path) -> None:
    # close() while another thread waits for a reply: the socket stays open
    # (no use after free) until that call returns, then closes at once.
    path = str(tmp_path / "slow.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    connection = vmnet_broker.connect(path, timeout=600)
    outcome: list = []

    def call() -> None:
        try:
            outcome.append(connection.acquire("shared"))
        except vmnet_broker.Error as error:
            outcome.append(error)

    with listener:
        peer, _ = listener.accept()
        with peer:
            worker = threading.Thread(target=call)
            worker.start()
            assert peer.recv(65536)  # the request: the call is waiting
            connection.close()
            assert connection.closed
            peer.settimeout(0.05)
            with pytest.raises(socket.timeout):
                peer.recv(65536)  # still open: the call holds it
            peer.settimeout(None)
            peer.send(b'{"network": {"name": "shared", "uuid": "x"}}')
            worker.join()
            assert peer.recv(65536) == b""  # closed once the call returned
    assert len(outcome) == 1
    with pytest.raises(ValueError):
        connection.acquire("shared")


def test_no_descriptor_leak_over_interfaces_and_connections(broker: Broker) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with vmnet_broker.connect(broker.socket) as connection:
        connection.acquire("shared")
        with connection.open_interface("shared"):
            pass
        before = open_fds()
        for i in range(60):
            iface = connection.open_interface("shared")
            if i % 3 == 0:
                iface.close()
            elif i % 3 == 1:
                os.close(iface.detach())
            else:
                del iface  # the owner going away closes it too
        for _ in range(300):
            vmnet_broker.connect(broker.socket).close()
        assert open_fds() == before
