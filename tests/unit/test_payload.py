from __future__ import annotations

import pytest
from hookpipe.errors import MalformedPayload, UnsupportedMediaType
from hookpipe.payload import body_format, normalize


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"a": 1, "b": [1, 2]}', {"a": 1, "b": [1, 2]}),
        ("application/json; charset=utf-8", b'{"x": "\\u00e9"}', {"x": "é"}),
        ("application/cloudevents+json", b"{}", {}),
        ("application/x-www-form-urlencoded", b"a=1&b=&c=x+y", {"a": "1", "b": "", "c": "x y"}),
        ("application/x-www-form-urlencoded", b"t=1&t=2&t=3", {"t": ["1", "2", "3"]}),
        ("application/x-www-form-urlencoded", b"", {}),
        (
            "application/xml",
            b"<lead><id>7</id><status>SOLD</status></lead>",
            {"id": "7", "status": "SOLD"},
        ),
        (
            "text/xml",
            b'<lead v="2"><tag>a</tag><tag>b</tag><empty/></lead>',
            {"@v": "2", "tag": ["a", "b"], "empty": ""},
        ),
        (
            "application/xml",
            b"<lead><buyer><id>9</id></buyer>text</lead>",
            {"buyer": {"id": "9"}, "#text": "text"},
        ),
    ],
)
def test_normalize_maps_each_format_to_one_object(
    content_type: str, body: bytes, expected: dict[str, object]
) -> None:
    assert normalize(body, content_type) == expected


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"[1, 2]", "must be an object"),
        ("application/json", b'{"a": ', "does not parse"),
        ("application/json", b'{"a": "\xff"}', "not valid UTF-8"),
        ("application/x-www-form-urlencoded", b"\xff=1", "not valid UTF-8"),
        ("application/xml", b"<a><b></a>", "does not parse"),
        (
            "application/xml",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><x>&b;</x>',
            "refused",
        ),
        ("application/xml", b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>', "refused"),
        # Each of these was an uncaught exception (a 500) before.
        ("application/json", b'{"n": ' + b"1" * 5000 + b"}", "4300"),
        ("application/json", b'{"a": ' * 150 + b"1" + b"}" * 150, "nested more than 100"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, "nested more than 100"),
        ("application/xml", b"<a>" * 5000 + b"</a>" * 5000, "nested more than 100"),
        ("application/xml", b'<?xml version="1.0" encoding="x-nope"?><a/>', "unsupported enc"),
        ("application/xml", b'<?xml version="1.0" encoding="utf-16"?><a/>', "does not parse"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        normalize(body, content_type)


@pytest.mark.parametrize("content_type", ["text/plain", "", None, "multipart/form-data; b=x"])
def test_unsupported_media_types_are_refused(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="not supported"):
        body_format(content_type)


def test_ascii_digits_are_only_zero_to_nine() -> None:
    from hookpipe.text import is_ascii_digits

    assert is_ascii_digits("0123456789")
    for text in ("", "²", "١٢", "12a", " 1", "-1", "1.0", "\uff11"):
        assert not is_ascii_digits(text), text
