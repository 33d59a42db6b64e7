"""The client for LeadProsper's public API: inside the account's budget, whatever it answers.

* A client-side limiter spaces requests to ``requests_per_minute`` (the account allows 100 a
  minute for everything the user runs; the source's ``[reconcile]`` table takes a share).
* 429: wait what ``Retry-After`` says (bounded), and resume; 5xx and connection errors: retry
  with backoff, a few times; then :class:`~hookpipe_ops.leadprosper.ApiError`.
* Every request made is counted (the report's "requests used").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from hookpipe.errors import error_class

from hookpipe_ops.leadprosper import ApiError, Page, Stats, api_time, parse_page, parse_stats

DEFAULT_API_URL = "https://api.leadprosper.io/public"
MAX_RETRY_AFTER_SECONDS = 120.0
TRANSIENT_TRIES = 4  # 5xx or no answer
MAX_THROTTLED = 10  # 429s in a row for one request
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass
class LeadProsperApi:
    base_url: str
    api_key: str
    requests_per_minute: int
    timezone: str = "UTC"
    session: requests.Session = field(default_factory=requests.Session)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    requests_made: int = 0
    _next_at: float = 0.0

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        backoff, failures, throttled = 1.0, 0, 0
        while True:
            wait = self._next_at - self.clock()
            if wait > 0:
                self.sleep(wait)
            self._next_at = self.clock() + 60.0 / self.requests_per_minute
            self.requests_made += 1
            try:
                response = self.session.get(
                    self.base_url.rstrip("/") + path,
                    params=params,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
            except requests.RequestException as exc:
                failure = error_class(exc)
            else:
                if response.status_code == 429:  # the budget: wait as told, then resume
                    throttled += 1
                    if throttled > MAX_THROTTLED:
                        raise ApiError(f"GET {path}: 429 Too Many Requests, {throttled} times")
                    self.sleep(_retry_after(response.headers.get("Retry-After")))
                    continue
                if response.status_code in (401, 403):
                    raise ApiError(
                        f"GET {path}: {response.status_code}: the API key was refused "
                        "(HOOKPIPE_LEADPROSPER_API_KEY)"
                    )
                if 400 <= response.status_code < 500:
                    raise ApiError(f"GET {path}: {response.status_code} {response.text[:200]}")
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise ApiError(f"GET {path}: the answer is not JSON") from None
                failure = str(response.status_code)
            failures += 1
            if failures >= TRANSIENT_TRIES:
                raise ApiError(f"GET {path}: {failure}, {failures} tries")
            self.sleep(backoff)
            backoff *= 2

    def _window(self, start: datetime, end: datetime, campaigns: tuple[str, ...]) -> dict[str, str]:
        params = {
            "start_date": api_time(start, self.timezone),
            "end_date": api_time(end, self.timezone),
            "timezone": self.timezone,
        }
        if campaigns:
            params["campaign"] = ",".join(campaigns)
        return params

    def stats(self, start: datetime, end: datetime, *, campaigns: tuple[str, ...] = ()) -> Stats:
        """``GET /stats`` for ``[start, end)``: one request."""
        return parse_stats(self._get("/stats", self._window(start, end, campaigns)))

    def leads(
        self, start: datetime, end: datetime, *, campaigns: tuple[str, ...] = (), max_pages: int
    ) -> Iterator[Page]:
        """Every page of ``GET /leads`` for ``[start, end)``, to the last one; a cursor seen
        before, or more than ``max_pages``, is an :class:`ApiError`, not a loop."""
        params = self._window(start, end, campaigns)
        seen: set[str] = set()
        for _ in range(max_pages):
            page = parse_page(self._get("/leads", params))
            yield page
            if page.cursor is None:
                return
            if page.cursor in seen:
                raise ApiError(f"GET /leads repeated its search_after cursor {page.cursor[:40]!r}")
            seen.add(page.cursor)
            params["search_after"] = page.cursor
        raise ApiError(f"GET /leads had more than {max_pages} pages (max_pages)")


def _retry_after(header: str | None) -> float:
    """``Retry-After`` in seconds (an HTTP date, or nonsense, waits one second), bounded."""
    try:
        seconds = float(header) if header is not None else 1.0
    except ValueError:
        seconds = 1.0
    if not math.isfinite(seconds):
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
