# SPDX-License-Identifier: Apache-2.0
# vmnet_broker: named, shared VM networks from the vmnet-broker daemon (Python API).
"""Acquire named, reference-counted VM networks from the vmnet-broker daemon.

    import vmnet_broker
    with vmnet_broker.connect() as conn:
        net = conn.acquire("shared")   # held until release() or close()
        print(net.bridge, net.subnet)

A ``Connection`` is one peer of the broker: the networks it acquired live as
long as it stays open (or until ``release``). ``acquire_network()`` and its
siblings use the C library's process-wide connection instead, as the
original macOS library does.
"""
from __future__ import annotations

import json as _json
import os as _os
from typing import Any, Dict, Optional, Tuple, Type, TypeVar, Union, cast

from . import _native  # type: ignore[attr-defined]
from ._errors import (
    CONNECTION_FAILURE,
    CREATE_FAILURE,
    INTERNAL_ERROR,
    INVALID_REPLY,
    INVALID_REQUEST,
    NOT_ALLOWED,
    NOT_FOUND,
    SUCCESS,
    ConnectionFailureError,
    CreateFailureError,
    Error,
    InternalError,
    InvalidReplyError,
    InvalidRequestError,
    NotAllowedError,
    NotFoundError,
    error_from_code,
    strerror,
)

__all__ = [
    "SUCCESS",
    "CONNECTION_FAILURE",
    "INVALID_REPLY",
    "NOT_ALLOWED",
    "INVALID_REQUEST",
    "NOT_FOUND",
    "CREATE_FAILURE",
    "INTERNAL_ERROR",
    "DEFAULT_SOCKET",
    "SOCKET_ENV",
    "Error",
    "ConnectionFailureError",
    "InvalidReplyError",
    "NotAllowedError",
    "InvalidRequestError",
    "NotFoundError",
    "CreateFailureError",
    "InternalError",
    "Connection",
    "Network",
    "Interface",
    "Status",
    "NetworkStatus",
    "PeerStatus",
    "acquire_network",
    "release_network",
    "open_interface",
    "connect",
    "error_from_code",
    "last_message",
    "strerror",
    "version",
]

#: The C library's version (CMake's project(VERSION)), also the package's.
__version__: str = _native.vmnet_broker_version()

#: The broker's socket when $VMNET_BROKER_SOCKET is not set.
DEFAULT_SOCKET: str = _native.VMNET_BROKER_DEFAULT_SOCKET
#: The environment variable naming the broker's socket.
SOCKET_ENV: str = _native.VMNET_BROKER_SOCKET_ENV

# The C values must be the ones _errors hard-codes (which it does so that it
# can be imported without the extension, as pickling may).
assert (SUCCESS, INTERNAL_ERROR) == (
    _native.VMNET_BROKER_SUCCESS,
    _native.VMNET_BROKER_INTERNAL_ERROR,
)

_PathLike = Union[str, bytes, "_os.PathLike[str]", "_os.PathLike[bytes]"]


def version() -> str:
    """The C library's version, "MAJOR.MINOR.PATCH"."""
    return __version__


def _closed(what: str) -> ValueError:
    return ValueError(f"I/O operation on closed {what}")


class Network:
    """A network the broker handed out (the ``network`` object of acquire).

    Holding a ``Network`` does not hold the network: the connection that
    acquired it does. Attributes are read-only; a field the broker did not
    send reads as None (strings) or 0 (numbers).
    """

    __slots__ = ("_n",)
    _n: Any

    def __init__(self) -> None:
        raise TypeError("Network objects come from acquire()")

    @property
    def name(self) -> Optional[str]:
        """The network's name ("shared")."""
        return cast('Optional[str]', _native.vmnet_broker_network_name(self._n))

    @property
    def mode(self) -> Optional[str]:
        """Either "shared" or "host"."""
        return cast('Optional[str]', _native.vmnet_broker_network_mode(self._n))

    @property
    def bridge(self) -> Optional[str]:
        """The Linux bridge to attach a TAP or veth to."""
        return cast('Optional[str]', _native.vmnet_broker_network_bridge(self._n))

    @property
    def subnet(self) -> Optional[str]:
        """The IPv4 network address ("192.168.64.0")."""
        return cast('Optional[str]', _native.vmnet_broker_network_subnet(self._n))

    @property
    def mask(self) -> Optional[str]:
        """The IPv4 netmask ("255.255.255.0")."""
        return cast('Optional[str]', _native.vmnet_broker_network_mask(self._n))

    @property
    def prefix_length(self) -> int:
        """The subnet's prefix length (24)."""
        return cast('int', _native.vmnet_broker_network_prefix_length(self._n))

    @property
    def gateway(self) -> Optional[str]:
        """The host's address on the bridge."""
        return cast('Optional[str]', _native.vmnet_broker_network_gateway(self._n))

    @property
    def uuid(self) -> Optional[str]:
        """This instance of the network (a new one when it is recreated)."""
        return cast('Optional[str]', _native.vmnet_broker_network_uuid(self._n))

    @property
    def mtu(self) -> int:
        """The network's MTU."""
        return cast('int', _native.vmnet_broker_network_mtu(self._n))

    @property
    def description(self) -> Optional[str]:
        """The configuration's description, or None."""
        return cast('Optional[str]', _native.vmnet_broker_network_description(self._n))

    @property
    def dhcp_start(self) -> Optional[str]:
        """The first address DHCP hands out, or None without DHCP."""
        return cast('Optional[str]', _native.vmnet_broker_network_dhcp_start(self._n))

    @property
    def dhcp_end(self) -> Optional[str]:
        """The last address DHCP hands out, or None without DHCP."""
        return cast('Optional[str]', _native.vmnet_broker_network_dhcp_end(self._n))

    @property
    def dns(self) -> Optional[str]:
        """The DNS server guests are told to use, or None."""
        return cast('Optional[str]', _native.vmnet_broker_network_dns(self._n))

    @property
    def ipv6_prefix(self) -> Optional[str]:
        """The IPv6 prefix ("fd12:3456:789a:1::"), or None."""
        return cast('Optional[str]', _native.vmnet_broker_network_ipv6_prefix(self._n))

    @property
    def ipv6_prefix_length(self) -> int:
        """The IPv6 prefix's length (64), or 0."""
        return cast('int', _native.vmnet_broker_network_ipv6_prefix_length(self._n))

    @property
    def json(self) -> Optional[str]:
        """The whole serialization as JSON text (keys added later included)."""
        return cast('Optional[str]', _native.vmnet_broker_network_json(self._n))

    def to_dict(self) -> Dict[str, Any]:
        """The serialization decoded (every key, including ones added later)."""
        return cast(Dict[str, Any], _json.loads(self.json or "{}"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Network):
            return NotImplemented
        return bool(self.uuid == other.uuid)

    def __hash__(self) -> int:
        return hash(self.uuid)

    def __repr__(self) -> str:
        return (f"Network(name={self.name!r}, bridge={self.bridge!r}, "
                f"subnet={self.subnet!r}, uuid={self.uuid!r})")


def _network(native: Any) -> Network:
    network = object.__new__(Network)
    network._n = native
    return network


class Interface:
    """A TAP device the broker made on a network, with its descriptor.

    The device exists as long as some process holds the descriptor. Hand it
    to a VM with ``subprocess.Popen(..., pass_fds=[iface.fileno()])`` (QEMU:
    ``-netdev tap,fd=N,vhost=on``), or take it with ``detach()``. Keep the
    connection that opened it open while the VM runs.
    """

    __slots__ = ("_i", "_fields")
    _i: Any
    # (name, mac, mtu, network, bridge, json, ipv4, ipv6), read when the
    # interface was made, so they stay readable after close() or detach().
    _fields: Tuple[Optional[str], Optional[str], int, Optional[str], Optional[str],
                   Optional[str], Optional[str], Optional[str]]

    @property
    def name(self) -> Optional[str]:
        """The TAP device's name ("vmt-" and 8 hex digits)."""
        return self._fields[0]

    @property
    def mac(self) -> Optional[str]:
        """The MAC address the guest should use (stable per user, network
        and slot)."""
        return self._fields[1]

    @property
    def mtu(self) -> int:
        """The device's MTU (the bridge's)."""
        return self._fields[2]

    @property
    def network(self) -> Optional[str]:
        """The name of the network the device is on."""
        return self._fields[3]

    @property
    def bridge(self) -> Optional[str]:
        """That network's bridge, of which the device is a port."""
        return self._fields[4]

    @property
    def json(self) -> Optional[str]:
        """The whole ``interface`` object as JSON text."""
        return self._fields[5]

    @property
    def ipv4(self) -> Optional[str]:
        """The IPv4 address the network's DHCP server reserved for ``mac``
        (None when the network has no DHCP)."""
        return self._fields[6]

    @property
    def ipv6(self) -> Optional[str]:
        """The address SLAAC gives ``mac`` in the network's /64 (None
        without IPv6)."""
        return self._fields[7]

    def __init__(self) -> None:
        raise TypeError("Interface objects come from open_interface()")

    def to_dict(self) -> Dict[str, Any]:
        """The ``interface`` object decoded."""
        return cast(Dict[str, Any], _json.loads(self.json or "{}"))

    def fileno(self) -> int:
        """The TAP descriptor (close-on-exec), still owned by the interface."""
        if self._i is None:
            raise _closed("interface")
        return cast(int, _native.vmnet_broker_interface_fd(self._i))

    def detach(self) -> int:
        """Gives up the descriptor: the caller must close it. The interface is
        closed afterwards (its attributes stay readable)."""
        if self._i is None:
            raise _closed("interface")
        fd: int = _native.vmnet_broker_interface_take_fd(self._i)
        self._i = None
        return fd

    def close(self) -> None:
        """Closes the descriptor (unless detached). Idempotent."""
        self._i = None

    @property
    def closed(self) -> bool:
        return self._i is None

    def __enter__(self) -> "Interface":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._i is None else ""
        return (f"<Interface{state} name={self.name!r} mac={self.mac!r} "
                f"network={self.network!r}>")


def _interface(native: Any) -> Interface:
    iface = object.__new__(Interface)
    iface._i = native
    iface._fields = (
        _native.vmnet_broker_interface_name(native),
        _native.vmnet_broker_interface_mac(native),
        _native.vmnet_broker_interface_mtu(native),
        _native.vmnet_broker_interface_network(native),
        _native.vmnet_broker_interface_bridge(native),
        _native.vmnet_broker_interface_json(native),
        _native.vmnet_broker_interface_ipv4(native),
        _native.vmnet_broker_interface_ipv6(native),
    )
    return iface


class NetworkStatus:
    """One network of a ``Status``: read-only attributes over the C
    library's accessors (``vmnet_broker_status_network_*``)."""

    __slots__ = ("_s", "_i")
    _s: Any
    _i: int

    def __init__(self) -> None:
        raise TypeError("NetworkStatus objects come from Connection.get_status()")

    @property
    def name(self) -> Optional[str]:
        return cast('Optional[str]', _native.vmnet_broker_status_network_name(self._s, self._i))

    @property
    def mode(self) -> Optional[str]:
        return cast('Optional[str]', _native.vmnet_broker_status_network_mode(self._s, self._i))

    @property
    def bridge(self) -> Optional[str]:
        return cast('Optional[str]',
                    _native.vmnet_broker_status_network_bridge(self._s, self._i))

    @property
    def subnet(self) -> Optional[str]:
        return cast('Optional[str]',
                    _native.vmnet_broker_status_network_subnet(self._s, self._i))

    @property
    def prefix_length(self) -> int:
        return cast(int, _native.vmnet_broker_status_network_prefix_length(self._s, self._i))

    @property
    def uuid(self) -> Optional[str]:
        return cast('Optional[str]', _native.vmnet_broker_status_network_uuid(self._s, self._i))

    @property
    def peers(self) -> int:
        """How many peers hold it."""
        return cast(int, _native.vmnet_broker_status_network_peers(self._s, self._i))

    @property
    def persistent(self) -> bool:
        """Kept even when unused."""
        return bool(_native.vmnet_broker_status_network_persistent(self._s, self._i))

    @property
    def idle_remaining(self) -> Optional[float]:
        """Seconds until the unused network is removed; None while it is in
        use, or persistent."""
        # The C library gives a negative number for the protocol's null.
        idle = cast(float, _native.vmnet_broker_status_network_idle_remaining(self._s, self._i))
        return None if idle < 0 else idle

    @property
    def degraded(self) -> bool:
        """It works only in part: its dnsmasq was given up on, or the broker
        could not repair its bridge or rules."""
        return bool(_native.vmnet_broker_status_network_degraded(self._s, self._i))

    @property
    def degraded_reason(self) -> Optional[str]:
        """Why it is degraded, in words; None while it is not."""
        return cast('Optional[str]',
                    _native.vmnet_broker_status_network_degraded_reason(self._s, self._i))

    def __repr__(self) -> str:
        degraded = f" degraded={self.degraded_reason!r}" if self.degraded else ""
        return (f"<NetworkStatus name={self.name!r} bridge={self.bridge!r} "
                f"peers={self.peers}{degraded}>")


class PeerStatus:
    """One peer (connection) of a ``Status``."""

    __slots__ = ("_s", "_i")
    _s: Any
    _i: int

    def __init__(self) -> None:
        raise TypeError("PeerStatus objects come from Connection.get_status()")

    @property
    def pid(self) -> int:
        return cast(int, _native.vmnet_broker_status_peer_pid(self._s, self._i))

    @property
    def uid(self) -> int:
        return cast(int, _native.vmnet_broker_status_peer_uid(self._s, self._i))

    @property
    def gid(self) -> int:
        return cast(int, _native.vmnet_broker_status_peer_gid(self._s, self._i))

    @property
    def networks(self) -> Tuple[str, ...]:
        """The names of the networks it holds."""
        count = _native.vmnet_broker_status_peer_network_count(self._s, self._i)
        return tuple(cast(str, _native.vmnet_broker_status_peer_network_name(self._s, self._i, j))
                     for j in range(count))

    def __repr__(self) -> str:
        return f"<PeerStatus pid={self.pid} uid={self.uid} networks={self.networks!r}>"


class Status:
    """A snapshot of the broker's state (the protocol's ``status`` object),
    read through the C library's typed accessors. It never talks to the
    broker again; ask ``Connection.get_status()`` for a newer one."""

    __slots__ = ("_s",)
    _s: Any

    def __init__(self) -> None:
        raise TypeError("Status objects come from Connection.get_status()")

    @property
    def version(self) -> Optional[str]:
        """The broker's version; None from a broker too old to send it."""
        return cast('Optional[str]', _native.vmnet_broker_status_broker_version(self._s))

    @property
    def networks(self) -> Tuple[NetworkStatus, ...]:
        """The networks that exist: in use, or idle and waiting for removal."""
        return tuple(_status_item(NetworkStatus, self._s, i)
                     for i in range(_native.vmnet_broker_status_network_count(self._s)))

    @property
    def peers(self) -> Tuple[PeerStatus, ...]:
        """The peers (connections) the broker serves, the asking one
        included."""
        return tuple(_status_item(PeerStatus, self._s, i)
                     for i in range(_native.vmnet_broker_status_peer_count(self._s)))

    def network(self, name: str) -> Optional[NetworkStatus]:
        """The status of network ``name``, or None if it does not exist."""
        for network in self.networks:
            if network.name == name:
                return network
        return None

    @property
    def json(self) -> str:
        """The whole ``status`` object as JSON text (keys added later
        included)."""
        return cast(str, _native.vmnet_broker_status_json(self._s))

    def to_dict(self) -> Dict[str, Any]:
        """The ``status`` object decoded (every key)."""
        return cast(Dict[str, Any], _json.loads(self.json))

    def __repr__(self) -> str:
        return f"<Status version={self.version!r} networks={self.networks!r}>"


_I = TypeVar("_I", NetworkStatus, PeerStatus)


def _status_item(kind: Type[_I], native: Any, index: int) -> _I:
    item = object.__new__(kind)
    item._s = native  # keeps the snapshot alive as long as the item
    item._i = index
    return item


def _status(native: Any) -> Status:
    status = object.__new__(Status)
    status._s = native
    return status


def _socket_path(path: Optional[_PathLike]) -> Optional[str]:
    if path is None:
        return None
    return _os.fsdecode(path)


class Connection:
    """An explicit connection to the broker: one peer with its own references.

    ``socket_path`` None means ``$VMNET_BROKER_SOCKET``, else the default
    path. ``timeout`` (seconds) bounds the wait for each reply (default: the
    C library's, 30 s); a call that runs out of time raises
    ``ConnectionFailureError`` and the connection is lost. Calls may come
    from several threads (the C library serializes them; the GIL is released
    while waiting). Closing drops every network the connection holds.
    """

    __slots__ = ("_c", "__weakref__")
    _c: Any

    # Ownership: self._c is the only lasting reference to the native
    # connection, whose destructor closes the socket. close() drops it, so
    # the socket closes at once, or, if another thread is inside a call on
    # it (its arguments hold a reference), as soon as that call returns:
    # close() never frees a connection under a running call. No method keeps
    # the native object in a local variable across a call that may raise,
    # or a traceback (kept by a caught exception) would keep it open.

    def __init__(self, socket_path: Optional[_PathLike] = None,
                 timeout: Optional[float] = None) -> None:
        self._c = None
        milliseconds = None if timeout is None else _timeout_ms(timeout)
        self._c = _native.vmnet_broker_connect(_socket_path(socket_path))
        if milliseconds is not None:
            _native.vmnet_broker_connection_set_timeout(self._c, milliseconds)

    def _native(self) -> Any:
        if self._c is None:
            raise _closed("connection")
        return self._c

    def acquire(self, name: str) -> Network:
        """Acquires network ``name`` (creating it if needed) and holds it."""
        if self._c is None:
            raise _closed("connection")
        return _network(_native.vmnet_broker_connection_acquire(self._c, name))

    def release(self, name: str) -> None:
        """Drops this connection's reference to ``name`` (NotFoundError if it
        holds none)."""
        _native.vmnet_broker_connection_release(self._native(), name)

    def open_interface(self, name: str) -> Interface:
        """A new TAP device on ``name`` (acquired on this connection first if
        it is not held yet)."""
        return _interface(
            _native.vmnet_broker_connection_open_interface(self._native(), name))

    def status(self) -> Dict[str, Any]:
        """The broker's state: the decoded ``status`` object of the protocol
        (``networks``, ``peers``, ``version``, every key as sent). See
        ``get_status()`` for typed attributes."""
        return self.get_status().to_dict()

    def get_status(self) -> Status:
        """The broker's state as a typed ``Status`` snapshot (``networks``,
        each with ``degraded`` and ``degraded_reason``, ``peers``,
        ``version``)."""
        return _status(_native.vmnet_broker_connection_get_status(self._native()))

    def set_timeout(self, timeout: Optional[float]) -> None:
        """Seconds each later call waits for a reply; None or 0 waits forever."""
        milliseconds = 0 if timeout is None else _timeout_ms(timeout)
        _native.vmnet_broker_connection_set_timeout(self._native(), milliseconds)

    @property
    def last_message(self) -> Optional[str]:
        """Why the broker refused the last request made on this connection
        (its reply's "message"), or None when that call succeeded or no reply
        carried one. The C library keeps one message per connection: with
        threads sharing it, it is the message of whichever call finished
        last. A raised ``Error`` already holds its own call's message in
        ``broker_message``; prefer that."""
        return cast('Optional[str]',
                    _native.vmnet_broker_connection_last_message(self._native()))

    def fileno(self) -> int:
        """The socket's descriptor: readable and hung up once the broker goes
        away (watch it with selectors; read nothing from it)."""
        return cast(int, _native.vmnet_broker_connection_fd(self._native()))

    def shutdown(self) -> None:
        """Cancels: a call waiting on this connection in another thread fails
        at once, the broker drops the references (also in processes sharing
        the socket) and later calls fail. close() still frees it."""
        _native.vmnet_broker_connection_shutdown(self._native())

    def close(self) -> None:
        """Closes the connection; the broker drops its references. Idempotent.

        If another thread is inside a call on this connection, the socket is
        closed when that call returns.
        """
        self._c = None  # see "Ownership" above

    @property
    def closed(self) -> bool:
        return self._c is None

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._c is None:
            return "<vmnet_broker.Connection closed>"
        return f"<vmnet_broker.Connection fd={self.fileno()}>"


def _timeout_ms(timeout: float) -> int:
    """Seconds as the C library's milliseconds (0 waits forever)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
    if not 0 <= timeout < 4294967.295:
        raise ValueError("timeout must be between 0 and 4294967 seconds")
    milliseconds = int(timeout * 1000)
    # A positive timeout below a millisecond is 1 ms, not "forever".
    return 1 if milliseconds == 0 and timeout > 0 else milliseconds


def connect(socket_path: Optional[_PathLike] = None,
            timeout: Optional[float] = None) -> Connection:
    """A new ``Connection`` (see there)."""
    return Connection(socket_path, timeout)


# ---- The process-wide connection (the original library's API) ---------------


def acquire_network(name: str) -> Network:
    """Acquires ``name`` over the process-wide connection, opened on first use
    (at $VMNET_BROKER_SOCKET or the default) and kept for the process's life.
    A child of fork() gets a connection of its own."""
    return _network(_native.vmnet_broker_acquire_network(name))


def release_network(name: str) -> None:
    """Drops the process-wide connection's reference to ``name``."""
    _native.vmnet_broker_release_network(name)


def open_interface(name: str) -> Interface:
    """A new TAP device on ``name`` over the process-wide connection."""
    return _interface(_native.vmnet_broker_open_interface(name))


def last_message() -> Optional[str]:
    """Why the broker refused the last request made over the process-wide
    connection (see ``Connection.last_message``), or None."""
    return cast('Optional[str]', _native.vmnet_broker_last_message())
