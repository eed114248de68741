"""The data source options: one parser turns Spark's option map into frozen settings.

Option names are case-insensitive (Spark lower-cases them); the constants below are the
names users write.  Unknown names are refused, so a misspelt option fails loudly instead
of being ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from datasource.errors import FlightSqlOptionError

URI = "uri"
QUERY = "query"
TABLE = "table"
USER = "user"
USERNAME = "username"  # the ADBC spelling, accepted as a synonym of ``user``
PASSWORD = "password"  # noqa: S105 - a name, not a secret
TOKEN = "token"  # noqa: S105 - a name, not a secret
TLS_ROOT_CERTS = "tlsRootCerts"
TLS_SKIP_VERIFY = "tlsSkipVerify"
TLS_OVERRIDE_HOSTNAME = "tlsOverrideHostname"
HEADER_PREFIX = "header."
TIMEOUT = "timeout"
PUSH_FILTERS = "pushFilters"
IDENTIFIER_QUOTE = "identifierQuote"

_COMMON = (URI, USER, USERNAME, PASSWORD, TOKEN, TLS_ROOT_CERTS, TLS_SKIP_VERIFY, TLS_OVERRIDE_HOSTNAME, TIMEOUT)
_READ = (*_COMMON, QUERY, TABLE, PUSH_FILTERS, IDENTIFIER_QUOTE)
_WRITE = (*_COMMON, TABLE)

_SCHEMES = ("grpc", "grpc+tcp", "grpc+tls", "grpc+unix")
_QUOTES = {'"': '"', "`": "`", "[": "]"}

Purpose = Literal["read", "write"]


@dataclass(frozen=True)
class TableName:
    """A table name of one to three parts: ``[catalog.][schema.]table``."""

    table: str
    schema: str | None = None
    catalog: str | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.catalog, self.schema, self.table) if p is not None)


@dataclass(frozen=True)
class SourceOptions:
    """Where the server is, how to log in, and what to read or write."""

    uri: str
    query: str | None = None
    table: TableName | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    tls_root_certs: str | None = None  # PEM text
    tls_skip_verify: bool = False
    tls_override_hostname: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    push_filters: bool = False
    identifier_quote: str | None = None

    @property
    def uses_tls(self) -> bool:
        return urlparse(self.uri).scheme == "grpc+tls"


def parse_options(options: Mapping[str, str], purpose: Purpose) -> SourceOptions:
    """Validate Spark's options for a read or a write; raise :class:`FlightSqlOptionError`."""
    given = {key.lower(): value for key, value in options.items()}
    known = {name.lower() for name in (_READ if purpose == "read" else _WRITE)}
    unknown = sorted(k for k in given if k not in known and not k.startswith(HEADER_PREFIX))
    if unknown:
        names = ", ".join(_READ if purpose == "read" else _WRITE)
        raise FlightSqlOptionError(
            f"unknown option(s) for a {purpose}: {', '.join(unknown)}; "
            f"the options are {names} and {HEADER_PREFIX}<name>"
        )

    def get(name: str) -> str | None:
        value = given.get(name.lower())
        return value if value is not None and value != "" else None

    uri = _uri(get(URI))
    query, table = get(QUERY), get(TABLE)
    if purpose == "read":
        if query is not None and table is not None:
            raise FlightSqlOptionError(f"give either the {QUERY!r} or the {TABLE!r} option, not both")
        if query is None and table is None:
            raise FlightSqlOptionError(f"give the {QUERY!r} option (a SQL query) or the {TABLE!r} option")
    elif table is None:
        raise FlightSqlOptionError(f"a write needs the {TABLE!r} option (the table to write to)")

    user, user_alias = get(USER), get(USERNAME)
    if user is not None and user_alias is not None and user != user_alias:
        raise FlightSqlOptionError(f"the {USER!r} and {USERNAME!r} options differ; give one")
    user = user or user_alias
    password, token = get(PASSWORD), get(TOKEN)
    if token is not None and (user is not None or password is not None):
        raise FlightSqlOptionError(f"give either {TOKEN!r} or {USER!r} and {PASSWORD!r}, not both")
    if (user is None) != (password is None):
        raise FlightSqlOptionError(f"the {USER!r} and {PASSWORD!r} options go together")

    root_certs, skip_verify, override = get(TLS_ROOT_CERTS), _bool(given, TLS_SKIP_VERIFY), get(TLS_OVERRIDE_HOSTNAME)
    if (root_certs is not None or skip_verify or override is not None) and urlparse(uri).scheme != "grpc+tls":
        raise FlightSqlOptionError(f"TLS options need a grpc+tls:// URI, not {uri!r}")

    return SourceOptions(
        uri=uri,
        query=_query(query) if query is not None else None,
        table=parse_table_name(table) if table is not None else None,
        user=user,
        password=password,
        token=token,
        tls_root_certs=_pem(root_certs) if root_certs is not None else None,
        tls_skip_verify=skip_verify,
        tls_override_hostname=override,
        headers=_headers(given),
        timeout=_timeout(get(TIMEOUT)),
        push_filters=_bool(given, PUSH_FILTERS),
        identifier_quote=_identifier_quote(get(IDENTIFIER_QUOTE)),
    )


def parse_table_name(text: str) -> TableName:
    """Split ``catalog.schema.table``; a part may be quoted with ``"``, backticks or ``[]``."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] in _QUOTES:
            close = _QUOTES[text[i]]
            i += 1
            part: list[str] = []
            while True:
                if i >= n:
                    raise FlightSqlOptionError(f"unclosed quote in table name {text!r}")
                if text[i] == close:
                    if i + 1 < n and text[i + 1] == close:  # a doubled quote stands for itself
                        part.append(close)
                        i += 2
                        continue
                    i += 1
                    break
                part.append(text[i])
                i += 1
            name = "".join(part)
        else:
            end = text.find(".", i)
            end = n if end < 0 else end
            name = text[i:end].strip()
            if any(q in name for q in _QUOTES):
                raise FlightSqlOptionError(f"misplaced quote in table name {text!r}")
            i = end
        if not name:
            raise FlightSqlOptionError(f"empty part in table name {text!r}")
        parts.append(name)
        if i >= n:
            break
        if text[i] != ".":
            raise FlightSqlOptionError(f"expected '.' after a quoted part in table name {text!r}")
        i += 1
    if len(parts) > 3:
        raise FlightSqlOptionError(f"a table name has at most three parts (catalog.schema.table): {text!r}")
    padded: list[str | None] = [None] * (3 - len(parts)) + list(parts)
    return TableName(table=parts[-1], schema=padded[1], catalog=padded[0])


def _uri(value: str | None) -> str:
    if value is None:
        raise FlightSqlOptionError(f"the {URI!r} option is required, e.g. grpc://host:31337")
    scheme = urlparse(value).scheme
    if scheme not in _SCHEMES:
        schemes = ", ".join(s + "://" for s in _SCHEMES)
        raise FlightSqlOptionError(f"the {URI!r} must start with one of {schemes}: {value!r}")
    return value


def _query(text: str) -> str:
    query = text.strip().rstrip(";").strip()
    if not query:
        raise FlightSqlOptionError(f"the {QUERY!r} option is empty")
    return query


def _bool(given: Mapping[str, str], name: str) -> bool:
    value = given.get(name.lower())
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise FlightSqlOptionError(f"the {name!r} option is true or false, not {value!r}")


def _timeout(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise FlightSqlOptionError(f"the {TIMEOUT!r} option is a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise FlightSqlOptionError(f"the {TIMEOUT!r} option must be positive, not {value!r}")
    return seconds


def _headers(given: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    headers = []
    for key, value in sorted(given.items()):
        if key.startswith(HEADER_PREFIX):
            name = key[len(HEADER_PREFIX):]
            if not name or any(c.isspace() or c == ":" for c in name):
                raise FlightSqlOptionError(f"invalid header name in option {key!r}")
            headers.append((name, value))
    return tuple(headers)


def _pem(value: str) -> str:
    """The option holds PEM text, or the path of a PEM file (read where options are parsed)."""
    if "-----BEGIN" in value:
        return value
    path = Path(value)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FlightSqlOptionError(f"cannot read {TLS_ROOT_CERTS!r} file {value!r}: {exc.strerror}") from None
    if "-----BEGIN" not in text:
        raise FlightSqlOptionError(f"{TLS_ROOT_CERTS!r} file {value!r} holds no PEM certificate")
    return text


def _identifier_quote(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in _QUOTES:
        raise FlightSqlOptionError(f"the {IDENTIFIER_QUOTE!r} option is one of {' '.join(_QUOTES)}, not {value!r}")
    return value
