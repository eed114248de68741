"""The cluster's ZooKeeper credential: only its holders read or write the cluster's znodes.

A credential is a ``user:password`` pair for ZooKeeper's built-in ``digest`` scheme,
kept in a file of mode 0600 that every node of the cluster is given.  Every znode the
cluster creates carries one ACL entry, ``digest:<user>:<hash>`` with all permissions,
and nothing for ``world:anyone``: a process without the credential can neither read
the cluster secret nor register a node nor see any query.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.security import ACL, make_digest_acl

log = logging.getLogger(__name__)

USER = "flightsql"


@dataclass(frozen=True, repr=False)
class Credential:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credential({self.user!r}, <redacted>)"

    @property
    def auth_data(self) -> list[tuple[str, str]]:
        """What a kazoo client sends to authenticate (``auth_data=``)."""
        return [("digest", f"{self.user}:{self.password}")]

    @property
    def acl(self) -> list[ACL]:
        """The ACL of every znode of the cluster: this credential, all permissions, nobody else."""
        return [make_digest_acl(self.user, self.password, all=True)]

    @classmethod
    def parse(cls, text: str, source: str) -> Credential:
        user, sep, password = text.strip().partition(":")
        if not sep or not user or len(password) < 16 or any(c.isspace() for c in user + password):
            raise ValueError(
                f"{source}: a ZooKeeper credential is one line 'user:password' (password of 16 or more "
                "characters, no spaces); create one with 'flightsql zookeeper-credential FILE'"
            )
        return cls(user, password)


def load(path: Path) -> Credential:
    """The credential in ``path``; ValueError says what is wrong (warns if others may read it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read ZooKeeper credential {path}: {exc.strerror or exc}") from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("ZooKeeper credential %s is readable by others (mode %o): chmod 600 it", path, mode)
    return Credential.parse(text, str(path))


def create(path: Path) -> Credential:
    """Write a new random credential to ``path`` (mode 0600); refuses to overwrite one."""
    credential = Credential(USER, secrets.token_urlsafe(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"{credential.user}:{credential.password}\n")
    return credential


def load_or_create(path: Path) -> Credential:
    """The credential in ``path``, created first if there is none (a node's own embedded ZooKeeper)."""
    if not path.exists():
        try:
            return create(path)
        except FileExistsError:
            pass
    return load(path)


def lock_tree(client: KazooClient, root: str, credential: Credential) -> int:
    """Give every znode under ``root`` (and ``root``) the cluster's ACL where it still grants
    the world anything: a cluster that ran before ACLs existed is locked by its first node
    with a credential. Returns how many znodes were locked."""
    locked = 0
    stack = [root]
    while stack:
        path = stack.pop()
        try:
            acls, _ = client.get_acls(path)
            if any(acl.id.scheme == "world" for acl in acls):
                client.set_acls(path, credential.acl)
                locked += 1
            stack.extend(f"{path.rstrip('/')}/{child}" for child in client.get_children(path))
        except NoNodeError:
            continue
    if locked:
        log.warning("locked %d znodes under %s that anyone could read or write", locked, root)
    return locked
