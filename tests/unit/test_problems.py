from __future__ import annotations

import json

from hookpipe.problems import MAX_VALUE_CHARS, Problem, clip, storable


def test_storable_leaves_ordinary_payloads_alone() -> None:
    payload = {"a": "héllo ☃ 𝄞", "b": [1, 2.5, None, True], "c": {"d": ""}}
    assert storable(payload) == (payload, [])


def test_storable_replaces_what_postgres_refuses_and_says_where() -> None:
    payload = json.loads('{"a": {"b": ["ok", "\\udc00"]}, "c": -Infinity}')
    cleaned, problems = storable(payload)
    assert cleaned == {"a": {"b": ["ok", "\ufffd"]}, "c": None}
    assert [p.field for p in problems] == ["a.b[1]", "c"]
    # The cleaned payload is valid UTF-8 and strict JSON.
    json.dumps(cleaned, allow_nan=False).encode()


def test_clip_makes_any_value_storable_and_short() -> None:
    assert clip("x" * 1000) == "x" * (MAX_VALUE_CHARS - 1) + "…"
    assert clip("\x00\ud800") == "\ufffd\ufffd"
    assert clip(12.5) == "12.5"
    assert Problem("f", None, "r").as_json() == {"field": "f", "value": None, "reason": "r"}
