"""What the tokio→asyncio bridge costs per request, split by thread, for the
eventfd wake-up undipy uses and for `call_soon_threadsafe` (the usual design).

Runs undipy's ``request()`` (GET, 13-byte body) at concurrency 1, 10 and 100
under asyncio and uvloop against ``--url`` and reports req/s, CPU per request
on the loop thread and on the runtime thread, loop wake-ups (drains) per
request and events per drain. Each configuration runs in a fresh process.

    python benches/bridge_cost.py --url http://127.0.0.1:8080/small
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user+sys) per thread name of this process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def measure(url: str, conc: int, duration: float) -> dict[str, float]:
    import undipy
    from undipy._bridge import bridge_for

    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    pool = undipy.Pool(f"{scheme}://{host}", connections=conc)
    stop = False
    count = 0

    async def worker() -> None:
        nonlocal count
        while not stop:
            resp = await pool.request(path="/" + path, method="GET")
            await resp.body.bytes()
            count += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(conc)]
    await asyncio.sleep(0.5)
    bridge = bridge_for(asyncio.get_running_loop())
    c0, d0, e0, cpu0, t0 = count, bridge.drains, bridge.events, thread_cpu(), time.perf_counter()
    await asyncio.sleep(duration)
    c1, d1, e1, cpu1, t1 = count, bridge.drains, bridge.events, thread_cpu(), time.perf_counter()
    stop = True
    await asyncio.gather(*tasks)
    await pool.close()
    n = c1 - c0
    main = next(k for k in cpu1 if k not in ("undipy-io",))
    return {
        "req_s": n / (t1 - t0),
        "loop_us": (cpu1[main] - cpu0[main]) / n * 1e6,
        "io_us": (cpu1.get("undipy-io", 0) - cpu0.get("undipy-io", 0)) / n * 1e6,
        "drains_per_req": (d1 - d0) / n,
        "events_per_drain": (e1 - e0) / max(1, d1 - d0),
    }


def child(args: argparse.Namespace) -> None:
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    print(json.dumps(asyncio.run(measure(args.url, args.conc, args.duration))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--conc", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    print(
        "| wake | loop | concurrency | req/s | loop thread µs/req | io thread µs/req "
        "| wake-ups/req | events/wake-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    configs = [
        (w, lp, c)
        for w in ("eventfd", "threadsafe")
        for lp in ("asyncio", "uvloop")
        for c in (1, 10, 100)
    ]
    for wake, loop, conc in configs:
        cmd = [
            sys.executable, __file__, "--child", "--url", args.url, "--conc", str(conc),
            "--loop", loop, "--duration", str(args.duration),
        ]  # fmt: skip
        env = {**os.environ, "UNDIPY_WAKE": wake}
        r = json.loads(subprocess.check_output(cmd, env=env))
        print(
            f"| {wake} | {loop} | {conc} | {r['req_s']:.0f} | {r['loop_us']:.1f} "
            f"| {r['io_us']:.1f} | {r['drains_per_req']:.2f} | {r['events_per_drain']:.1f} |"
        )


if __name__ == "__main__":
    main()
