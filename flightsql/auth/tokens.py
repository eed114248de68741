"""Signed bearer tokens that every node of a cluster accepts.

A token is ``v2.<payload>.<signature>``: ``payload`` is the base64url (unpadded)
JSON object ``{"user", "iat", "exp", "stamp"}`` (and ``"sid"``, the client session the
login opened, see :mod:`flightsql.server.sessions`) and ``signature`` the base64url
HMAC-SHA256 over ``v2.<payload>``, keyed with the cluster's token key (derived from
the cluster secret for this use alone, see :mod:`flightmanager.keys`).  ``stamp``
binds the token to the user's credential as it was at login (:meth:`TokenSigner.stamp`):
the authenticator compares it with the users file of the moment, so removing a user
or changing a password ends the user's tokens on every node.  A token lives at most
the signer's lifetime, whatever its payload claims.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from dataclasses import dataclass
from typing import TypeGuard

from flightsql.errors import Unauthenticated

VERSION = "v2"
#: tolerated clock difference between the node that issued a token and one that checks it
CLOCK_SKEW_SECONDS = 60
MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 4096

_B64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Principal:
    """Who a call runs as; ``expires_at`` (epoch seconds) is ``None`` if unbounded."""

    user: str
    expires_at: float | None = None


ANONYMOUS = Principal("anonymous", None)
"""The principal of every call when authentication is disabled."""


@dataclass(frozen=True)
class Claims:
    """What a verified token says: its user, its expiry and its credential stamp."""

    user: str
    expires_at: float
    stamp: str
    session_id: str | None = None


def _b64encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url text; raise ``ValueError`` if it is malformed."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _is_time(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a finite JSON number (not a boolean)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


class TokenSigner:
    """Issues and verifies bearer tokens signed with the cluster's token key."""

    def __init__(self, secret: bytes, ttl_seconds: int = 3600) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"token key must be at least {MIN_SECRET_BYTES} bytes")
        if ttl_seconds <= 0:
            raise ValueError("token lifetime must be positive")
        self._secret = bytes(secret)
        self.ttl_seconds = ttl_seconds

    def _sign(self, signed_part: str) -> str:
        """Return the base64url HMAC-SHA256 of ``signed_part``."""
        mac = hmac.new(self._secret, signed_part.encode("ascii"), hashlib.sha256)
        return _b64encode(mac.digest())

    def stamp(self, user: str, credential: str) -> str:
        """A short keyed digest of ``user``'s stored credential (their password hash):
        it changes when the password does, and reveals nothing of it."""
        mac = hmac.new(self._secret, b"stamp\x00" + user.encode("utf-8") + b"\x00" + credential.encode("utf-8"),
                       hashlib.sha256)
        return _b64encode(mac.digest()[:12])

    def issue(self, user: str, now: float | None = None, stamp: str = "", session_id: str | None = None) -> str:
        """Return a token for ``user`` valid for ``ttl_seconds`` from ``now``."""
        if not user:
            raise ValueError("user name is empty")
        iat = int(time.time() if now is None else now)
        payload: dict[str, object] = {"user": user, "iat": iat, "exp": iat + self.ttl_seconds, "stamp": stamp}
        if session_id is not None:
            payload["sid"] = session_id
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        signed_part = f"{VERSION}.{_b64encode(body.encode('utf-8'))}"
        return f"{signed_part}.{self._sign(signed_part)}"

    def verify(self, token: str, now: float | None = None) -> Claims:
        """Return the claims of ``token``.

        Raises :class:`Unauthenticated` if it is malformed, of an unknown version,
        not signed with this key, issued in the future, longer-lived than this
        signer's lifetime, or expired.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("token malformed")
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise Unauthenticated("token malformed")
        version, payload_b64, signature = parts
        if version != VERSION:
            raise Unauthenticated(f"token version not supported (expected {VERSION}): log in again")
        expected = self._sign(f"{version}.{payload_b64}")
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8")):
            raise Unauthenticated("token signature invalid")
        user, iat, exp, stamp, session_id = self._decode_payload(payload_b64)
        current = time.time() if now is None else now
        if iat > current + CLOCK_SKEW_SECONDS:
            raise Unauthenticated("token issued in the future: log in again")
        if exp - iat > self.ttl_seconds:
            raise Unauthenticated(f"token lives longer than the {self.ttl_seconds} s this server allows: log in again")
        if current >= exp:
            raise Unauthenticated("token expired: log in again")
        return Claims(user, exp, stamp, session_id)

    @staticmethod
    def _decode_payload(payload_b64: str) -> tuple[str, float, float, str, str | None]:
        """Return ``(user, iat, exp, stamp, sid)`` of a signed payload; raise if it is malformed."""
        try:
            payload = json.loads(_b64decode(payload_b64).decode("utf-8"))
        except ValueError:
            raise Unauthenticated("token payload malformed") from None
        if not isinstance(payload, dict):
            raise Unauthenticated("token payload malformed")
        user, iat, exp = payload.get("user"), payload.get("iat"), payload.get("exp")
        stamp, session_id = payload.get("stamp"), payload.get("sid")
        if not isinstance(user, str) or not user or not isinstance(stamp, str):
            raise Unauthenticated("token payload malformed")
        if not _is_time(iat) or not _is_time(exp) or not isinstance(session_id, (str, type(None))):
            raise Unauthenticated("token payload malformed")
        return user, float(iat), float(exp), stamp, session_id
