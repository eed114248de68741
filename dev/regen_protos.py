"""Regenerate (or check) the Python protobuf modules of the project's .proto files.

Usage::

    python dev/regen_protos.py           # rewrite the committed *_pb2.py files
    python dev/regen_protos.py --check   # exit 1 if they are out of date

Only message code is generated (``--python_out``), with its type stub
(``--pyi_out``, ``*_pb2.pyi``) for mypy; the services are served by
hand-written grpcio handlers, so no ``*_pb2_grpc.py`` stubs are needed.  Each
.proto is compiled with its own directory as the include root, so the
descriptor's file name is the bare file name (``FlightSql.proto``), plus the
well-known types bundled with grpc_tools (``google/protobuf/timestamp.proto``).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ProtoSource:
    """One .proto file and the generated module committed next to it."""

    proto: Path  # relative to the repository root

    @property
    def module_name(self) -> str:
        """File name of the generated module, e.g. ``FlightSql_pb2.py``."""
        return f"{self.proto.stem}_pb2.py"

    @property
    def generated_names(self) -> tuple[str, ...]:
        """File names protoc writes: the module and its type stub."""
        return (self.module_name, f"{self.proto.stem}_pb2.pyi")

    @property
    def committed(self) -> tuple[Path, ...]:
        """Relative paths of the committed generated files."""
        return tuple(self.proto.parent / name for name in self.generated_names)


PROTOS: tuple[ProtoSource, ...] = (
    ProtoSource(Path("flightsql/protocol/FlightSql.proto")),
    ProtoSource(Path("flightmanager/flight/Flight.proto")),
)


class RegenError(Exception):
    """protoc is missing or failed."""


def _well_known_include() -> Path:
    """Directory holding google/protobuf/*.proto as shipped with grpc_tools."""
    try:
        import grpc_tools
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RegenError(
            "grpc_tools is not installed; install the 'dev' extra (grpcio-tools)"
        ) from exc
    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def compile_proto(source: ProtoSource, out_dir: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Compile one .proto into ``out_dir`` and return the generated files' paths."""
    from grpc_tools import protoc

    proto_path = root / source.proto
    if not proto_path.is_file():
        raise RegenError(f"{source.proto} does not exist")
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_path.parent}",
        f"--proto_path={_well_known_include()}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        str(proto_path),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RegenError(f"protoc failed on {source.proto} (exit status {status})")
    generated = [out_dir / name for name in source.generated_names]
    for path in generated:
        if not path.is_file():
            raise RegenError(f"protoc produced no {path.name} for {source.proto}")
    return generated


def regenerate(root: Path = REPO_ROOT) -> list[Path]:
    """Rewrite every committed generated module; return the paths written."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="regen-protos-") as tmp:
        for source in PROTOS:
            for generated, committed in zip(compile_proto(source, Path(tmp), root), source.committed, strict=True):
                target = root / committed
                shutil.copyfile(generated, target)
                written.append(target)
    return written


def stale_modules(root: Path = REPO_ROOT) -> list[str]:
    """Describe each committed module that differs from a fresh compilation."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="check-protos-") as tmp:
        for source in PROTOS:
            for generated, relative in zip(compile_proto(source, Path(tmp), root), source.committed, strict=True):
                committed = root / relative
                if not committed.is_file():
                    problems.append(f"{relative} is missing (generated from {source.proto})")
                elif not filecmp.cmp(generated, committed, shallow=False):
                    problems.append(f"{relative} is out of date with {source.proto}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile into a temporary directory and fail if the committed code differs",
    )
    options = parser.parse_args(argv)
    try:
        if options.check:
            problems = stale_modules()
            if problems:
                for problem in problems:
                    print(f"error: {problem}", file=sys.stderr)
                print(
                    "error: generated protobuf code is stale; run: python dev/regen_protos.py",
                    file=sys.stderr,
                )
                return 1
            print("generated protobuf code is up to date")
            return 0
        for path in regenerate():
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    except RegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
