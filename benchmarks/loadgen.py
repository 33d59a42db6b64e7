"""A small keep-alive HTTP/1.1 load generator on asyncio streams, and the LeadProsper body the
benchmarks send.

httpx costs more CPU per request than the services it would measure on a 2-core machine; this
sends pre-built requests over N persistent connections and times each response.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run_load(
    host: str, port: int, requests: Callable[[int], bytes], total: int, concurrency: int
) -> LoadResult:
    """Send ``total`` requests (``requests(i)`` builds the i-th) over ``concurrency`` connections."""
    result = LoadResult(seconds=0.0)
    counter = iter(range(total))

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                started = time.perf_counter()
                writer.write(requests(i))
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def rss_mb(pids: Sequence[int]) -> float:
    """Resident memory of these processes and all their descendants, in MB (pages shared
    between them, e.g. gunicorn's master and its forked worker, count once per process)."""
    return _memory_mb(pids, "status", "VmRSS:")


def pss_mb(pids: Sequence[int]) -> float:
    """Proportional set size of the same processes, in MB: each shared page divided among the
    processes sharing it, so the sum is what they hold together."""
    return _memory_mb(pids, "smaps_rollup", "Pss:")


def _memory_mb(pids: Sequence[int], proc_file: str, field: str) -> float:
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = task / "children"
            if children.exists():
                todo += [int(c) for c in children.read_text().split()]
    total = 0
    for pid in seen:
        try:
            for line in Path(f"/proc/{pid}/{proc_file}").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def cores() -> int:
    return os.cpu_count() or 1


def lead_body(i: int) -> bytes:
    """A ~1.5 KB LeadProsper Campaign Trigger body, unique per i."""
    body = {
        "lp_lead_id": f"LP-{i:08d}",
        "lp_request_uuid": f"00000000-0000-4000-8000-{i:012d}",
        "lp_status": "ACCEPTED",
        "lp_campaign_id": "2024",
        "lp_supplier_id": "77",
        "lp_buyer_id": "31",
        "lp_lead_date_utc": "2026-11-26 09:00:00",
        "lp_timestamp": "1795683600",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"ada{i}@example.com",
        "phone": "+15555550123",
        "zip": "94105",
        "address": "1 Analytical Engine Way",
        "city": "San Francisco",
        "state": "CA",
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "landing_page": "https://example.com/quote?utm_source=lp&utm_campaign=winter",
        "jornaya_leadid": "A1B2C3D4-E5F6-7890-ABCD-EF1234567890",
        "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef0123456789abcdef",
    }
    text = json.dumps(body)
    return (text[:-1] + ', "notes": "' + "x" * max(0, 1500 - len(text) - 13) + '"}').encode()
