"""Charts of benches/run.py results: one SVG per results file and workload, with req/s
and CPU µs per request for each client and event loop (medians over the runs), as
horizontal bars; MiB/s and CPU µs per MiB for the workloads measured in bytes, as
run.py's tables.

    python benches/plot.py benches/results/*.json --out docs/img

Needs matplotlib. A file ``NAME.json`` gives ``NAME-WORKLOAD.svg``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
matplotlib.rcParams["svg.hashsalt"] = "undipy"  # stable ids: same results, same SVG
import matplotlib.pyplot as plt  # noqa: E402

UNDIPY_COLOR = "#2b6cb0"
PEER_COLOR = "#a0aec0"


MIB = 1 << 20


# The workloads run.py reports in MiB (its BYTE_WORKLOADS): large bodies and streams.
BYTE_WORKLOADS = ("big", "hbig", "s1m", "s100m", "s1g")


def by_bytes(workload: str) -> bool:
    return workload in BYTE_WORKLOADS


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
    """workload -> (client, loop) -> (rate, CPU µs per unit), medians over the runs."""
    cells: dict[str, dict[tuple[str, str], list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        if not run.get("requests") or run.get("failed"):
            continue  # a run that failed has no rate to show
        units = run["bytes"] / MIB if by_bytes(run["workload"]) else run["requests"]
        rate = units / run["wall"]
        cpu_us = run["cpu"] / units * 1e6
        cells[run["workload"]][(run["client"], run["loop"])].append((rate, cpu_us))
    return {
        workload: {
            key: (
                statistics.median(r for r, _ in values),
                statistics.median(c for _, c in values),
            )
            for key, values in by_client.items()
        }
        for workload, by_client in cells.items()
    }


def plot_workload(
    workload: str,
    cells: dict[tuple[str, str], tuple[float, float]],
    title: str,
    path: Path,
) -> None:
    # Clients in a stable order, grouped by event loop, best throughput first.
    keys = sorted(cells, key=lambda k: (k[1], -cells[k][0]))
    labels = [f"{client} ({loop})" for client, loop in keys]
    colors = [UNDIPY_COLOR if client.startswith("undipy") else PEER_COLOR for client, _ in keys]
    unit = "MiB" if by_bytes(workload) else "request"
    height = 1.0 + 0.32 * len(keys)
    fig, (ax_rate, ax_cpu) = plt.subplots(1, 2, figsize=(11, height), sharey=True)
    ypos = list(range(len(keys)))
    for ax, index, xlabel, fmt in (
        (ax_rate, 0, f"{unit}s per second (higher is better)", "{:,.0f}"),
        (ax_cpu, 1, f"CPU µs per {unit} (lower is better)", "{:,.1f}"),
    ):
        values = [cells[k][index] for k in keys]
        bars = ax.barh(ypos, values, color=colors)
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=3, fontsize=8)
        ax.set_xlabel(xlabel)
        if index == 1 and max(values) > 20 * min(values):
            # One client far slower than the rest (httpx at c64) would flatten
            # every other bar: CPU goes on a log scale then.
            ax.set_xscale("log")
            ax.set_xlim(min(values) / 2, max(values) * 4)
            ax.set_xlabel(xlabel + ", log scale")
        else:
            ax.set_xlim(0, max(values) * 1.25)
        ax.grid(axis="x", alpha=0.3)
    ax_rate.set_yticks(ypos, labels, fontsize=9)
    ax_rate.invert_yaxis()
    fig.suptitle(f"{title}: {workload}", fontsize=11)
    fig.tight_layout()
    # No timestamp in the file, so an unchanged result gives an unchanged SVG.
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def plot_file(results: Path, out: Path) -> list[Path]:
    data = json.loads(results.read_text(encoding="utf-8"))
    title = f"{results.stem} ({data.get('date', '')[:10]}, {data['machine']['nproc']} cores)"
    written = []
    for workload, cells in sorted(medians(data["runs"]).items()):
        path = out / f"{results.stem}-{workload}.svg"
        plot_workload(workload, cells, title, path)
        written.append(path)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="JSON from benches/run.py --json")
    ap.add_argument("--out", type=Path, default=Path("docs/img"), help="directory for SVGs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for results in args.results:
        for path in plot_file(results, args.out):
            print(path)


if __name__ == "__main__":
    main()
