# SPDX-License-Identifier: Apache-2.0
# pytest plugin (entry point pytest11): fixtures that hold broker networks for a test.
"""Fixtures for test harnesses, active once ``vmnet-broker`` is installed.

- ``vmnet_connection``: a ``Connection`` to the broker at
  ``$VMNET_BROKER_SOCKET`` (or the default socket), closed at teardown.
- ``vmnet_network``: a factory, ``vmnet_network("shared") -> Network``,
  acquiring on that connection; every network is released at teardown.
- ``vmnet_interface``: a factory, ``vmnet_interface("shared") -> Interface``
  (a TAP device on the network); every interface is closed at teardown.

Whatever a test acquired or opened through them is gone from the broker's
``status`` once the test ends.
"""
from __future__ import annotations

from typing import Callable, Iterator, List

import pytest

from . import Connection, Error, Interface, Network


@pytest.fixture
def vmnet_connection() -> Iterator[Connection]:
    """A connection to the broker, closed (dropping its networks) at teardown."""
    connection = Connection()
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def vmnet_network(vmnet_connection: Connection) -> Iterator[Callable[[str], Network]]:
    """``vmnet_network(name) -> Network``: acquires name for this test."""
    held: List[str] = []

    def acquire(name: str = "shared") -> Network:
        network = vmnet_connection.acquire(name)
        if name not in held:
            held.append(name)
        return network

    yield acquire
    for name in reversed(held):
        try:
            vmnet_connection.release(name)
        except Error:
            # Already dropped (the test released it, or the connection was
            # lost); closing the connection drops whatever is left anyway.
            pass


@pytest.fixture
def vmnet_interface(vmnet_connection: Connection) -> Iterator[Callable[[str], Interface]]:
    """``vmnet_interface(name) -> Interface``: a TAP device for this test."""
    opened: List[Interface] = []

    def open_interface(name: str = "shared") -> Interface:
        interface = vmnet_connection.open_interface(name)
        opened.append(interface)
        return interface

    yield open_interface
    for interface in opened:
        interface.close()
