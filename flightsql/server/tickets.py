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
        if not data.startswith(_TICKET_V1) or len(data) != len(_TICKET_V1) + 32:
            raise InvalidArgument("ticket is not one this server issued")
        query_id = data[len(_TICKET_V1):].decode("ascii", "replace")
        if not all(c in "0123456789abcdef" for c in query_id):
            raise InvalidArgument("ticket is not one this server issued")
        return cls(query_id)


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
        if not data.startswith(_HANDLE_V1) or len(data) != len(_HANDLE_V1) + 32:
            raise InvalidArgument("prepared statement handle is not one this server issued")
        return cls(data[len(_HANDLE_V1):].decode("ascii", "replace"))
