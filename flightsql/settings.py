"""One typed, frozen settings object per node, loaded once and passed in.

Sources, later ones winning: defaults, a settings file (``--config FILE`` or
``FLIGHTSQL_CONFIG``), environment variables (``FLIGHTSQL_<NAME>``), command-line flags.

The file is a Spark properties file, like ``spark-defaults.conf``: one ``key value`` (or
``key=value``) a line, ``#`` starts a comment. Our own settings have ``spark.flight.*``
names (the names of the original SparkFlightManager design where one existed); every other
``spark.*`` key is a Spark setting for the node's driver, as ``--conf`` gives one.  Every
option, with its file key and environment variable, is documented in ``flightsql serve --help``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightmanager.admission import Limits
    from flightmanager.history import Retention
    from flightmanager.tls import TlsFiles
    from flightsql.auth.ldap import LdapSettings
    from flightsql.server.statements import StatementLimits
    from flightsql.server.streams import StreamLimits

ENV_PREFIX = "FLIGHTSQL_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
EXECUTION_MODES = ("auto", "single", "distributed")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SIZES = frozenset({"memory_budget", "disk_budget", "result_cache_size", "max_message_size"})  # accept 512m, 2g, ...


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 31337
    internal_port: int = 0
    advertise_host: str | None = None
    internal_advertise_host: str | None = None
    master: str = "local[*]"
    conf: tuple[tuple[str, str], ...] = ()
    work_dir: Path = Path("work")
    users_file: Path | None = None
    secret_file: Path | None = None
    allow_unauthenticated_remote: bool = False
    memory_budget: int = 512 * 1024 * 1024
    disk_budget: int = 64 * 1024 * 1024 * 1024
    result_ttl: float = 600.0
    token_ttl: int = 3600
    demo: bool = False
    execution_mode: str = "auto"
    zookeeper: str | None = None
    metastore: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    http_port: int | None = None
    rest_port: int | None = None
    rest_max_rows: int = 1000
    rest_batches: int = 0
    drain_timeout: float = 30.0
    policy_file: Path | None = None
    allow_server_access: str = ""
    zookeeper_credential_file: Path | None = None
    status_open: bool = False
    spark_ui: bool = False
    max_running: int = 8
    max_running_per_user: int = 4
    max_queued: int = 100
    queue_wait: float = 60.0
    session_idle_timeout: float = 3600.0
    history_size: int = 1000
    result_cache_ttl: float = 60.0
    result_cache_size: int = 64 * 1024 * 1024
    max_message_size: int = 64 * 1024 * 1024
    history_age: float = 7 * 24 * 3600.0
    max_streams: int = 128
    max_streams_per_user: int = 16
    stream_stall_timeout: float = 60.0
    max_statement_length: int = 1 << 20
    max_statement_depth: int = 256
    ldap_url: str | None = None
    ldap_user_dn: str | None = None
    ldap_user_base: str | None = None
    ldap_user_filter: str = "(uid={user})"
    ldap_bind_dn: str | None = None
    ldap_bind_password_file: Path | None = None
    ldap_group_base: str | None = None
    ldap_group_filter: str = "(|(member={dn})(memberUid={user}))"
    ldap_start_tls: bool = False
    ldap_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    def limits(self) -> Limits:
        """The node's admission limits (see flightmanager.admission)."""
        from flightmanager.admission import Limits

        return Limits(self.max_running, self.max_running_per_user, self.max_queued, self.queue_wait)

    def stream_limits(self) -> StreamLimits:
        from flightsql.server.streams import StreamLimits

        return StreamLimits(self.max_streams_per_user, self.max_streams, self.stream_stall_timeout)

    def statement_limits(self) -> StatementLimits:
        from flightsql.server.statements import StatementLimits

        return StatementLimits(self.max_statement_length, self.max_statement_depth)

    def ldap(self) -> LdapSettings | None:
        """The LDAP directory of the node's users (None: no directory)."""
        from flightsql.auth.ldap import LdapSettings

        if self.ldap_url is None:
            return None
        return LdapSettings(
            self.ldap_url, self.ldap_user_dn, self.ldap_user_base, self.ldap_user_filter, self.ldap_bind_dn,
            self.ldap_bind_password_file, self.ldap_group_base, self.ldap_group_filter, self.ldap_start_tls,
            self.ldap_ca,
        )

    def tls(self) -> TlsFiles | None:
        """The node's TLS files (None: no TLS)."""
        from flightmanager.tls import TlsFiles

        if self.tls_cert is None or self.tls_key is None:
            return None
        return TlsFiles(self.tls_cert, self.tls_key, self.tls_ca)

    def retention(self) -> Retention:
        """How much query history the cluster keeps (see flightmanager.history)."""
        from flightmanager.history import Retention

        return Retention(self.history_size, self.history_age)

    @property
    def public_host(self) -> str:
        if self.advertise_host:
            return self.advertise_host
        if self.host in ("0.0.0.0", "::", ""):
            import socket

            return socket.gethostname()
        return self.host

    def check(self) -> None:
        """Refuse settings that would expose data without authentication, or make no sense."""
        if (self.users_file is None and self.ldap_url is None and self.host not in LOOPBACK
                and not self.allow_unauthenticated_remote):
            raise ValueError(
                f"refusing to listen on {self.host} without authentication: pass --users FILE "
                "(see 'flightsql users add') or --ldap-url, or --allow-unauthenticated-remote to accept the risk"
            )
        if self.users_file is not None and self.ldap_url is not None:
            raise ValueError("--users and --ldap-url are two sources of users: give one")
        ldap = self.ldap()
        if ldap is not None:
            ldap.check()
        if self.memory_budget < 0 or self.disk_budget < 0:
            raise ValueError("budgets must be >= 0")
        for name in ("port", "internal_port", "http_port", "rest_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ValueError(f"{name.replace('_', '-')} must be a port number (0-65535), got {value}")
        if self.result_ttl <= 0 or self.token_ttl <= 0:
            raise ValueError("result-ttl and token-ttl must be > 0")
        if self.drain_timeout < 0:
            raise ValueError("drain-timeout must be >= 0")
        if self.max_message_size < 1024:
            raise ValueError("max-message-size must be at least 1k")
        if self.rest_max_rows < 0 or self.rest_batches < 0:
            raise ValueError("rest-max-rows and rest-batches must be >= 0")
        if self.result_cache_ttl < 0 or self.result_cache_size < 0:
            raise ValueError("result-cache-ttl and result-cache-size must be >= 0")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-ca needs --tls-cert and --tls-key: the node presents its certificate to its peers")
        tls = self.tls()
        if tls is not None:
            tls.check()
        if self.session_idle_timeout <= 0:
            raise ValueError("session-idle-timeout must be > 0")
        if self.zookeeper and self.zookeeper_credential_file is None:
            raise ValueError(
                "joining a ZooKeeper ensemble needs the cluster's credential: --zookeeper-credential FILE "
                "(create it once with 'flightsql zookeeper-credential FILE' and give every node the same file)"
            )
        from flightsql.security.guard import parse_allowed

        parse_allowed(self.allow_server_access)  # an unknown feature name stops the node at once
        if self.policy_file is not None:
            from flightsql.security.policy import Policy

            Policy.load(self.policy_file)  # a malformed policy too, with the file and policy named
        self.limits().check()
        self.statement_limits().check()
        self.stream_limits().check()
        self.retention().check()
        _one_of("execution-mode", self.execution_mode, EXECUTION_MODES)
        _one_of("log-format", self.log_format, LOG_FORMATS)
        _one_of("log-level", self.log_level.upper(), LOG_LEVELS)


# Each setting's key in a settings file.  Where the original design named a setting
# (spark.flight.host/port, .internal.port, .public.host, .manager.zookeeper.url) we keep
# its name; the Spark master and the Hive metastore keep Spark's own names.
FILE_KEYS: dict[str, str] = {
    "host": "spark.flight.host",
    "port": "spark.flight.port",
    "internal_port": "spark.flight.internal.port",
    "advertise_host": "spark.flight.public.host",
    "internal_advertise_host": "spark.flight.internal.host",
    "master": "spark.master",
    "work_dir": "spark.flight.workDir",
    "users_file": "spark.flight.auth.usersFile",
    "secret_file": "spark.flight.auth.secretFile",
    "allow_unauthenticated_remote": "spark.flight.auth.allowUnauthenticatedRemote",
    "memory_budget": "spark.flight.spool.memoryBudget",
    "disk_budget": "spark.flight.spool.diskBudget",
    "result_ttl": "spark.flight.result.ttl",
    "token_ttl": "spark.flight.auth.tokenTtl",
    "demo": "spark.flight.demo",
    "execution_mode": "spark.flight.executionMode",
    "session_idle_timeout": "spark.flight.session.idleTimeout",
    "history_size": "spark.flight.history.size",
    "result_cache_ttl": "spark.flight.resultCache.ttl",
    "result_cache_size": "spark.flight.resultCache.size",
    "max_message_size": "spark.flight.maxMessageSize",
    "history_age": "spark.flight.history.age",
    "max_streams": "spark.flight.maxStreams",
    "max_streams_per_user": "spark.flight.maxStreamsPerUser",
    "stream_stall_timeout": "spark.flight.streamStallTimeout",
    "max_statement_length": "spark.flight.sql.maxStatementLength",
    "max_statement_depth": "spark.flight.sql.maxStatementDepth",
    "ldap_url": "spark.flight.auth.ldap.url",
    "ldap_user_dn": "spark.flight.auth.ldap.userDn",
    "ldap_user_base": "spark.flight.auth.ldap.userBase",
    "ldap_user_filter": "spark.flight.auth.ldap.userFilter",
    "ldap_bind_dn": "spark.flight.auth.ldap.bindDn",
    "ldap_bind_password_file": "spark.flight.auth.ldap.bindPasswordFile",
    "ldap_group_base": "spark.flight.auth.ldap.groupBase",
    "ldap_group_filter": "spark.flight.auth.ldap.groupFilter",
    "ldap_start_tls": "spark.flight.auth.ldap.startTls",
    "ldap_ca": "spark.flight.auth.ldap.ca",
    "tls_cert": "spark.flight.tls.cert",
    "tls_key": "spark.flight.tls.key",
    "tls_ca": "spark.flight.tls.ca",
    "zookeeper": "spark.flight.manager.zookeeper.url",
    "metastore": "spark.hive.metastore.uris",
    "log_level": "spark.flight.log.level",
    "log_format": "spark.flight.log.format",
    "http_port": "spark.flight.http.port",
    "rest_port": "spark.flight.rest.port",
    "rest_max_rows": "spark.flight.rest.maxRows",
    "rest_batches": "spark.flight.rest.batches",
    "drain_timeout": "spark.flight.drainTimeout",
    "policy_file": "spark.flight.auth.policyFile",
    "allow_server_access": "spark.flight.sql.allowServerAccess",
    "zookeeper_credential_file": "spark.flight.manager.zookeeper.credentialFile",
    "status_open": "spark.flight.http.open",
    "spark_ui": "spark.flight.sparkUi",
    "max_running": "spark.flight.admission.maxRunning",
    "max_running_per_user": "spark.flight.admission.maxRunningPerUser",
    "max_queued": "spark.flight.admission.maxQueued",
    "queue_wait": "spark.flight.admission.queueWait",
}
_FIELD_OF_KEY = {key: name for name, key in FILE_KEYS.items()}
_TYPES = {f.name: str(f.type) for f in fields(Settings)}


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


def convert(name: str, value: str) -> Any:
    """A setting's value from text (a file, the environment); ValueError says what is wrong."""
    kind = _TYPES[name]
    text = value.strip()
    try:
        if "bool" in kind:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if name in SIZES:
            return parse_size(text)
        if "int" in kind:
            return int(text) if text or "None" not in kind else None
        if "float" in kind:
            return float(text)
    except ValueError:
        raise ValueError(f"not a valid {kind.split(' ')[0]}: {value!r}") from None
    if "Path" in kind:
        return Path(text) if text else None
    return text if text or "None" not in kind else None


def parse_size(value: str) -> int:
    """Parse 512m, 2g, 1048576 style sizes."""
    text = value.strip().lower().rstrip("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def read_file(path: Path) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """A settings file's settings and its Spark settings; ValueError names the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read settings file {path}: {exc.strerror or exc}") from None
    values: dict[str, Any] = {}
    conf: list[tuple[str, str]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        key, value = _split(line)
        where = f"{path}:{number}"
        if not key.startswith("spark."):
            raise ValueError(f"{where}: {key!r} is not a spark.* key")
        name = _FIELD_OF_KEY.get(key)
        if name is not None:
            try:
                values[name] = convert(name, value)
            except ValueError as exc:
                raise ValueError(f"{where}: {key}: {exc}") from None
        elif key.startswith("spark.flight."):
            close = difflib.get_close_matches(key, FILE_KEYS.values(), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"{where}: unknown setting {key}{hint}")
        else:
            conf.append((key, value))
    return values, tuple(conf)


def _split(line: str) -> tuple[str, str]:
    for index, char in enumerate(line):
        if char == "=" or char.isspace():
            key, rest = line[:index], line[index + 1:].strip()
            return key, rest[1:].strip() if char.isspace() and rest.startswith("=") else rest
    return line, ""


def load(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, config: Path | None = None) -> Settings:
    """Merge defaults, the settings file, the environment and the flags (flags given as None are unset)."""
    environ = os.environ if environ is None else environ
    if config is None and environ.get(CONFIG_ENV):
        config = Path(environ[CONFIG_ENV])
    from_file, file_conf = read_file(config) if config is not None else ({}, ())
    from_env: dict[str, Any] = {}
    for name in FILE_KEYS:
        raw = environ.get(env_name(name))
        if raw is not None:
            try:
                from_env[name] = convert(name, raw)
            except ValueError as exc:
                raise ValueError(f"{env_name(name)}: {exc}") from None
    given = {k: v for k, v in flags.items() if v is not None and k != "conf"}
    conf = file_conf + tuple(flags.get("conf") or ())
    return replace(Settings(), **{**from_file, **from_env, **given}, conf=conf)
