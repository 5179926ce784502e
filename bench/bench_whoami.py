"""What the 5 s whoami cache costs (issue 6 item 17): a real Synapse, the real app, interleaved runs.

A token is trusted for ``whoami_cache_seconds`` after Synapse vouched for it; the issue brought that
from 30 s to 5 s so a logged-out token stops working within 5 s. The cost is one whoami round trip
to Synapse per token every 5 s instead of every 30 s. This measures that round trip where it is paid:
``GET /api/v1/me`` through the real app in-process, against a real Synapse started like ``azurezo up``,

- **hit**: the token is in the cache (every request but one per window),
- **miss**: ``whoami_cache_seconds=0``, every request asks Synapse,

interleaved request by request (this machine is noisy), then prints the extra cost per request for a
client sending r requests per second: ``(miss - hit) / max(1, ttl * r)`` at 5 s and at the old 30 s.

    .venv/bin/python bench/bench_whoami.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordination.app import create_app
from tests.support.service import running_app
from tests.support.stack import start_stack


async def measure(
    stack_settings_url: str, token: str, settings: object, requests: int
) -> tuple[list[float], list[float]]:
    hit_app = create_app(settings.model_copy(update={"whoami_cache_seconds": 5.0}))  # type: ignore[attr-defined]
    miss_app = create_app(settings.model_copy(update={"whoami_cache_seconds": 0.0}))  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}"}
    hits: list[float] = []
    misses: list[float] = []
    async with running_app(hit_app) as hit, running_app(miss_app) as miss:
        for client in (hit, miss):  # warm up (and fill the hit app's cache)
            for _ in range(10):
                assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
        for _ in range(requests):
            for client, samples in ((hit, hits), (miss, misses)):
                start = time.perf_counter()
                resp = await client.get("/api/v1/me", headers=headers)
                samples.append((time.perf_counter() - start) * 1000)
                assert resp.status_code == 200, resp.text
    return hits, misses


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-whoami-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            user_id, password = asyncio.run(stack.create_account(stack.people[0].national_id, "bench"))
            token = asyncio.run(stack.login(user_id, password))
            hits, misses = asyncio.run(
                measure(stack.synapse_url, token, stack.home.service_settings(), args.requests)
            )
        finally:
            stack.stop()
    p50_hit, p50_miss = statistics.median(hits), statistics.median(misses)
    p95 = lambda xs: statistics.quantiles(xs, n=20)[18]  # noqa: E731
    print(f"GET /api/v1/me, {args.requests} interleaved requests each, load average {os.getloadavg()[0]:.2f}")
    print(f"  cache hit  : p50 {p50_hit:6.2f} ms   p95 {p95(hits):6.2f} ms")
    print(f"  cache miss : p50 {p50_miss:6.2f} ms   p95 {p95(misses):6.2f} ms   (one whoami to Synapse)")
    cost = p50_miss - p50_hit
    print(f"  whoami round trip (miss - hit, p50): {cost:.2f} ms")
    print("  extra cost per request, averaged, for a client sending r requests/s:")
    for rate in (0.1, 1.0, 10.0):
        at5 = cost / max(1.0, 5.0 * rate)
        at30 = cost / max(1.0, 30.0 * rate)
        print(f"    r = {rate:>4}/s : {at5:6.3f} ms with the 5 s cache   ({at30:6.3f} ms with 30 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
