"""Users and groups from an LDAP directory (OpenLDAP, Active Directory, 389-DS, ...).

A login is checked by binding to the directory as the user, found one of two ways:

- **a DN pattern** (``--ldap-user-dn 'uid={user},ou=people,dc=example,dc=org'``): the
  user's name, escaped as an RDN value, fills the pattern;
- **search, then bind** (``--ldap-user-base`` with ``--ldap-user-filter '(uid={user})'``):
  the node binds with its own account (``--ldap-bind-dn``, password from
  ``--ldap-bind-password-file``), finds exactly one entry, and binds as it.

Names from clients are escaped in every filter and DN: a user named ``*`` or
``x)(uid=*`` matches nothing.  Groups (``--ldap-group-base``, ``--ldap-group-filter``,
default ``(|(member={dn})(memberUid={user}))``) are the ``cn`` of the group entries that
list the user; the authorization policy names them as it names its own groups.

What a bearer token is checked against: the user's entry still exists and was not
modified since the login (its ``modifyTimestamp``; a password change modifies it).
Entries are looked up at most every ``cache`` seconds per user.  A directory that does not
answer makes logins UNAVAILABLE (never UNAUTHENTICATED: the password may be right).
``ldaps://`` URLs, or ``--ldap-start-tls``, encrypt the connection; ``--ldap-ca``
names the CA that issued the directory's certificate (else the system's).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPBindError, LDAPException, LDAPInvalidCredentialsResult, LDAPSocketOpenError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from flightsql.errors import Unavailable

log = logging.getLogger(__name__)


class LdapConfigError(ValueError):
    """LDAP settings that cannot work."""


@dataclass(frozen=True)
class LdapSettings:
    url: str
    user_dn: str | None = None
    user_base: str | None = None
    user_filter: str = "(uid={user})"
    bind_dn: str | None = None
    bind_password_file: Path | None = None
    group_base: str | None = None
    group_filter: str = "(|(member={dn})(memberUid={user}))"
    start_tls: bool = False
    ca: Path | None = None
    timeout: float = 5.0
    cache: float = 30.0

    def check(self) -> None:
        if not self.url.startswith(("ldap://", "ldaps://")):
            raise LdapConfigError(f"--ldap-url must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], got {self.url!r}")
        if (self.user_dn is None) == (self.user_base is None):
            raise LdapConfigError("give one of --ldap-user-dn (a DN pattern with {user}) or --ldap-user-base "
                                  "(search, then bind)")
        if self.user_dn is not None and "{user}" not in self.user_dn:
            raise LdapConfigError("--ldap-user-dn must contain {user}")
        if self.user_base is not None and "{user}" not in self.user_filter:
            raise LdapConfigError("--ldap-user-filter must contain {user}")
        if (self.bind_dn is None) != (self.bind_password_file is None):
            raise LdapConfigError("--ldap-bind-dn and --ldap-bind-password-file go together")
        if self.bind_password_file is not None and not self.bind_password_file.is_file():
            raise LdapConfigError(f"LDAP bind password file not found: {str(self.bind_password_file)!r}")
        if self.ca is not None and not self.ca.is_file():
            raise LdapConfigError(f"LDAP CA file not found: {str(self.ca)!r}")
        if self.start_tls and self.url.startswith("ldaps://"):
            raise LdapConfigError("--ldap-start-tls is for ldap:// URLs; ldaps:// is TLS already")


@dataclass(frozen=True)
class _Entry:
    dn: str
    stamp: str
    at: float


class LdapDirectory:
    """The users of the server, in a directory: the authenticator's user source."""

    def __init__(self, settings: LdapSettings) -> None:
        settings.check()
        self.settings = settings
        tls = None
        if settings.url.startswith("ldaps://") or settings.start_tls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT,
                            ca_certs_file=str(settings.ca) if settings.ca else None)
        self._server = ldap3.Server(settings.url, connect_timeout=int(settings.timeout), tls=tls, get_info=ldap3.NONE)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._groups: dict[str, tuple[frozenset[str], float]] = {}

    # the authenticator's user source
    def current(self) -> LdapDirectory:
        return self

    def _connection(self, dn: str | None, password: str | None) -> ldap3.Connection:
        """A bound connection (anonymous without ``dn``); raises LDAPBindError on a wrong password."""
        connection = ldap3.Connection(
            self._server, user=dn, password=password, receive_timeout=int(self.settings.timeout),
            raise_exceptions=True, auto_bind=ldap3.AUTO_BIND_NONE,
        )
        try:
            connection.open()
            if self.settings.start_tls:
                connection.start_tls()
            connection.bind()
        except BaseException:
            connection.unbind()
            raise
        return connection

    def _service(self) -> ldap3.Connection:
        """The node's own connection for searches (its account, or anonymous)."""
        password = None
        if self.settings.bind_password_file is not None:
            password = self.settings.bind_password_file.read_text().strip()
        return self._connection(self.settings.bind_dn, password)

    def _unavailable(self, exc: Exception) -> Unavailable:
        log.warning("LDAP directory %s: %s: %s", self.settings.url, type(exc).__name__, exc)
        return Unavailable(f"the LDAP directory does not answer ({type(exc).__name__}); logins are not possible "
                           "until it does")

    def _find(self, user: str) -> _Entry | None:
        """The user's entry (DN and modifyTimestamp), looked up now; None if there is none."""
        if not user or len(user) > 256:
            return None
        try:
            connection = self._service()
            try:
                if self.settings.user_dn is not None:
                    base = self.settings.user_dn.replace("{user}", escape_rdn(user))
                    found = connection.search(base, "(objectClass=*)", ldap3.BASE, attributes=["modifyTimestamp"])
                else:
                    assert self.settings.user_base is not None
                    query = self.settings.user_filter.replace("{user}", escape_filter_chars(user))
                    found = connection.search(self.settings.user_base, query, ldap3.SUBTREE,
                                              attributes=["modifyTimestamp"], size_limit=2)
                entries = list(connection.entries) if found else []
            finally:
                connection.unbind()
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:
            return None
        except (LDAPSocketOpenError, LDAPBindError) as exc:
            raise self._unavailable(exc) from None
        except LDAPException as exc:
            if "noSuchObject" in str(exc) or "no such object" in str(exc).lower():
                return None
            raise self._unavailable(exc) from None
        if len(entries) != 1:
            return None  # none, or ambiguous: no login
        entry = entries[0]
        stamp = str(entry["modifyTimestamp"].value) if "modifyTimestamp" in entry else ""
        found_entry = _Entry(entry.entry_dn, stamp, time.monotonic())
        with self._lock:
            self._entries[user] = found_entry
        return found_entry

    def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` binds as ``user`` (an empty password never does: LDAP takes
        it for an anonymous bind and would say yes)."""
        if not password:
            return False
        entry = self._find(user)
        if entry is None:
            return False
        try:
            self._connection(entry.dn, password).unbind()
        except (LDAPBindError, LDAPInvalidCredentialsResult):
            return False
        except LDAPException as exc:
            raise self._unavailable(exc) from None
        return True

    def credential(self, user: str) -> str | None:
        """What a token's stamp is made from: the entry's DN and last modification, or None
        if the user has no entry (looked up at most every ``cache`` seconds)."""
        with self._lock:
            entry = self._entries.get(user)
        if entry is None or time.monotonic() - entry.at > self.settings.cache:
            entry = self._find(user)
        return None if entry is None else f"{entry.dn}\x00{entry.stamp}"

    def groups(self, user: str) -> frozenset[str]:
        """The ``cn`` of every group entry that lists ``user`` (looked up at most every
        ``cache`` seconds)."""
        if self.settings.group_base is None:
            return frozenset()
        with self._lock:
            known = self._groups.get(user)
            entry = self._entries.get(user)
        if known is not None and time.monotonic() - known[1] <= self.settings.cache:
            return known[0]
        if entry is None:
            entry = self._find(user)
            if entry is None:
                return frozenset()
        query = (self.settings.group_filter.replace("{dn}", escape_filter_chars(entry.dn))
                 .replace("{user}", escape_filter_chars(user)))
        try:
            connection = self._service()
            try:
                connection.search(self.settings.group_base, query, ldap3.SUBTREE, attributes=["cn"])
                groups = frozenset(str(e["cn"].value) for e in connection.entries if "cn" in e)
            finally:
                connection.unbind()
        except LDAPException as exc:
            raise self._unavailable(exc) from None
        with self._lock:
            self._groups[user] = (groups, time.monotonic())
        return groups
