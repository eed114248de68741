"""The users file: one ``username:argon2id-hash`` per line.

Passwords are never stored: each line holds an argon2id hash in PHC string format
(``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) as produced by :func:`hash_password`.
Blank lines and lines starting with ``#`` are ignored.  A line that holds anything
but an argon2id hash (for example a plain-text password) is refused when the file
is loaded, with the file name and line number in the message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

PathLike = Union[str, os.PathLike[str]]  # noqa: UP007 - a runtime alias, evaluated on Python 3.10

_LOG = logging.getLogger(__name__)

HASH_PREFIX = "$argon2id$"
"""Every stored hash starts with this prefix (PHC format, argon2id variant)."""

_HASHER = argon2.PasswordHasher()


class UsersFileError(ValueError):
    """The users file cannot be read or holds a malformed line."""


@dataclass(frozen=True)
class _Entry:
    """One user line of a users file; ``index`` is the 0-based line index."""

    index: int
    user: str
    hash: str


def hash_password(password: str) -> str:
    """Return the argon2id hash (PHC string) of ``password``, salted at random."""
    return _HASHER.hash(password)


def validate_username(user: str) -> None:
    """Raise ``ValueError`` unless ``user`` is non-empty without ':' or whitespace."""
    if not user:
        raise ValueError("user name is empty")
    if ":" in user or any(ch.isspace() for ch in user):
        raise ValueError(f"user name {user!r} may not contain ':' or whitespace")


def _check_hash(value: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a well-formed argon2id PHC string."""
    if not value.startswith(HASH_PREFIX):
        raise ValueError(
            "the password field is not an argon2id hash ('$argon2id$...'); "
            "plain-text passwords are refused, store the output of hash_password()"
        )
    try:
        argon2.extract_parameters(value)
    except InvalidHashError:
        raise ValueError("the argon2id hash is malformed") from None


def _parse(text: str, source: str) -> list[_Entry]:
    """Parse the text of a users file; errors name ``source`` and the line number."""
    entries: list[_Entry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(text.splitlines()):
        lineno = index + 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        try:
            if not sep:
                raise ValueError("expected 'username:hash'")
            validate_username(user)
            _check_hash(hashed)
        except ValueError as exc:
            raise UsersFileError(f"{source}, line {lineno}: {exc}") from None
        if user in seen:
            raise UsersFileError(
                f"{source}, line {lineno}: user {user!r} is already defined "
                f"on line {seen[user]}"
            )
        seen[user] = lineno
        entries.append(_Entry(index, user, hashed))
    return entries


def _read(path: Path) -> str:
    """Return the text of the users file; failures raise :class:`UsersFileError`."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsersFileError(f"{path}: users file is not valid UTF-8") from None
    except OSError as exc:
        raise UsersFileError(
            f"{path}: cannot read users file: {exc.strerror or exc}"
        ) from exc


class UserStore:
    """The users of the server and their password hashes (read-only)."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        for user, hashed in hashes.items():
            validate_username(user)
            _check_hash(hashed)
        self._hashes = dict(hashes)
        self._dummy: str | None = None

    @classmethod
    def load(cls, path: PathLike) -> UserStore:
        """Read a users file; raise :class:`UsersFileError` if it is malformed."""
        p = Path(path)
        entries = _parse(_read(p), str(p))
        return cls({e.user: e.hash for e in entries})

    def __contains__(self, user: object) -> bool:
        return user in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def current(self) -> UserStore:
        """This store (a fixed set of users; see :class:`UsersFile` for one that follows its file)."""
        return self

    def credential(self, user: str) -> str | None:
        """The stored hash of ``user`` (what a token's stamp is made from), or None."""
        return self._hashes.get(user)

    def usernames(self) -> tuple[str, ...]:
        """Return the user names, sorted."""
        return tuple(sorted(self._hashes))

    def verify(self, user: str, password: str) -> bool:
        """Return whether ``password`` is the password of ``user``.

        An unknown user costs one hash verification as well (against a dummy hash
        with the cost parameters of the stored hashes), so the time taken does not
        reveal which users exist.
        """
        hashed = self._hashes.get(user)
        if hashed is None:
            self._verify_hash(self._dummy_hash(), password)
            return False
        return self._verify_hash(hashed, password)

    @staticmethod
    def _verify_hash(hashed: str, password: str) -> bool:
        """Verify ``password`` against ``hashed``; any failure is ``False``."""
        try:
            return _HASHER.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        """A hash of a random password, as costly to verify as the stored ones."""
        if self._dummy is None:
            hasher = _HASHER
            if self._hashes:
                sample = next(iter(self._hashes.values()))
                hasher = argon2.PasswordHasher.from_parameters(
                    argon2.extract_parameters(sample)
                )
            self._dummy = hasher.hash(secrets.token_urlsafe(16))
        return self._dummy


class UsersFile:
    """The users of a users file as it is now: edits take effect on a running node.

    Every call checks the file's identity (inode, size, modification time), which costs
    one ``stat``; the file is read again only when it changed.  A file that has become
    unreadable or malformed refuses every login and token (fail closed) until it is fixed,
    rather than keep users that an edit may have removed.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._store = UserStore.load(self.path)  # a bad file at start stops the node
        self._signature = self._stat()
        self._error: str | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> UserStore:
        """The users now; raises :class:`UsersFileError` while the file is unusable."""
        signature = self._stat()
        with self._lock:
            if signature != self._signature:
                self._signature = signature
                try:
                    self._store = UserStore.load(self.path)
                    self._error = None
                    _LOG.info("users file %s reloaded: %d users", self.path, len(self._store))
                except UsersFileError as exc:
                    self._error = str(exc)
                    _LOG.error("users file unusable, every login is refused until it is fixed: %s", exc)
            if self._error is not None:
                raise UsersFileError(self._error)
            return self._store


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by a file holding ``text`` (mode 0600), all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def add_user(path: PathLike, user: str, password: str) -> bool:
    """Add ``user`` to the users file at ``path`` or change their password.

    The file is created if missing; comments and other users are kept.  It is
    rewritten atomically (temporary file + ``os.replace``) with mode 0600.
    Returns ``True`` if the user was added, ``False`` if their password changed.
    Raises ``ValueError`` for a bad user name or an empty password, and
    :class:`UsersFileError` if the existing file is malformed.
    """
    validate_username(user)
    if not password:
        raise ValueError("password is empty")
    p = Path(path)
    text = _read(p) if p.exists() else ""
    entries = _parse(text, str(p))
    lines = text.splitlines()
    line = f"{user}:{hash_password(password)}"
    existing = next((e for e in entries if e.user == user), None)
    if existing is None:
        lines.append(line)
    else:
        lines[existing.index] = line
    _write_atomically(p, "\n".join(lines) + "\n")
    return existing is None


def remove_user(path: PathLike, user: str) -> bool:
    """Remove ``user`` from the users file at ``path``; returns whether they were there.

    Comments and other users are kept; the file is rewritten atomically.  A running
    node refuses the user's logins and tokens from its next call on."""
    p = Path(path)
    text = _read(p)
    entries = _parse(text, str(p))
    existing = next((e for e in entries if e.user == user), None)
    if existing is None:
        return False
    lines = text.splitlines()
    del lines[existing.index]
    _write_atomically(p, "\n".join(lines) + "\n")
    return True
