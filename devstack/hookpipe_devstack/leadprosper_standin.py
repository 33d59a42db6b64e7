"""A stand-in for LeadProsper's public API, for `make run` and the tests.

**This is a stand-in for a third-party API, not for one of hookpipe's own components**: LeadProsper
cannot run here. It serves the three endpoints `hookpipe reconcile` reads, in the shapes and with
the limits LeadProsper documents (support articles 258 and 59; what we could not check is listed in
docs/reconcile.md, "Assumptions"), from a data set the tests or an operator put in:

* ``GET /public/leads?start_date&end_date[&campaign][&search_after]``: ``{"leads": [...],
  "search_after": "<cursor>"}``, 100 leads a page ordered by ``lead_date_ms`` then ``id``, no
  cursor on the last page;
* ``GET /public/lead/{id}``: one lead;
* ``GET /public/stats?start_date&end_date[&campaign]``: per campaign ``leads_total``,
  ``leads_accepted``, ``leads_duplicated``, ``leads_failed``; per supplier the same and
  ``leads_returned`` (campaigns have no returned count);
* ``Authorization: Bearer <key>`` required (401 otherwise); **100 requests a minute** for the
  whole account, answered 429 with ``Retry-After`` beyond that.

Its own endpoints, not counted against the limit: ``PUT /_standin/leads`` (the data set, a JSON
list of leads), ``GET /_standin/requests`` (requests served, the most in any 60 s, and those
refused 429), ``PUT /_standin/faults`` (``{"status": 503, "times": 2}``, optionally with a
``"path"``; ``{"malformed": 1}``, ``{"repeat_cursor": 1}`` for the leads, ``{"malformed_stats":
1}`` for the stats: the next answers fail so).

Dates: ``start_date``/``end_date`` as ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS``, in UTC.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE_SIZE = 100
REQUESTS_PER_MINUTE = 100


class StandIn:
    """The data set, the rate limit and the counters, shared by the server's threads."""

    def __init__(self, api_key: str, per_minute: int = REQUESTS_PER_MINUTE) -> None:
        self.api_key = api_key
        self.per_minute = per_minute
        self.leads: list[dict[str, Any]] = []
        self.served: collections.deque[float] = collections.deque()
        self.total = 0
        self.most_in_a_minute = 0
        self.refused = 0
        self.faults: dict[str, Any] = {}
        self.lock = threading.Lock()

    def admit(self, now: float) -> float | None:
        """None when this request may be served, else the seconds until one may."""
        with self.lock:
            while self.served and self.served[0] <= now - 60:
                self.served.popleft()
            if len(self.served) >= self.per_minute:
                self.refused += 1
                return self.served[0] + 60 - now
            self.served.append(now)
            self.total += 1
            self.most_in_a_minute = max(self.most_in_a_minute, len(self.served))
            return None

    def fault(self, path: str) -> dict[str, Any]:
        """The next injected fault for ``path``, if any (each counts down its ``times``): a
        ``status`` for any endpoint (or its ``path``), ``malformed`` and ``repeat_cursor`` for
        the leads, ``malformed_stats`` for the stats."""
        with self.lock:
            fault = dict(self.faults)
            applies = {
                "/public/leads": not fault.get("malformed_stats"),
                "/public/stats": not (fault.get("malformed") or fault.get("repeat_cursor")),
            }.get(path, "status" in fault)
            if not fault or not applies or fault.get("path", path) != path:
                return {}
            self.faults["times"] = int(self.faults.get("times", 1)) - 1
            if self.faults["times"] <= 0:
                self.faults = {}
            return fault

    def page(self, query: dict[str, str]) -> dict[str, Any]:
        start, end = _date(query.get("start_date")), _date(query.get("end_date"), end=True)
        campaigns = {c for c in query.get("campaign", "").split(",") if c}
        selected = [
            lead
            for lead in self.leads
            if start <= lead["lead_date_ms"] < end
            and (not campaigns or str(lead["campaign_id"]) in campaigns)
        ]
        selected.sort(key=lambda lead: (lead["lead_date_ms"], lead["id"]))
        after = query.get("search_after")
        if after:
            position = json.loads(base64.urlsafe_b64decode(after.encode()))
            selected = [le for le in selected if [le["lead_date_ms"], le["id"]] > position]
        page = selected[:PAGE_SIZE]
        document: dict[str, Any] = {"leads": page}
        if len(selected) > PAGE_SIZE:
            last = [page[-1]["lead_date_ms"], page[-1]["id"]]
            document["search_after"] = base64.urlsafe_b64encode(json.dumps(last).encode()).decode()
        return document

    def stats(self, query: dict[str, str]) -> dict[str, Any]:
        start, end = _date(query.get("start_date")), _date(query.get("end_date"), end=True)
        campaigns = {c for c in query.get("campaign", "").split(",") if c}
        by_campaign: dict[str, dict[str, Any]] = {}
        by_supplier: dict[str, dict[str, Any]] = {}
        for lead in self.leads:
            if not start <= lead["lead_date_ms"] < end:
                continue
            if campaigns and str(lead["campaign_id"]) not in campaigns:
                continue
            supplier = lead.get("supplier") or {}
            rows = (
                _counts(by_campaign, lead["campaign_id"], lead.get("campaign_name", "")),
                _counts(by_supplier, supplier.get("id"), supplier.get("name", ""), returned=True),
            )
            status = str(lead.get("status", "")).upper()
            key = {"ACCEPTED": "leads_accepted", "DUPLICATED": "leads_duplicated"}.get(
                status, "leads_failed" if status in ("ERROR", "FAILED") else None
            )
            for row in rows:
                row["leads_total"] += 1
                if key:
                    row[key] += 1
            rows[1]["leads_returned"] += bool(lead.get("returned"))
        return {"campaigns": list(by_campaign.values()), "suppliers": list(by_supplier.values())}


def _counts(
    rows: dict[str, dict[str, Any]], id: Any, name: str, *, returned: bool = False
) -> dict[str, Any]:
    row = {"id": id, "name": name, "leads_total": 0, "leads_accepted": 0,
           "leads_duplicated": 0, "leads_failed": 0}  # fmt: skip
    if returned:
        row["leads_returned"] = 0
    return rows.setdefault(str(id), row)


def _date(text: str | None, *, end: bool = False) -> int:
    """``YYYY-MM-DD`` (an end date includes its whole day) or ``YYYY-MM-DD HH:MM:SS``, in UTC, as
    epoch milliseconds."""
    if not text:
        raise ValueError("start_date and end_date are required")
    if len(text) == 10:
        moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
        if end:
            moment += timedelta(days=1)
    else:
        moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            document = json.loads(self.rfile.read(length) or b"null")
            path = urlsplit(self.path).path
            if path == "/_standin/leads":
                with stand_in.lock:
                    stand_in.leads = list(document)
                self._send(204, b"")
            elif path == "/_standin/faults":
                with stand_in.lock:
                    stand_in.faults = dict(document)
                self._send(204, b"")
            else:
                self._send(404, {"error": "not found"})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/_standin/requests":
                with stand_in.lock:
                    counts = {"served": stand_in.total, "refused": stand_in.refused,
                              "most_in_a_minute": stand_in.most_in_a_minute}  # fmt: skip
                self._send(200, counts)
                return
            if self.headers.get("Authorization") != f"Bearer {stand_in.api_key}":
                self._send(401, {"error": "Unauthenticated."})
                return
            wait = stand_in.admit(time.monotonic())
            if wait is not None:
                self._send(
                    429, {"error": "Too Many Attempts."}, {"Retry-After": str(int(wait) + 1)}
                )
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            fault = stand_in.fault(url.path)
            if "status" in fault:
                self._send(int(fault["status"]), {"error": "injected"})
                return
            try:
                if url.path == "/public/leads":
                    document = stand_in.page(query)
                    if fault.get("malformed"):
                        self._send(200, b"<html>maintenance</html>")
                        return
                    if fault.get("repeat_cursor") and "search_after" in query:
                        document["search_after"] = query["search_after"]
                    self._send(200, document)
                elif url.path == "/public/stats":
                    if fault.get("malformed_stats"):
                        self._send(200, b"<html>maintenance</html>")
                        return
                    self._send(200, stand_in.stats(query))
                elif url.path.startswith("/public/lead/"):
                    wanted = url.path.removeprefix("/public/lead/")
                    found = [le for le in stand_in.leads if le["id"] == wanted]
                    self._send(200, found[0]) if found else self._send(404, {"error": "no lead"})
                else:
                    self._send(404, {"error": "not found"})
            except ValueError as exc:
                self._send(422, {"error": str(exc)})

    return Handler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hookpipe_devstack.leadprosper_standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--per-minute", type=int, default=REQUESTS_PER_MINUTE)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler(StandIn(args.api_key, args.per_minute))
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
