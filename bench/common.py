"""What every benchmark shares: its servers (the node and its baselines), its processes,
its timing loop and its reports.

**Alternating rounds.** A comparison keeps every side up at once and times them in
rounds: each round times every side once, back to back, in an order that rotates from
round to round. Whatever else the machine does then falls on every side alike. Each
round gives a ratio, and the report is the median of those ratios with their range.
A side is a long-lived client process (:class:`Side`) that answers timed requests
(:func:`serve_requests`), so that no side pays for its start-up inside a round.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MARK = "[bench] "
ANSWER = "[answer] "

THROUGHPUT_SQL = "SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range({rows})"
LATENCY_SQL = "SELECT 1"
LATENCY_WARMUPS = 5
LATENCY_ITERATIONS = 50

DRIVER_MEMORY = "4g"
MASTER = "local[*]"
# Applied identically to the node, the local SparkSession and the Spark Connect server.
COMMON_CONF = {
    "spark.driver.memory": DRIVER_MEMORY,
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Guard only: lets larger --rows values collect to the driver in the Spark baselines.
    "spark.driver.maxResultSize": "0",
}

#: share of the machine used by other processes above which a measurement is flagged
CONTENDED_SHARE = 0.05

TARGET_VS_INPROC = 0.8
TARGET_VS_CONNECT = 1.0

# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def progress(message: str) -> None:
    """Progress line from a client process; the orchestrator echoes these."""
    print(MARK + message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(seconds: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
    }


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def group_jvm_heaps(pgid: int) -> list[str]:
    """-Xmx values of the java processes in a process group (read from /proc)."""
    heaps: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Field 5 (pgrp) follows the parenthesised command name.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if not argv or not argv[0].endswith(b"java"):
            continue
        heaps.extend(a.decode()[4:] for a in argv if a.startswith(b"-Xmx"))
    return heaps


class CpuMonitor:
    """Samples /proc to split CPU time into ours (this process and its descendants) and foreign.

    Foreign CPU during a measurement means something else competed for the cores, which
    makes that measurement unreliable on a small machine.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.root = os.getpid()
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.ours = 0.0
        self.foreign = 0.0
        self._prev: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sample(count=False)
        self._thread = threading.Thread(target=self._loop, name="cpu-monitor", daemon=True)
        self._thread.start()

    def _sample(self, count: bool = True) -> None:
        ticks: dict[int, int] = {}
        parent: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            pid = int(entry.name)
            parent[pid] = int(fields[1])
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime

        def is_ours(pid: int) -> bool:
            for _ in range(64):
                if pid == self.root:
                    return True
                if pid <= 1 or pid not in parent:
                    return False
                pid = parent[pid]
            return False

        ours = foreign = 0
        for pid, t in ticks.items():
            delta = t - self._prev.get(pid, 0)
            if delta <= 0:
                continue
            if is_ours(pid):
                ours += delta
            else:
                foreign += delta
        with self._lock:
            if count:
                self.ours += ours / self.tick
                self.foreign += foreign / self.tick
            self._prev = ticks

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:
                pass

    def snapshot(self) -> tuple[float, float, float]:
        with self._lock:
            return time.monotonic(), self.ours, self.foreign

    def since(self, start: tuple[float, float, float]) -> dict[str, float]:
        now = self.snapshot()
        wall = now[0] - start[0]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        foreign = now[2] - start[2]
        return {
            "wall_seconds": round(wall, 2),
            "our_cpu_seconds": round(now[1] - start[1], 2),
            "foreign_cpu_seconds": round(foreign, 2),
            "foreign_share_of_machine": round(foreign / (wall * cores), 4) if wall > 0 else 0.0,
        }

    def wait_idle(self, timeout: float, window: float = 5.0, threshold: float = 0.10) -> dict[str, Any]:
        """Wait (at most `timeout` seconds) for a window in which other processes use < threshold of the machine."""
        started = time.monotonic()
        share = 0.0
        announced = False
        while True:
            start = self.snapshot()
            time.sleep(window)
            share = self.since(start)["foreign_share_of_machine"]
            waited = time.monotonic() - started
            if share < threshold:
                return {"idle": True, "waited_seconds": round(waited, 1), "foreign_share": share}
            if waited + window > timeout:
                log(f"  machine still busy ({share:.0%} used by other processes) after {waited:.0f}s; measuring anyway")
                return {"idle": False, "waited_seconds": round(waited, 1), "foreign_share": share}
            if not announced:
                log(f"  other processes use {share:.0%} of the machine; waiting up to {timeout:.0f}s for it to calm down")
                announced = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# --------------------------------------------------------------------------- processes


class Managed:
    """A child process in its own process group whose merged output goes to a log file."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready: str | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.name = name
        #: the answers of a :class:`Side` (its output lines that start with ANSWER)
        self.answers: queue.Queue[str] = queue.Queue()
        self.cmd = cmd
        self.log_path = log_path
        self.ready_re = re.compile(ready) if ready else None
        self.ready_match: re.Match[str] | None = None
        self._ready = threading.Event()
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self.pgid = self.proc.pid  # start_new_session: the child leads its own group
        self._reader = threading.Thread(target=self._pump, name=f"log-{name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(ANSWER):
                self.answers.put(line[len(ANSWER):])
                continue
            self._log.write(line)
            self._log.flush()
            if line.startswith(MARK):
                log(f"  {self.name}: {line[len(MARK):].rstrip()}")
            if self.ready_re is not None and not self._ready.is_set():
                match = self.ready_re.search(line)
                if match:
                    self.ready_match = match
                    self._ready.set()

    def wait_ready(self, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.2):
                assert self.ready_match is not None
                return self.ready_match
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready\n{self.tail()}")
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s\n{self.tail()}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise TimeoutError(f"{self.name} did not finish within {timeout:.0f}s (killed)\n{self.tail()}") from None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + line for line in text[-lines:])

    def kill_group(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the leader, give it `grace` seconds, then SIGKILL whatever is left of the group."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"  {self.name}: still running {grace:.0f}s after SIGTERM, killing its process group")
            except ProcessLookupError:
                pass
        self.kill_group()  # children (JVMs, Python workers) that outlived the leader
        self._reader.join(5)
        self._log.close()


class Registry:
    """Every process the benchmark started, stopped in reverse order."""

    def __init__(self) -> None:
        self.procs: list[Managed] = []

    def add(self, proc: Managed) -> Managed:
        self.procs.append(proc)
        return proc

    def stop(self, proc: Managed, grace: float = 30.0) -> None:
        proc.stop(grace)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop(grace=15.0)
            except Exception as exc:  # keep stopping the others
                log(f"  could not stop {proc.name}: {exc}")



@contextlib.contextmanager
def bench_run(prefix: str) -> Iterator[tuple[Registry, CpuMonitor, Path]]:
    """One benchmark run: SIGTERM, SIGHUP and SIGINT end it as an exit does, results have
    their directory, and every process it starts (in the registry) is stopped at the end."""

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    registry, monitor = Registry(), CpuMonitor()
    try:
        yield registry, monitor, Path(tempfile.mkdtemp(prefix=prefix))
    finally:
        registry.stop_all()
        monitor.stop()


def check_rows(rows: int, expected: int, what: str) -> None:
    if rows != expected:
        raise RuntimeError(f"{what}: got {rows} rows, expected {expected}")


def check_sum(doubled_sum: int, rows: int, what: str) -> None:
    expected = rows * (rows - 1)
    if doubled_sum != expected:
        raise RuntimeError(f"{what}: sum(doubled) = {doubled_sum}, expected {expected}")



def spill_usage(spill_dir: Path) -> dict[str, int]:
    """Results of the node that went (at least partly) to disk, and their bytes."""
    queries = bytes_ = 0
    if spill_dir.is_dir():
        for query_dir in spill_dir.iterdir():
            if query_dir.is_dir():
                sizes = [f.stat().st_size for f in query_dir.rglob("*") if f.is_file()]
                if sizes:
                    queries += 1
                    bytes_ += sum(sizes)
    return {"spilled_results": queries, "spilled_bytes": bytes_}


def start_node(registry: Registry, tmp: Path, timeout: float) -> tuple[Managed, str]:
    work = tmp / "node-work"
    cmd = [
        str(Path(sys.executable).with_name("flightsql")), "serve",
        "--port", "0", "--work-dir", str(work), "--master", MASTER,
    ]
    for key, value in COMMON_CONF.items():
        cmd += ["--conf", f"{key}={value}"]
    env = dict(os.environ)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    node = registry.add(
        Managed("node", cmd, tmp / "node.log", env=env, cwd=tmp,
                ready=r"ready: Flight SQL at (grpc://127\.0\.0\.1:\d+)")
    )
    t0 = time.perf_counter()
    uri = node.wait_ready(timeout).group(1)
    log(f"  node ready at {uri} after {time.perf_counter() - t0:.1f}s")
    return node, uri


def start_spark_connect(registry: Registry, tmp: Path, timeout: float) -> tuple[Managed, str]:
    """Spark Connect server from the pip pyspark distribution (spark-connect_*.jar ships in its jars).

    bin/spark-submit goes through Spark's launcher, which turns spark.driver.memory into
    -Xmx and adds the JDK 17 --add-opens flags, exactly as for a regular Spark distribution.
    """
    home = pyspark_home()
    if not list((home / "jars").glob("spark-connect_*.jar")):
        raise RuntimeError(f"no spark-connect jar in {home / 'jars'}")
    port = free_port()
    cmd = [
        "bash", str(home / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name", "bench-spark-connect",
        "--master", MASTER,
    ]
    for key, value in COMMON_CONF.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", f"spark.sql.warehouse.dir={tmp / 'connect-warehouse'}",
        "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={tmp / 'connect-derby'}",
        "spark-internal",
    ]
    # Spark logs at WARN, as the node and the local session do (they call setLogLevel("WARN"));
    # only the server's own start-up line stays at INFO.
    conf_dir = tmp / "connect-conf"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "log4j2.properties").write_text(CONNECT_LOG4J2)
    env = dict(os.environ)
    env["SPARK_HOME"] = str(home)
    env["SPARK_CONF_DIR"] = str(conf_dir)
    for key in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS"):
        env.pop(key, None)
    server = registry.add(
        Managed("spark-connect", cmd, tmp / "spark-connect.log", env=env, cwd=tmp,
                ready=r"Spark Connect server started at:? *(\S+)")
    )
    t0 = time.perf_counter()
    server.wait_ready(timeout)
    log(f"  Spark Connect ready on 127.0.0.1:{port} after {time.perf_counter() - t0:.1f}s")
    return server, f"sc://127.0.0.1:{port}"


CONNECT_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.server.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.server.level = info
"""


def java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0].strip()
    except Exception as exc:
        return f"unknown ({exc})"


def machine_info() -> dict[str, Any]:
    import pyarrow
    import pyspark

    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "pyarrow": pyarrow.__version__,
        "java": java_version(),
    }
    try:
        import adbc_driver_flightsql

        info["adbc_driver_flightsql"] = adbc_driver_flightsql.__version__
    except Exception:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_kib"] = int(line.split()[1])
                break
    except OSError:
        pass
    return info



def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.2f} M"



def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den



# --------------------------------------------------------------------------- alternating rounds


class Side:
    """One side of a comparison: a client process that stays up and times what it is asked.

    It is started as ``python SCRIPT --side NAME ...`` and speaks JSON lines: a request
    ``{"do": ..., ...}`` on its stdin, the answer on its stdout (see :func:`serve_requests`).
    """

    def __init__(self, registry: Registry, tmp: Path, name: str, script: Path, *args: str) -> None:
        self.name = name
        env = dict(os.environ)
        for key in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS"):
            env.pop(key, None)
        self.managed = registry.add(Managed(
            f"side-{name}", [sys.executable, str(script), "--side", name, *args], tmp / f"side-{name}.log",
            env=env, cwd=tmp, stdin=subprocess.PIPE,
        ))

    def ask(self, timeout: float, **request: Any) -> dict[str, Any]:
        """Send one request and wait (bounded) for its answer; a side that fails or hangs
        ends the comparison with its log's tail."""
        stdin = self.managed.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        try:
            reply = json.loads(self.managed.answers.get(timeout=timeout))
        except queue.Empty:
            raise RuntimeError(
                f"{self.name} gave no answer to {request} within {timeout:.0f} s\n{self.managed.tail()}") from None
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply


def serve_requests(handlers: dict[str, Callable[..., dict[str, Any]]], stdin: IO[str] = sys.stdin) -> int:
    """The loop of a :class:`Side`'s process: one JSON request a line, one JSON answer a
    line (marked, among whatever else the libraries print)."""
    real_stdout = sys.stdout
    for line in stdin:
        request = json.loads(line)
        kind = request.pop("do")
        if kind == "quit":
            break
        try:
            answer = handlers[kind](**request)
        except Exception as exc:  # the orchestrator reports it and ends the comparison
            answer = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        real_stdout.write(ANSWER + json.dumps(answer) + "\n")
        real_stdout.flush()
    return 0


def alternating(sides: Sequence[Side], rounds: int, timeout: float, **request: Any) -> dict[str, list[dict[str, Any]]]:
    """Every side answers ``request`` once a round, the order rotating from round to round.

    A side that fails or does not answer within ``timeout`` ends the rounds: the rounds
    done so far are kept, and the cause is under ``"failed"``."""
    answers: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
    answers["failed"] = []
    for number in range(rounds):
        order = list(sides[number % len(sides):]) + list(sides[:number % len(sides)])
        timed: dict[str, dict[str, Any]] = {}
        try:
            for side in order:
                timed[side.name] = side.ask(timeout, **request)
                log(f"  round {number + 1}/{rounds} {side.name}: {timed[side.name].get('seconds', 0):.3f}s")
        except Exception as exc:  # noqa: BLE001 - a side that died ends the rounds, with the cause kept
            log(f"  round {number + 1} failed: {str(exc)[:300]}")
            answers["failed"].append({"round": number + 1, "error": str(exc)[:2000]})
            break
        for name, answer in timed.items():
            answers[name].append(answer)
    return answers


def round_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, float] | None:
    """Per-round ratios: their median and range (None without a round)."""
    values = [n / d for n, d in zip(numerators, denominators, strict=True) if d]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def write_results(name: str, report: dict[str, Any]) -> Path:
    """The report as ``bench/results/NAME-<timestamp>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {out}")
    return out
