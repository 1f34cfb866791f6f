"""Risk and policy's CPU per request, in-process: one gateway, four variants, alternated.

The gateway runs on PostgreSQL (a throwaway database) with the simulated upstream, as in the
tests (``tests/helpers.py``); the tenant's org has a rate limit (rpm, tpm and concurrency, all
far above what the benchmark sends, so nothing is refused). Each round sends N sequential
chat requests through each variant and reads the CPU time of the gateway's loop thread around
each batch:

- ``off``: ``ip_rules``, ``rate_limit`` and ``policy`` replaced by no-ops (the pipeline before
  risk and policy existed) — the baseline;
- ``policies``: the real steps with no limiter: the policy-epoch read, IP rules and the
  model policy, but no rate limit;
- ``memory``: plus the in-process limiter (a single gateway without Redis);
- ``redis``: plus the Redis limiter (``DEEPSPACE_TEST_REDIS_URL`` or redis://127.0.0.1:6379/15).

    .venv/bin/python bench/policy_cpu.py [--rounds 5] [--requests 300] [--stream]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics

import httpx
from _inprocess import Skip, cpu_ms_per_request, throwaway_gateway

from deepspace_lab.pipeline import Pipeline
from deepspace_lab.pipeline.registry import discover_steps
from deepspace_lab.policy.limiter import MemoryLimiter, RedisLimiter
from deepspace_lab.policy.service import set_policy

REDIS = os.environ.get("DEEPSPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    with throwaway_gateway("policy_cpu") as gw, httpx.Client(timeout=30) as client:
        services = gw.runtime.services

        async def limit() -> None:
            async with gw.runtime.sessions() as session:
                await set_policy(session, kind="rate_limit", scope="org", scope_id=gw.tenant.org_id, actor="bench",
                                 spec={"rpm": 10**9, "tpm": 10**9, "concurrency": 10**6})
                await session.commit()

        gw.loop.run(limit())
        real = gw.runtime.pipeline
        off = Pipeline(services, registry=dict(discover_steps(), ip_rules=Skip, rate_limit=Skip, policy=Skip))
        redis_limiter = RedisLimiter(REDIS, prefix=f"bench:{secrets.token_hex(4)}:")
        variants = {"off": (off, None), "policies": (real, None), "memory": (real, MemoryLimiter()),
                    "redis": (real, redis_limiter)}
        body = {"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 128, "stream": args.stream}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for rnd in range(args.rounds):
            for label, (pipeline, limiter) in variants.items():
                gw.runtime._pipeline = pipeline
                services.limiter = limiter
                cpu_ms_per_request(gw, client, body, 20)  # warm-up
                cpu[label].append(cpu_ms_per_request(gw, client, body, args.requests))
            print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in cpu.items())
                  + " ms of loop-thread CPU per request", flush=True)
        gw.loop.run(redis_limiter.close())
    base = statistics.median(cpu["off"])
    print(f"median per request: off {base:.2f} ms; " + "; ".join(
        f"{k} +{statistics.median(v) - base:.2f} ms ({statistics.median(v) / base:.2f}x)"
        for k, v in cpu.items() if k != "off") + f"; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
