"""A light HTTP/1.1 load generator: one thread, asyncio streams, keep-alive connections.

A Python thread pool on the same two cores as the server spends a good share of a core on
requests' own bookkeeping and fights the server for the GIL-free time slices; this client
pre-encodes every request, keeps one connection per simulated caller (closed loop: a caller sends
its next request when the previous answer is read) and does nothing else, so what it costs is
small and is measured (the CPU seconds of its own thread, reported with every run).

    python -m benchmarks.loadgen http://127.0.0.1:8080/ --concurrency 16 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testing.paths import ROOT

OFFICIAL_TEST = ROOT / "data" / "constraint-covid19-fakenews" / "english_test_with_labels.csv"


def official_test_posts(path: Path = OFFICIAL_TEST) -> list[str]:
    """The official CONSTRAINT test posts, in file order (the serving benches send one each)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["tweet"] for row in csv.DictReader(handle) if row["tweet"].strip()]


def post_request(url: str, body: bytes) -> bytes:
    """The exact bytes of a keep-alive JSON POST of ``body`` to ``url``."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nConnection: keep-alive\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    wall_s: float
    client_cpu_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        ms = sorted(self.latencies_ms)
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": ok,
            "errors": self.requests - ok,
            "error_kinds": sorted(set(self.errors))[:5],
            "throughput_rps": round(ok / self.wall_s, 1) if self.wall_s else None,
            "p50_ms": round(percentile(ms, 0.50), 3) if ms else None,
            "p90_ms": round(percentile(ms, 0.90), 3) if ms else None,
            "p99_ms": round(percentile(ms, 0.99), 3) if ms else None,
            "mean_ms": round(statistics.fmean(ms), 3) if ms else None,
            "client_cpu_s": round(self.client_cpu_s, 3),
            "client_cpu_per_request_us": round(1e6 * self.client_cpu_s / max(self.requests, 1)),
            "client_core_share": round(self.client_cpu_s / self.wall_s, 3) if self.wall_s else None,
        }


def percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Status, whether the server keeps the connection, and the body (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value.strip().lower() != "close"
        elif name == "transfer-encoding":
            raise ValueError("chunked responses are not supported")
    return status, keep, await reader.readexactly(length)


async def _caller(
    host: str, port: int, requests: Sequence[bytes], issued: list[int], result: LoadResult
) -> None:
    reader = writer = None
    while issued[0] < result.requests:
        index = issued[0]
        issued[0] += 1
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(requests[index % len(requests)])
            status, keep, _ = await _read_response(reader)  # type: ignore[arg-type]
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            result.errors.append(type(exc).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 200:
            result.latencies_ms.append(elapsed_ms)
        if not keep:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _load(url: str, requests: Sequence[bytes], result: LoadResult) -> None:
    parts = urlsplit(url)
    issued = [0]
    callers = [
        _caller(parts.hostname or "127.0.0.1", parts.port or 80, requests, issued, result)
        for _ in range(result.concurrency)
    ]
    await asyncio.gather(*callers)


def run_load(url: str, bodies: Sequence[bytes], concurrency: int, total: int) -> LoadResult:
    """Send ``total`` POSTs (bodies in turn) over ``concurrency`` keep-alive connections."""
    requests = [post_request(url, body) for body in bodies]
    result = LoadResult(concurrency=concurrency, requests=total, wall_s=0.0, client_cpu_s=0.0)
    cpu, wall = time.thread_time(), time.perf_counter()
    asyncio.run(_load(url, requests, result))
    result.wall_s = time.perf_counter() - wall
    result.client_cpu_s = time.thread_time() - cpu
    return result


def text_bodies(texts: Sequence[str]) -> list[bytes]:
    return [json.dumps({"text": text}).encode("utf-8") for text in texts]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=0, help="total requests (0: --seconds)")
    parser.add_argument("--seconds", type=float, default=10.0, help="about how long to run")
    args = parser.parse_args(argv)
    bodies = text_bodies(official_test_posts())
    total = args.requests
    if not total:  # size the run from a short probe of the server's pace
        probe = run_load(args.url, bodies, args.concurrency, 8 * args.concurrency)
        total = max(args.concurrency, int(args.seconds * probe.requests / probe.wall_s))
    print(json.dumps(run_load(args.url, bodies, args.concurrency, total).summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
