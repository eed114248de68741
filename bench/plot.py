"""Draw the benchmark figures from result files into one picture for the docs.

    .venv/bin/python bench/plot.py bench/results/throughput-*.json bench/results/cluster-*.json \
        --output docs/benchmarks.png

Each throughput file is one run of ``bench/throughput.py`` and each cluster file one run of
``bench/cluster.py``; every bar is a median over that run's timed rounds (every side up,
rounds alternating), with a line from its slowest to its fastest round. Needs the ``bench`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

SYSTEMS = (  # the sides of bench/throughput.py
    ("node", "this node (ADBC)", "#1f77b4"),
    ("inproc", "in-process toArrow()", "#7f7f7f"),
    ("connect", "Spark Connect toArrow()", "#d62728"),
)
M = 1e6


def _load(paths: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    throughput, cluster = [], []
    for path in paths:
        report = json.loads(path.read_text())
        kind = report.get("benchmark")
        if kind not in ("throughput", "cluster"):
            raise SystemExit(f"{path}: not a result of bench/throughput.py or bench/cluster.py")
        runs = throughput if kind == "throughput" else cluster
        report["_name"] = str(len(runs) + 1)
        runs.append(report)
    return throughput, cluster


def _spread(rows: int, seconds: dict[str, float]) -> tuple[float, float, float]:
    """Median rows/s, and how far below and above it the slowest and fastest runs were."""
    median = rows / seconds["median"]
    return median, median - rows / seconds["max"], rows / seconds["min"] - median


def _bars(ax: Any, groups: list[str], series: list[tuple[str, str, list[tuple[float, float, float] | None]]]) -> None:
    width = 0.8 / max(len(series), 1)
    for index, (label, color, values) in enumerate(series):
        xs, heights, low, high = [], [], [], []
        for group, value in enumerate(values):
            if value is None:
                continue
            xs.append(group + (index - (len(series) - 1) / 2) * width)
            heights.append(value[0])
            low.append(value[1])
            high.append(value[2])
        ax.bar(xs, heights, width, label=label, color=color, yerr=[low, high], capsize=3)
        for x, h in zip(xs, heights):
            ax.annotate(f"{h:.2f}", (x, h), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_xticks(range(len(groups)), groups)


def plot_throughput(ax: Any, reports: list[dict[str, Any]]) -> None:
    series = []
    for key, label, color in SYSTEMS:
        values = []
        for report in reports:
            rounds = report["seconds"].get(key)
            seconds = {"median": statistics.median(rounds), "min": min(rounds), "max": max(rounds)} if rounds else None
            values.append(None if seconds is None else tuple(v / M for v in _spread(report["rows"], seconds)))
        series.append((label, color, values))
    _bars(ax, [f"run {r['_name']}" for r in reports], series)  # type: ignore[arg-type]
    rows = reports[0]["rows"] / M if reports else 0
    ax.set_title(f"Throughput, {rows:.0f} M rows x 3 columns, 4 GB driver", fontsize=9)
    ax.set_ylabel("M rows/s (higher is better)")
    ax.legend(fontsize=7, loc="lower right")


def plot_latency(ax: Any, reports: list[dict[str, Any]]) -> None:
    series = []
    for key, label, color in (("node", "this node (ADBC)", "#1f77b4"), ("connect", "Spark Connect", "#d62728")):
        values = []
        for report in reports:
            rounds = [p * 1e3 for p in report.get("select1_p50_seconds", {}).get(key, [])]
            median = statistics.median(rounds) if rounds else 0.0
            values.append((median, median - min(rounds), max(rounds) - median) if rounds else None)
        series.append((label, color, values))
    _bars(ax, [f"run {r['_name']}" for r in reports], series)  # type: ignore[arg-type]
    ax.set_title("SELECT 1: median of the rounds' p50 (line: their range)", fontsize=9)
    ax.set_ylabel("ms (lower is better)")
    ax.legend(fontsize=7, loc="lower right")


def plot_nodes(ax: Any, reports: list[dict[str, Any]]) -> None:
    palette = ("#1f77b4", "#aec7e8", "#17becf")
    counts = sorted({n for r in reports for n in (r.get("scale") or {})}, key=int)
    series = []
    for index, report in enumerate(reports):
        scale = report.get("scale") or {}
        values = [tuple(v / M for v in _spread(report["rows"], scale[n]["seconds"])) if n in scale else None
                  for n in counts]
        series.append((f"run {report['_name']}", palette[index % len(palette)], values))
    _bars(ax, [f"{n} node{'s' if n != '1' else ''}" for n in counts], series)  # type: ignore[arg-type]
    ax.set_title("One result over 1, 2, 3 nodes (all on the same 2 cores)", fontsize=9)
    ax.set_ylabel("M rows/s")
    if series:
        ax.legend(fontsize=7, loc="lower right")


def plot_big(ax: Any, reports: list[dict[str, Any]]) -> None:
    labels, heights, notes = [], [], []
    for report in reports:
        node, connect = report.get("big_node") or {}, report.get("big_connect") or {}
        if not node:
            continue
        labels.append(f"node\nrun {report['_name']}")
        heights.append((node.get("rows_per_second") or 0) / M)
        notes.append(f"{node.get('rows', 0) / M:.0f} M rows, checked")
        if connect:
            labels.append(f"Spark Connect\nrun {report['_name']}")
            heights.append((connect.get("rows_per_second") or 0) / M)
            died = "heap" in str((connect.get("server_log") or {}).get("out_of_memory", ""))
            failure = "failed: server out of heap" if died else f"failed: {connect.get('outcome', '')[:30]}"
            notes.append("complete" if connect.get("rows_per_second") else failure)
    colors = ["#d62728" if "Connect" in label else "#1f77b4" for label in labels]
    ax.bar(range(len(labels)), heights, 0.6, color=colors)
    for x, (h, note) in enumerate(zip(heights, notes)):
        ax.annotate(f"{h:.2f}\n{note}" if h else note, (x, h), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    big = next((r for r in reports if r.get("big_node")), None)
    size = (big["big_node"].get("arrow_bytes", 0) / 1e9) if big else 0
    ax.set_title(f"A result of {size:.1f} GB with a 1 GB driver heap", fontsize=9)
    ax.set_ylabel("M rows/s")
    ax.set_ylim(0, max(heights + [1]) * 1.35)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="result files of bench/throughput.py and bench/cluster.py")
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.png"), help="picture to write")
    args = parser.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench/plot.py needs matplotlib: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    throughput, cluster = _load(args.results)
    rows = 2 if cluster else 1
    figure, axes = plt.subplots(rows, 2, figsize=(11, 3.75 * rows), squeeze=False)
    plot_throughput(axes[0][0], throughput)
    plot_latency(axes[0][1], throughput)
    if cluster:
        plot_nodes(axes[1][0], cluster)
        plot_big(axes[1][1], cluster)
    machine = (throughput or cluster)[0]["machine"]
    figure.suptitle(f"Medians on a {machine.get('nproc')}-core machine, PySpark {machine.get('pyspark')}, "
                    f"pyarrow {machine.get('pyarrow')}", fontsize=10)
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
