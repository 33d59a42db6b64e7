"""What could not be understood about an event, recorded beside it instead of refusing it. Pure.

hookpipe's rule is *mark, don't refuse*: an event whose credentials verified lands in both sinks
even when part of it cannot be understood, with each problem recorded in the row's ``problems``
column as ``{"field", "value", "reason"}``:

* ``field``: the payload field (``lp_purchase_price``), a JSON path into the payload
  (``notes[2].text``) for text that could not be stored as sent, or ``(body)`` when the body as a
  whole did not parse;
* ``value``: the offending value as text, clipped to ``MAX_VALUE_CHARS`` (``null`` for a body);
* ``reason``: what was wrong, in words.

A row lists at most ``MAX_PROBLEMS``: past that, the first ones and a ``(problems)`` entry saying
how many more there were (:func:`bounded`), so no body can make its row's problems unbounded.

:func:`storable` is the one place that decides what a parsed payload's unstorable values become:
PostgreSQL's ``jsonb`` refuses lone UTF-16 surrogates, NUL characters and NaN/Infinity, so text
with a lone surrogate or NUL has each one replaced by U+FFFD, and a NaN or infinite number becomes
``null``; BigQuery's JSON refuses an integer it cannot hold exactly (outside INT64 and UINT64), so
such an integer is kept as its digits in a string. Each is recorded as a problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

BODY = "(body)"
MAX_VALUE_CHARS = 200
REPLACEMENT = "\ufffd"
INT_MIN, UINT_MAX = -(2**63), 2**64 - 1  # what BigQuery's JSON holds exactly
# A lone surrogate (U+D800-U+DFFF can only come from a JSON \\u escape) or NUL.
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    value: str | None
    reason: str

    def as_json(self) -> dict[str, str | None]:
        return {"field": self.field, "value": self.value, "reason": self.reason}


def clip(value: Any) -> str:
    """``value`` as storable text of at most ``MAX_VALUE_CHARS`` characters."""
    text = value if isinstance(value, str) else repr(value)
    text = _UNSTORABLE.sub(REPLACEMENT, text)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


# A row lists at most this many problems, the last of them saying how many more there were: a
# body of 170k NUL fields must not become 170k problems (a row BigQuery refuses, seconds of CPU).
MAX_PROBLEMS = 100
PROBLEMS = "(problems)"


class ProblemList(list[Problem]):
    """Problems as they are found: the first ``MAX_PROBLEMS`` kept, the rest only counted in
    ``more``, so finding a million costs no more memory than finding a hundred."""

    def __init__(self) -> None:
        super().__init__()
        self.more = 0

    def add(self, path: str, value: Callable[[], str | None], reason: str) -> None:
        """``value`` is only computed for a problem that is kept."""
        if len(self) < MAX_PROBLEMS:
            self.append(Problem(path, value(), reason))
        else:
            self.more += 1


def bounded(
    problems: Sequence[Problem], more: int = 0, limit: int = MAX_PROBLEMS
) -> tuple[Problem, ...]:
    """At most ``limit`` of ``problems`` (and ``more`` already left out): past that, the first
    ones and one entry saying how many more there were."""
    if more == 0 and len(problems) <= limit:
        return tuple(problems)
    kept = tuple(problems[: max(limit - 1, 0)])
    left_out = len(problems) - len(kept) + more
    return (*kept, Problem(PROBLEMS, None, f"{left_out:,} more problems not listed"))


def storable(payload: dict[str, Any]) -> tuple[dict[str, Any], ProblemList]:
    """``payload`` with every value both sinks can store, and what had to change (the first
    ``MAX_PROBLEMS``; :func:`bounded` makes the row's list).

    The payload is at most ``hookpipe.payload.MAX_DEPTH`` deep (normalize refuses deeper), so the
    recursion here is bounded.
    """
    problems = ProblemList()
    cleaned = _clean(payload, "", problems)
    assert isinstance(cleaned, dict)
    return cleaned, problems


def _clean(value: Any, path: str, problems: ProblemList) -> Any:
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            problems.add(
                path, lambda: clip(value), "lone UTF-16 surrogate or NUL replaced by U+FFFD"
            )
            return _UNSTORABLE.sub(REPLACEMENT, value)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        problems.add(path, lambda: repr(value), "NaN or infinite number stored as null")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= UINT_MAX:
        problems.add(
            path,
            lambda: clip(str(value)),
            "integer beyond 64 bits stored as a string of its digits",
        )
        return str(value)
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = key
            if _UNSTORABLE.search(key):
                name = _UNSTORABLE.sub(REPLACEMENT, key)
                # "a\x00" and "a\ud800" (or a sent "a\ufffd") must not become one field and
                # lose a value: one more U+FFFD until the name is the field's own.
                while name in value or name in result:
                    name += REPLACEMENT
                problems.add(
                    _join(path, name), lambda: None, "field name had a lone surrogate or NUL"
                )
            result[name] = _clean(item, _join(path, name), problems)
        return result
    if isinstance(value, list):
        return [_clean(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
