"""How well the sandbox overlaps slow requests: 256 concurrent chat calls at 200 ms model latency.

The physical floor is one latency (0.2 s); the ratio wall / floor shows the server's overhead.
Run: ``python benchmarks/sandbox_concurrency.py [--requests 256] [--latency-ms 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp

from llmops_tui.sandbox import start_sandbox


async def fire(url: str, requests: int) -> list[tuple[float, list[int]]]:
    """Two rounds on one keep-alive session: cold (opens the connections) and warm (reuses them).

    aiohttp rather than httpx: httpx's async pool costs several ms per new connection on its own,
    which measured the client (about 2 s for 256) instead of the server.
    """
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        bodies = [
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": f"what is {i} plus 1"}],
                "temperature": 0,
            }
            for i in range(requests)
        ]

        async def one(body: dict) -> int:
            async with session.post("/v1/chat/completions", json=body) as response:
                await response.read()
                return response.status

        rounds = []
        for _ in range(2):
            start = time.perf_counter()
            statuses = await asyncio.gather(*(one(b) for b in bodies))
            rounds.append((time.perf_counter() - start, list(statuses)))
        return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    with start_sandbox(latency_ms=args.latency_ms) as sandbox:
        rounds = asyncio.run(fire(sandbox.url, args.requests))
        stats = sandbox.stats()
    floor = args.latency_ms / 1000.0
    print(f"requests      {args.requests} concurrent x 2 rounds, max in flight {stats['max_in_flight']}")
    print(f"floor         {floor:.3f} s (one model latency)")
    for name, (wall, statuses) in zip(("cold", "warm"), rounds, strict=True):
        ok = sum(1 for s in statuses if s == 200)
        print(f"{name:<13} {wall:.3f} s wall, {wall / floor:.2f}x the floor ({ok} ok)")


if __name__ == "__main__":
    main()
