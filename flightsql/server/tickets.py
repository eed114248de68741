"""Tickets and prepared-statement handles: this server's own versioned encodings.

A handle carries its statement's SQL (and the values bound to it), MAC'd like a ticket:
any node runs a statement prepared on another, for its user only.

Every DoGet ticket names a result held by the flightmanager and is bound to the user
it was issued to: it carries a MAC, made with the cluster's ticket key, over the query
id and that user.  Any node can redeem one (for the part of the result it holds) and
checks the MAC against the caller before it looks anything up, so a ticket that was
altered, forged or handed to another user opens nothing.  Do not change an encoding
without a new version byte: tickets outlive a node restart in clients' hands.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

from flightsql.errors import InvalidArgument, PermissionDenied

_TICKET_V1 = b"fsq\x01r"
_TICKET_V2 = b"fsq\x02r"
_HANDLE_V1 = b"fsq\x01p"
_HANDLE_V2 = b"fsq\x02p"
_QUERY_ID_CHARS = 32
_MAC_BYTES = 16


@dataclass(frozen=True)
class ResultTicket:
    """A ticket as it travels: the query id and the MAC binding it to its user."""

    query_id: str
    mac: bytes

    def encode(self) -> bytes:
        return _TICKET_V2 + self.query_id.encode("ascii") + self.mac

    @classmethod
    def decode(cls, data: bytes) -> ResultTicket:
        if data.startswith(_TICKET_V1):
            raise InvalidArgument("ticket from an earlier version of this server: run the query again")
        body = data[len(_TICKET_V2):]
        query_id, mac = body[:_QUERY_ID_CHARS], body[_QUERY_ID_CHARS:]
        if not data.startswith(_TICKET_V2) or len(mac) != _MAC_BYTES or not _is_hex(query_id):
            raise InvalidArgument("ticket is not one this server issued")
        return cls(query_id.decode("ascii"), mac)


class Tickets:
    """Issues tickets bound to a user and redeems them only for that user."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the ticket key must be at least 16 bytes")
        self._key = key

    def _mac(self, query_id: str, user: str) -> bytes:
        message = b"ticket\x00" + query_id.encode("ascii") + b"\x00" + user.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, query_id: str, user: str) -> bytes:
        return ResultTicket(query_id, self._mac(query_id, user)).encode()

    def redeem(self, data: bytes, user: str) -> str:
        """The query id of a ticket issued to ``user``; INVALID_ARGUMENT for a malformed
        ticket, PERMISSION_DENIED for one that was not issued to this user."""
        ticket = ResultTicket.decode(data)
        if not hmac.compare_digest(ticket.mac, self._mac(ticket.query_id, user)):
            raise PermissionDenied("this ticket was not issued to you")
        return ticket.query_id


@dataclass(frozen=True)
class StatementHandle:
    """A prepared statement as its handle carries it: any node can run it from the handle
    alone.  ``parameters`` is the Arrow IPC stream of the values bound to it, if any."""

    handle_id: str
    sql: str
    parameters: bytes | None = None


class Handles:
    """Prepared-statement handles bound to a user, like tickets: ``fsq 02 p`` + a MAC over
    the body and the user + the body (JSON ``{"id", "sql", "params"}``, ``params`` the
    base64 Arrow IPC stream of bound values)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the handle key must be at least 16 bytes")
        self._key = key

    def _mac(self, body: bytes, user: str) -> bytes:
        message = b"prepared\x00" + body + b"\x00" + user.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, handle: StatementHandle, user: str) -> bytes:
        fields: dict[str, str] = {"id": handle.handle_id, "sql": handle.sql}
        if handle.parameters is not None:
            fields["params"] = base64.b64encode(handle.parameters).decode("ascii")
        body = json.dumps(fields, separators=(",", ":")).encode()
        return _HANDLE_V2 + self._mac(body, user) + body

    def open(self, data: bytes, user: str) -> StatementHandle:
        """The statement of a handle issued to ``user``: INVALID_ARGUMENT for one this server
        did not issue, PERMISSION_DENIED for another user's."""
        if data.startswith(_HANDLE_V1):
            raise InvalidArgument("prepared statement handle from an earlier version of this server: prepare it again")
        mac, body = data[len(_HANDLE_V2):len(_HANDLE_V2) + _MAC_BYTES], data[len(_HANDLE_V2) + _MAC_BYTES:]
        if not data.startswith(_HANDLE_V2) or len(mac) != _MAC_BYTES:
            raise InvalidArgument("prepared statement handle is not one this server issued")
        if not hmac.compare_digest(mac, self._mac(body, user)):
            raise PermissionDenied("this prepared statement handle was not issued to you")
        fields = json.loads(body)
        params = fields.get("params")
        return StatementHandle(fields["id"], fields["sql"], None if params is None else base64.b64decode(params))

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex


def _is_hex(body: bytes) -> bool:
    return len(body) == _QUERY_ID_CHARS and all(c in b"0123456789abcdef" for c in body)
