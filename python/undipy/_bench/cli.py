"""``undipy bench``: a short side-by-side comparison against a built-in server.

Starts the built-in HTTP/1.1 server (native, in its own process) unless
``--url`` names another, then measures undipy's ``request()`` and
``dispatch()`` and every installed peer (aiohttp, httpx, pyreqwest; ``pip
install 'undipy[bench]'`` brings them) on small GETs and 1 MiB downloads,
then ``stream()`` against ``request()`` + ``async for`` and each peer's
chunk iterator on streamed 1 MiB downloads. Each measurement runs in a fresh
process, ``--runs`` times; the table shows the median and the spread. Prints
req/s, MiB/s and client CPU per request (user + sys, all threads).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
from typing import Any, TextIO

PEERS = ["aiohttp", "httpx", "pyreqwest"]
WORKLOADS = {
    "seq": "GET /small (13 B), 1 in flight: latency and per-request cost",
    "c64": "GET /small, 64 in flight on 64 connections: throughput",
    "big": "GET /1m (1 MiB, read whole), 8 in flight: bulk transfer",
    "s1m": "GET /1m streamed chunk by chunk into a sink, 8 in flight",
}
# What the ratio columns compare to, per workload.
BASELINE = {"s1m": "undipy-stream"}


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """The built-in server on a loopback port chosen by the kernel."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    code = "import sys; from undipy._undipy import serve_bench; serve_bench(int(sys.argv[1]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(sock.fileno())], pass_fds=[sock.fileno()]
    )
    sock.close()
    return proc, f"http://127.0.0.1:{port}"


def run_one(client: str, workload: str, url: str, loop: str, duration: float) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "undipy._bench.client", "--client", client, "--workload", workload,
        "--url", url, "--loop", loop, "--duration", str(duration), "--warmup", str(duration / 4),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + 2 * duration)
    try:
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"unavailable": (out.stderr.strip().splitlines() or ["no output"])[-1]}


# -- the results ----------------------------------------------------------------


def summarise(workload: str, client: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell: medians over the runs that measured something, and the
    spread (half the max-min range of req/s, in % of the median)."""
    good = [r for r in runs if r.get("requests")]
    cell: dict[str, Any] = {"workload": workload, "client": client, "runs": len(runs)}
    if not good:
        first = runs[0] if runs else {}
        cell["unavailable"] = first.get("unavailable") or first.get("first_error") or "no result"
        return cell
    rps = [r["requests"] / r["wall"] for r in good]
    mid = statistics.median(rps)
    cell.update(
        rps=mid,
        mibs=statistics.median(r["bytes"] / r["wall"] / 2**20 for r in good),
        cpu_us=statistics.median(r["cpu"] / r["requests"] * 1e6 for r in good),
        spread=(max(rps) - min(rps)) / 2 / mid * 100 if mid else 0.0,
        errors=sum(r.get("errors", 0) for r in good),
    )
    return cell


def table(cells: list[dict[str, Any]]) -> str:
    """The cells as aligned text, with ratios to each workload's baseline."""
    base = {
        c["workload"]: c
        for c in cells
        if c["client"] == BASELINE.get(c["workload"], "undipy-request") and "rps" in c
    }
    head = ["workload", "client", "req/s", "MiB/s", "CPU µs/req", "spread", "req/s ×", "CPU ×"]
    rows = [head]
    for c in cells:
        if "rps" not in c:
            rows.append([c["workload"], c["client"], f"unavailable: {c['unavailable']}"])
            continue
        b = base.get(c["workload"])
        ratios = (
            [f"{c['rps'] / b['rps']:.2f}x", f"{c['cpu_us'] / b['cpu_us']:.2f}x"]
            if b
            else ["n/a", "n/a"]
        )
        rows.append(
            [
                c["workload"],
                c["client"],
                f"{c['rps']:,.0f}",
                f"{c['mibs']:,.1f}",
                f"{c['cpu_us']:,.1f}",
                f"±{c['spread']:.0f}%",
                *ratios,
            ]
        )
    # Names size the first two columns; only measured rows size the numbers.
    widths = [max(len(r[i]) for r in rows if i < 2 or len(r) == len(head)) for i in range(8)]
    lines = []
    for r in rows:
        if len(r) != len(head):
            lines.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}")
            continue
        left = [f"{v:<{widths[i]}}" for i, v in enumerate(r[:2])]
        right = [f"{v:>{widths[i + 2]}}" for i, v in enumerate(r[2:])]
        lines.append("  ".join(left + right))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def bars(cells: list[dict[str, Any]], width: int = 40) -> str:
    """req/s per client as bars, one block per workload."""
    out = []
    for workload in dict.fromkeys(c["workload"] for c in cells):
        measured = [c for c in cells if c["workload"] == workload and "rps" in c]
        if not measured:
            continue
        top = max(c["rps"] for c in measured)
        out.append(f"{workload} (req/s)")
        name_w = max(len(c["client"]) for c in measured)
        for c in measured:
            n = round(c["rps"] / top * width * 8) if top else 0
            bar = "█" * (n // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[n % 8]
            out.append(f"  {c['client']:<{name_w}}  {bar} {c['rps']:,.0f}")
    return "\n".join(out)


def plot(cells: list[dict[str, Any]], path: str, title: str) -> None:
    """req/s and CPU per request side by side, one row per workload."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    workloads = [w for w in dict.fromkeys(c["workload"] for c in cells)]
    fig, axes = plt.subplots(
        len(workloads), 2, figsize=(10, 1.2 + 0.45 * len(cells)), squeeze=False
    )
    for row, workload in zip(axes, workloads, strict=True):
        measured = [c for c in cells if c["workload"] == workload and "rps" in c]
        names = [c["client"] for c in measured]
        for ax, key, label in ((row[0], "rps", "req/s"), (row[1], "cpu_us", "CPU µs/request")):
            values = [c[key] for c in measured]
            colours = ["#1f6feb" if n.startswith("undipy") else "#8b949e" for n in names]
            ax.barh(names, values, color=colours)
            ax.invert_yaxis()
            ax.set_title(f"{workload}: {label}", fontsize=9)
            ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)


# -- the command ----------------------------------------------------------------


class Progress:
    """One live line on a terminal; one plain line per step in a log."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()

    def step(self, text: str) -> None:
        if self.live:
            self.out.write("\r\033[K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.live:
            self.out.write("\r\033[K")
            self.out.flush()


def _workloads(value: str) -> list[str]:
    names = [w for w in value.split(",") if w]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {unknown[0] if unknown else value!r}: choose from "
            + ", ".join(WORKLOADS)
        )
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="undipy bench",
        description=__doc__.split("\n\n")[0],
        epilog="workloads:\n" + "\n".join(f"  {k:<5} {v}" for k, v in WORKLOADS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--url", help="measure against this server (paths /small and /1m)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per measurement [2]")
    ap.add_argument("--runs", type=int, default=3, help="measurements per cell (median) [3]")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument(
        "--workloads",
        type=_workloads,
        default=list(WORKLOADS),
        help="comma-separated, from: " + ", ".join(WORKLOADS) + " [all]",
    )
    ap.add_argument("--json", metavar="FILE", help="also write every run and cell as JSON")
    ap.add_argument("--plot", metavar="FILE.svg", help="also draw the results (needs matplotlib)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.duration <= 0:
        ap.error("--runs must be 1 or more and --duration positive")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        ap.error("uvloop is not installed (pip install uvloop)")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        ap.error("--plot needs matplotlib (pip install matplotlib)")

    if sys.platform == "win32":
        # Its clients measure CPU with getrusage; its server is handed a socket.
        print("undipy bench runs on Unix systems only.", file=sys.stderr)
        return 2
    peers = [p for p in PEERS if importlib.util.find_spec(p) is not None]
    if not peers:
        print(
            "No peer installed to compare with: pip install 'undipy[bench]' "
            "(aiohttp, httpx, pyreqwest). Measuring undipy alone.",
            file=sys.stderr,
        )
    clients = ["undipy-request", "undipy-dispatch", *peers]
    # Streaming: stream(), request() + async for, and each peer's chunk iterator.
    stream_clients = ["undipy-stream", "undipy-iter", *(f"{p}-iter" for p in peers)]
    jobs = [(w, c) for w in args.workloads for c in (stream_clients if w == "s1m" else clients)]
    server, url = (None, args.url) if args.url else start_server()
    progress = Progress(sys.stderr)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {job: [] for job in jobs}
    total = len(jobs) * args.runs
    try:
        step = 0
        for n in range(1, args.runs + 1):
            for workload, client in jobs:
                step += 1
                progress.step(f"[{step}/{total}] run {n} {workload:<4} {client}")
                r = run_one(client, workload, url, args.loop, args.duration)
                runs[(workload, client)].append(r)
        progress.done()
    finally:
        if server is not None:
            server.kill()
            server.wait()
    cells = [summarise(w, c, runs[(w, c)]) for w, c in jobs]
    title = f"undipy bench against {url} ({args.loop}, {args.runs} x {args.duration:g} s)"
    print(title)
    for w in args.workloads:
        print(f"  {w}: {WORKLOADS[w]}")
    print()
    print(table(cells))
    print()
    print(bars(cells))
    if args.json:
        with open(args.json, "w") as f:
            data = {"url": url, "loop": args.loop, "duration": args.duration, "cells": cells}
            data["runs"] = [
                {"workload": w, "client": c, **r} for (w, c), rs in runs.items() for r in rs
            ]
            json.dump(data, f, indent=1)
    if args.plot:
        plot(cells, args.plot, title)
    return 0
