"""The Prometheus counters' CPU per request, in-process: one gateway (throwaway PostgreSQL
database, simulated upstream), requests alternated with the counters off (the audit step
skips them: ``services.metrics = None``) and on, each going first in every other round. Reads the
gateway loop thread's CPU around each batch (``bench/_inprocess.py``), as ``bench/policy_cpu.py`` does.

    .venv/bin/python bench/admin/metrics_cpu.py [--rounds 5] [--requests 300] [--stream]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _inprocess import cpu_ms_per_request, throwaway_gateway


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    with throwaway_gateway("metrics_cpu") as gw, httpx.Client(timeout=30) as client:
        services = gw.runtime.services
        metrics = services.metrics
        body = {"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 128, "stream": args.stream}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        for rnd in range(args.rounds):
            for label in ("off", "on") if rnd % 2 == 0 else ("on", "off"):  # neither always goes first
                services.metrics = metrics if label == "on" else None
                cpu_ms_per_request(gw, client, body, 20)  # warm-up
                cpu[label].append(cpu_ms_per_request(gw, client, body, args.requests))
            print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in cpu.items())
                  + " ms of loop-thread CPU per request", flush=True)
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    paired = statistics.median(b - a for a, b in zip(cpu["off"], cpu["on"], strict=True))
    print(f"median per request: off {off:.3f} ms; on {on:.3f} ms ({on / off:.3f}x); median of the rounds' "
          f"differences {paired:+.3f} ms; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
