"""Billing's CPU per request, in-process: one gateway, two pipelines, alternated.

The gateway runs on PostgreSQL (a throwaway database) with the simulated upstream, exactly as
in the tests (``tests/helpers.py``). Each round sends N sequential chat requests through the
real pipeline and N through the same pipeline with a no-op in place of ``budget_hold`` and
``usage_capture``, and reads the CPU time of the gateway's loop thread around each batch. The
difference of the medians is what billing costs per request; the rounds show the spread.

    .venv/bin/python bench/billing_cpu.py [--rounds 5] [--requests 300] [--stream]
"""

from __future__ import annotations

import argparse
import os
import statistics

import httpx
from _inprocess import Skip, cpu_ms_per_request, throwaway_gateway

from deepspace_lab.pipeline import Pipeline
from deepspace_lab.pipeline.registry import discover_steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    with throwaway_gateway("billing_cpu") as gw, httpx.Client(timeout=30) as client:
        pipelines = {"billed": gw.runtime.pipeline, "unbilled": Pipeline(
            gw.runtime.services, registry=dict(discover_steps(), budget_hold=Skip, usage_capture=Skip))}
        body = {"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 128, "stream": args.stream}
        cpu: dict[str, list[float]] = {k: [] for k in pipelines}
        for rnd in range(args.rounds):
            for label, pipeline in pipelines.items():
                gw.runtime._pipeline = pipeline
                cpu_ms_per_request(gw, client, body, 20)  # warm-up
                cpu[label].append(cpu_ms_per_request(gw, client, body, args.requests))
            print(f"round {rnd + 1}: billed {cpu['billed'][-1]:.2f} ms, unbilled {cpu['unbilled'][-1]:.2f} ms "
                  f"of loop-thread CPU per request", flush=True)
    deltas = [b - u for b, u in zip(cpu["billed"], cpu["unbilled"], strict=True)]
    print(f"billing adds {statistics.median(cpu['billed']) - statistics.median(cpu['unbilled']):.2f} ms "
          f"(median); per round {', '.join(f'{d:.2f}' for d in deltas)}; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
