"""``undipy bench``: a short side-by-side comparison against a built-in server.

Starts the built-in HTTP/1.1 server (native, in its own process) unless
``--url`` names another, then measures undipy's ``request()`` and
``dispatch()`` and every installed peer (aiohttp, httpx, pyreqwest) on small
GETs and 1 MiB downloads, then ``stream()`` against ``request()`` + ``async
for`` and each peer's chunk iterator on streamed 1 MiB downloads; each client
in a fresh process. Prints req/s, MiB/s and client CPU per request (user +
sys, all threads).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
from typing import Any

PEERS = ["aiohttp", "httpx", "pyreqwest"]
WORKLOADS = {
    "seq": "GET /small, 1 in flight",
    "c64": "GET /small, 64 in flight",
    "big": "GET /1m, 8 in flight",
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


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| workload | client | req/s | MiB/s | CPU µs/req | req/s vs undipy | CPU vs undipy |"]
    rows.append("|---|---|---:|---:|---:|---:|---:|")
    base: dict[str, dict[str, Any]] = {
        r["workload"]: r
        for r in results
        if r["client"] == BASELINE.get(r["workload"], "undipy-request") and "requests" in r
    }
    for r in results:
        name = f"| {r['workload']} | {r['client']} |"
        if "requests" not in r or not r["requests"]:
            rows.append(f"{name} unavailable: {r.get('unavailable') or r.get('first_error')} ||||")
            continue
        rps = r["requests"] / r["wall"]
        mibs = r["bytes"] / r["wall"] / 2**20
        cpu = r["cpu"] / r["requests"] * 1e6
        b = base.get(r["workload"])
        if b:
            brps, bcpu = b["requests"] / b["wall"], b["cpu"] / b["requests"] * 1e6
            ratio = f"{rps / brps:.2f}x | {cpu / bcpu:.2f}x"
        else:
            ratio = "n/a | n/a"
        rows.append(f"{name} {rps:,.0f} | {mibs:,.1f} | {cpu:,.1f} | {ratio} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="undipy bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="measure against this server (paths /small and /1m)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    args = ap.parse_args(argv)

    peers = [p for p in PEERS if importlib.util.find_spec(p) is not None]
    clients = ["undipy-request", "undipy-dispatch", *peers]
    # Streaming: stream(), request() + async for, and each peer's chunk iterator.
    stream_clients = ["undipy-stream", "undipy-iter", *(f"{p}-iter" for p in peers)]
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        ap.error("uvloop is not installed")
    server = None
    url = args.url
    if url is None:
        server, url = start_server()
    workloads = [w for w in args.workloads.split(",") if w]
    jobs = [(w, c) for w in workloads for c in (stream_clients if w == "s1m" else clients)]
    results = []
    try:
        for i, (workload, client) in enumerate(jobs, 1):
            print(f"\r[{i}/{len(jobs)}] {workload:<4} {client:<16}", end="", file=sys.stderr)
            sys.stderr.flush()
            r = run_one(client, workload, url, args.loop, args.duration)
            results.append({"client": client, "workload": workload, **r})
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    finally:
        if server is not None:
            server.kill()
            server.wait()
    print(f"undipy bench against {url} ({args.loop}, {args.duration:g} s each)")
    for w in workloads:
        print(f"  {w}: {WORKLOADS.get(w, w)}")
    print(table(results))
    return 0
