"""One typed, frozen settings object per node, loaded once and passed in.

Sources, later ones winning: defaults, environment variables (``FLIGHTSQL_<NAME>``),
command-line flags.  Every option is documented in ``flightsql serve --help``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "FLIGHTSQL_"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 31337
    internal_port: int = 0
    advertise_host: str | None = None
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

    @property
    def public_host(self) -> str:
        if self.advertise_host:
            return self.advertise_host
        if self.host in ("0.0.0.0", "::", ""):
            import socket

            return socket.gethostname()
        return self.host

    def check(self) -> None:
        """Refuse settings that would expose data without authentication."""
        if self.users_file is None and self.host not in LOOPBACK and not self.allow_unauthenticated_remote:
            raise ValueError(
                f"refusing to listen on {self.host} without authentication: pass --users FILE "
                "(see 'flightsql users add'), or --allow-unauthenticated-remote to accept the risk"
            )
        if self.memory_budget < 0 or self.disk_budget < 0:
            raise ValueError("budgets must be >= 0")


def _convert(kind: Any, value: str) -> Any:
    text = str(kind)
    if "bool" in text:
        return value.strip().lower() in ("1", "true", "yes", "on")
    if "int" in text:
        return parse_size(value)
    if "float" in text:
        return float(value)
    if "Path" in text:
        return Path(value) if value else None
    return value


def parse_size(value: str) -> int:
    """Parse 512m, 2g, 1048576 style sizes."""
    text = value.strip().lower().rstrip("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def load(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    settings = Settings()
    from_env: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and f.name != "conf":
            from_env[f.name] = _convert(f.type, raw)
    settings = replace(settings, **from_env)
    given = {k: v for k, v in flags.items() if v is not None}
    return replace(settings, **given)


_ = field
