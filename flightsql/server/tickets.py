"""Tickets and prepared-statement handles: this server's own versioned encodings.

Every DoGet ticket names a result held by the flightmanager; any node can redeem
one for the part of the result it holds.  Do not change an encoding without a new
version byte: tickets outlive a node restart in clients' hands.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flightsql.errors import InvalidArgument

_TICKET_V1 = b"fsq\x01r"
_HANDLE_V1 = b"fsq\x01p"


@dataclass(frozen=True)
class ResultTicket:
    query_id: str

    def encode(self) -> bytes:
        return _TICKET_V1 + self.query_id.encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> "ResultTicket":
        body = data[len(_TICKET_V1):]
        if not data.startswith(_TICKET_V1) or len(body) != 32 or not _is_hex(body):
            raise InvalidArgument("ticket is not one this server issued")
        return cls(body.decode("ascii"))


@dataclass(frozen=True)
class StatementHandle:
    handle_id: str

    @classmethod
    def new(cls) -> "StatementHandle":
        return cls(uuid.uuid4().hex)

    def encode(self) -> bytes:
        return _HANDLE_V1 + self.handle_id.encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> "StatementHandle":
        body = data[len(_HANDLE_V1):]
        if not data.startswith(_HANDLE_V1) or len(body) != 32 or not _is_hex(body):
            raise InvalidArgument("prepared statement handle is not one this server issued")
        return cls(body.decode("ascii"))


def _is_hex(body: bytes) -> bool:
    return all(c in b"0123456789abcdef" for c in body)
