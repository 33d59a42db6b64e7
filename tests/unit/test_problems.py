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


def test_integers_beyond_64_bits_are_kept_as_their_digits() -> None:
    """BigQuery's JSON refuses a number it cannot hold exactly: the row would land in Postgres
    only. Within INT64 or UINT64 they stay numbers."""
    payload = {"big": 2**64, "neg": -(2**63) - 1, "u": 2**64 - 1, "i": -(2**63), "flag": True}
    cleaned, problems = storable(payload)
    assert cleaned == {
        "big": str(2**64),
        "neg": str(-(2**63) - 1),
        "u": 2**64 - 1,
        "i": -(2**63),
        "flag": True,
    }
    assert [(p.field, p.value) for p in problems] == [
        ("big", str(2**64)),
        ("neg", str(-(2**63) - 1)),
    ]


def test_field_names_that_clean_to_the_same_name_keep_every_value() -> None:
    """ "a\\u0000", "a\\ud800" and a sent "a\\ufffd" would all be "a\\ufffd": the later one
    silently replaced the earlier's value, and a parsed body is not kept anywhere else."""
    payload = json.loads('{"a\\u0000": 1, "a\\ud800": 2, "a\\ufffd": 3}')
    cleaned, problems = storable(payload)
    assert sorted(cleaned.values()) == [1, 2, 3]
    assert cleaned["a\ufffd"] == 3  # the name that was sent keeps its value
    assert len(problems) == 2
    json.dumps(cleaned, allow_nan=False).encode()  # every name is now storable


def test_bounded_keeps_the_first_problems_and_says_how_many_more() -> None:
    from hookpipe.problems import MAX_PROBLEMS, PROBLEMS, Problem, bounded

    few = [Problem(f"f{i}", None, "r") for i in range(MAX_PROBLEMS)]
    assert bounded(few) == tuple(few)
    many = bounded([*few, Problem("x", None, "r")], more=9)
    assert len(many) == MAX_PROBLEMS
    assert many[:-1] == tuple(few[:-1])
    assert many[-1] == Problem(PROBLEMS, None, "11 more problems not listed")
    _, found = storable({"a": ["\x00"] * (MAX_PROBLEMS + 5)})
    assert (len(found), found.more) == (MAX_PROBLEMS, 5)
