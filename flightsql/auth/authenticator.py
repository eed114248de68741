"""Authentication of Flight calls from their ``authorization`` header.

Clients log in with ``authorization: Basic base64(user:password)`` (on the
Handshake call or on any call; padded or not, as ADBC sends it) and receive
``authorization: Bearer <token>`` in the response headers; later calls carry that
bearer token.  A login opens a client session: the token names it, so that every call
made with the token is in that session (:mod:`flightsql.server.sessions`).  Tokens are
signed with a key every node derives from the cluster secret (:func:`load_or_create_secret`,
:mod:`flightmanager.keys`), so any node accepts a token issued by another, as long as its
user still exists with the same password.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flightsql.auth.throttle import LoginThrottle
from flightsql.auth.tokens import ANONYMOUS, Principal, TokenSigner
from flightsql.auth.users import PathLike, UsersFileError
from flightsql.errors import Unauthenticated, Unavailable

_LOG = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
SECRET_BYTES = 32

LOGIN_REQUIRED = (
    "authentication required: log in with user and password (Basic) or a bearer token"
)
INVALID_CREDENTIALS = "invalid user or password"
MAX_HEADER_CHARS = 8192


@dataclass(frozen=True)
class AuthResult:
    """The principal of a call and the headers to add to its response."""

    principal: Principal
    response_headers: tuple[tuple[str, str], ...] = ()
    #: the client session the call's token names, or the one its login opened
    session_id: str | None = None


def _header(metadata: Mapping[str, object]) -> str | None:
    """Return the ``authorization`` header value, matching the name in any case (a client
    may send it as bytes, or as something else altogether)."""
    value = metadata.get(AUTHORIZATION)
    if value is None:
        for name, candidate in metadata.items():
            if isinstance(name, str) and name.lower() == AUTHORIZATION:
                value = candidate
                break
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise Unauthenticated("authorization header is not valid UTF-8") from None
    if value is not None and not isinstance(value, str):
        raise Unauthenticated("authorization header malformed")
    return value


def _split(value: str) -> tuple[str, str]:
    """Split a header value into its lowercased scheme and its parameter."""
    scheme, _, param = value.strip().partition(" ")
    return scheme.lower(), param.strip()


def _basic_credentials(param: str) -> tuple[str, str]:
    """Decode ``base64(user:password)``, with or without its ``=`` padding (RFC 7617
    asks for padding; ADBC leaves it out); raise :class:`Unauthenticated` if malformed."""
    if len(param) > MAX_HEADER_CHARS:
        raise Unauthenticated("Basic credentials malformed: too long")
    unpadded = param.rstrip("=")
    if len(param) - len(unpadded) > 2 or len(unpadded) % 4 == 1:
        raise Unauthenticated("Basic credentials malformed: not base64 of 'user:password'")
    try:
        padded = unpadded + "=" * (-len(unpadded) % 4)
        text = base64.b64decode(padded.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise Unauthenticated(
            "Basic credentials malformed: not base64 of 'user:password'"
        ) from None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise Unauthenticated("Basic credentials malformed: expected 'user:password'")
    return user, password


class Users(Protocol):
    """The users as logins need them: a :class:`UserStore` or an LDAP directory."""

    def verify(self, user: str, password: str) -> bool: ...

    def credential(self, user: str) -> str | None: ...


class UserSource(Protocol):
    """Where the users come from: a fixed :class:`UserStore`, a :class:`UsersFile`, a directory."""

    def current(self) -> Users: ...


class Authenticator:
    """Decides who a call runs as; ``users=None`` disables authentication."""

    def __init__(self, users: UserSource | None, signer: TokenSigner, throttle: LoginThrottle | None = None) -> None:
        self.users = users
        self.signer = signer
        #: rations password checks and refuses users and addresses with too many failures
        self.throttle = throttle if throttle is not None else LoginThrottle()

    def _store(self) -> Users:
        assert self.users is not None
        try:
            return self.users.current()
        except UsersFileError:
            raise Unavailable("the server's users file is unusable: no login is possible until it is fixed") from None

    @property
    def enabled(self) -> bool:
        """Whether calls must carry credentials."""
        return self.users is not None

    def _login(self, principal: Principal, user: str, now: float | None, stamp: str = "") -> AuthResult:
        """A login's result: a new session, and a fresh bearer token naming it for the client."""
        session_id = uuid.uuid4().hex
        token = self.signer.issue(user, now, stamp, session_id)
        return AuthResult(principal, ((AUTHORIZATION, f"Bearer {token}"),), session_id)

    def _token(self, token: str, now: float | None) -> AuthResult:
        """The principal and session of a bearer token whose user still exists with the same password."""
        claims = self.signer.verify(token, now)
        credential = self._store().credential(claims.user)
        if credential is None:
            raise Unauthenticated("token refused: its user no longer exists")
        if claims.stamp != self.signer.stamp(claims.user, credential):
            raise Unauthenticated("token refused: the password changed since login; log in again")
        return AuthResult(Principal(claims.user, claims.expires_at), session_id=claims.session_id)

    def authenticate(
        self, metadata: Mapping[str, str], now: float | None = None, source: str = ""
    ) -> AuthResult:
        """Authenticate one call from its request metadata; ``source`` is the client's
        address (logins are counted per user and per address).

        Raises :class:`Unauthenticated` for missing, malformed or wrong credentials
        and for invalid or expired tokens; never any other exception for bad input.
        """
        if self.users is None:
            return self._anonymous(metadata, now)
        value = _header(metadata)
        if value is None:
            raise Unauthenticated(LOGIN_REQUIRED)
        scheme, param = _split(value)
        if scheme == "bearer":
            if not param:
                raise Unauthenticated("bearer token missing")
            return self._token(param, now)
        if scheme == "basic":
            user, password = _basic_credentials(param)
            store = self._store()
            if not self.throttle.check(user, source, lambda: store.verify(user, password)):
                raise Unauthenticated(INVALID_CREDENTIALS)
            stamp = self.signer.stamp(user, store.credential(user) or "")
            return self._login(Principal(user, None), user, now, stamp)
        raise Unauthenticated(LOGIN_REQUIRED)

    def token_for(self, user: str, now: float | None = None) -> str | None:
        """A bearer token for a user this node has already authenticated: the REST gateway's
        calls to the node in that user's name.  None with authentication off."""
        if self.users is None:
            return None
        credential = self._store().credential(user)
        if credential is None:
            raise Unauthenticated("token refused: its user no longer exists")
        return self.signer.issue(user, now, self.signer.stamp(user, credential), uuid.uuid4().hex)

    def _anonymous(self, metadata: Mapping[str, str], now: float | None) -> AuthResult:
        """With authentication disabled: anonymous, but answer logins with a token."""
        try:
            value = _header(metadata)
            if value is None:
                return AuthResult(ANONYMOUS)
            scheme, param = _split(value)
            if scheme != "basic":
                return AuthResult(ANONYMOUS)
            user, _ = _basic_credentials(param)
        except Unauthenticated:
            return AuthResult(ANONYMOUS)
        return self._login(ANONYMOUS, user, now)


def _parse_secret(text: str, path: Path) -> bytes:
    """Decode the hex secret read from ``path``; raise ``ValueError`` if malformed."""
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ValueError(
            f"{path}: token secret must be {SECRET_BYTES} bytes written as "
            f"{2 * SECRET_BYTES} hex digits"
        )
    return secret


def load_or_create_secret(path: PathLike) -> bytes:
    """Return the token secret stored in ``path``, creating it (mode 0600) if absent.

    All nodes of a cluster must use the same secret so that each accepts the
    tokens of the others.  Creation is atomic: concurrent creators agree on one
    secret (the first one linked into place wins).
    """
    p = Path(path)
    if not p.exists():
        _create_secret(p)
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        _LOG.warning("token secret %s is readable by others (mode %o)", p, mode)
    return _parse_secret(p.read_text(encoding="ascii", errors="replace"), p)


def _create_secret(path: Path) -> None:
    """Write a fresh random secret to ``path`` unless another writer got there first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(secrets.token_hex(SECRET_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            _create_exclusive(path, Path(tmp).read_text(encoding="ascii"))
    finally:
        os.unlink(tmp)


def _create_exclusive(path: Path, text: str) -> None:
    """Fallback for file systems without hard links: create ``path`` exclusively."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
