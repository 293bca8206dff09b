# SPDX-License-Identifier: Apache-2.0
# The exceptions: one class per vmnet_broker_return_t value, raised by the extension.
from __future__ import annotations

from typing import Dict, Optional, Tuple, Type

SUCCESS = 0
CONNECTION_FAILURE = 1
INVALID_REPLY = 2
NOT_ALLOWED = 3
INVALID_REQUEST = 4
NOT_FOUND = 5
CREATE_FAILURE = 6
INTERNAL_ERROR = 7


def strerror(code: int) -> str:
    """The C library's English description of a status code."""
    from . import _native  # type: ignore[attr-defined]

    if not isinstance(code, int):
        raise TypeError(f"status code must be int, not {type(code).__name__}")
    # vmnet_broker_strerror() takes a C int; anything outside is unknown.
    if not -(2**31) <= code < 2**31:
        return "unknown status"
    text: str = _native.vmnet_broker_strerror(code)
    return text


class Error(Exception):
    """A call to the broker failed; ``code`` is the vmnet_broker_return_t value.

    The message is the C library's ``vmnet_broker_strerror()`` text, followed
    by ``": "`` and the broker's own explanation when its reply carried one
    (``broker_message``: why a creation failed, the 8-network limit, the
    naming rule). Match on the class or ``code``; the broker's wording is for
    people and may change between versions.
    """

    #: The status value this class stands for (the base class: none fixed).
    default_code: Optional[int] = None
    code: int
    #: The broker's "message" for the failed request, or None without one.
    broker_message: Optional[str]

    def __init__(self, code: Optional[int] = None, message: Optional[str] = None,
                 broker_message: Optional[str] = None):
        if code is None:
            if self.default_code is None:
                raise TypeError("Error() needs a status code")
            code = self.default_code
        if message is None:
            message = strerror(code)
            if broker_message:
                message = f"{message}: {broker_message}"
        super().__init__(message)
        self.code = code
        self.broker_message = broker_message

    # Exceptions cross processes (multiprocessing) by pickling: rebuild from
    # the code and messages rather than from args (the text alone).
    def __reduce__(self) -> Tuple[type, Tuple[int, str, Optional[str]]]:
        return (type(self), (self.code, str(self), self.broker_message))


class ConnectionFailureError(Error):
    """Could not reach the broker, or the connection was lost (status 1)."""

    default_code = CONNECTION_FAILURE


class InvalidReplyError(Error):
    """The broker's reply could not be understood (status 2)."""

    default_code = INVALID_REPLY


class NotAllowedError(Error):
    """The user may not use the network (status 3)."""

    default_code = NOT_ALLOWED


class InvalidRequestError(Error):
    """The broker rejected the request as malformed (status 4)."""

    default_code = INVALID_REQUEST


class NotFoundError(Error):
    """No such network, or (release) the connection does not hold it (5)."""

    default_code = NOT_FOUND


class CreateFailureError(Error):
    """The broker failed to create the network or the device (status 6)."""

    default_code = CREATE_FAILURE


class InternalError(Error):
    """Internal error; also a 9th network or a 17th interface (status 7)."""

    default_code = INTERNAL_ERROR


_BY_CODE: Dict[int, Type[Error]] = {
    cls.default_code: cls
    for cls in (
        ConnectionFailureError,
        InvalidReplyError,
        NotAllowedError,
        InvalidRequestError,
        NotFoundError,
        CreateFailureError,
        InternalError,
    )
}


def error_from_code(code: int, broker_message: Optional[str] = None) -> Error:
    """The exception for a status code; a code this version does not know
    (a later library's) gives the base class ``Error`` with that code."""
    return _BY_CODE.get(code, Error)(code, broker_message=broker_message)


def _raise_status(code: int, broker_message: Optional[str] = None) -> None:
    # Called by the extension (swig/vmnet_broker.i) for every failed call,
    # with the broker's message taken right after it.
    raise error_from_code(code, broker_message)
