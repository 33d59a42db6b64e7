"""Normalize a webhook body (JSON, form or XML) to one JSON object. Pure: bytes in, dict out.

Mapping rules (documented in README.md, "Body formats"):

* JSON: the body must be a JSON object; it is returned as parsed.
* ``application/x-www-form-urlencoded``: each field becomes a string; a field sent more than once
  becomes an array of strings in the order sent. Blank values are kept as ``""``.
* XML: the root element's children become the object's keys (the root's own name is dropped; it is
  kept in the original bytes). An element with only text becomes a string; an element with children
  becomes an object; an element repeated under one parent becomes an array; attributes become
  ``"@name"`` keys and text beside children or attributes becomes ``"#text"``. Parsed with
  defusedxml, so entity expansion, external entities and DTDs are refused.

Whatever the format, a body nested more than ``MAX_DEPTH`` levels deep is refused, and every
way a body can fail to parse (bad UTF-8, an unknown XML encoding, a 5000-digit JSON integer) is a
:class:`MalformedPayload` naming the cause, never another exception. What a body *contains* is not
judged here: NaN, lone surrogates and NUL characters parse, and :func:`storable` decides what they
become in the sinks.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from hookpipe.errors import MalformedPayload, UnsupportedMediaType, error_class

BodyFormat = Literal["json", "form", "xml"]

# Deeper than any real webhook; keeps every recursive walk (ours, json.dumps) far from Python's
# recursion limit.
MAX_DEPTH = 100

_MEDIA_TYPES: dict[str, BodyFormat] = {
    "application/json": "json",
    "application/x-www-form-urlencoded": "form",
    "application/xml": "xml",
    "text/xml": "xml",
}


def body_format(content_type: str | None) -> BodyFormat:
    """The body format a Content-Type header declares (``+json``/``+xml`` suffixes included)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _MEDIA_TYPES:
        return _MEDIA_TYPES[media_type]
    if media_type.endswith("+json"):
        return "json"
    if media_type.endswith("+xml"):
        return "xml"
    shown = media_type or "(none)"
    raise UnsupportedMediaType(
        f"Content-Type {shown} is not supported; send application/json, "
        "application/x-www-form-urlencoded or application/xml"
    )


def normalize(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Parse ``body`` as its Content-Type declares and return one JSON object."""
    fmt = body_format(content_type)
    if fmt == "json":
        return _from_json(body)
    if fmt == "form":
        return _from_form(body)
    return _from_xml(body)


def _from_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"JSON body is not valid UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise MalformedPayload(
            f"JSON body does not parse: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise MalformedPayload(f"JSON body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
        raise MalformedPayload(f"JSON body does not parse: {str(exc)[:120]}") from None
    if not isinstance(value, dict):
        raise MalformedPayload(f"JSON body must be an object, got {type(value).__name__}")
    if _depth(value) > MAX_DEPTH:
        raise MalformedPayload(f"JSON body is nested more than {MAX_DEPTH} levels deep")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _from_form(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"form body is not valid UTF-8: {exc.reason}") from None
    except ValueError as exc:
        # parse_qsl quotes the offending field whole: a 1 MB one would be a 1 MB reason.
        raise MalformedPayload(f"form body does not parse: {str(exc)[:120]}") from None
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key not in result:
            result[key] = value
        elif isinstance(result[key], list):
            result[key].append(value)
        else:
            result[key] = [result[key], value]
    return result


def _from_xml(body: bytes) -> dict[str, Any]:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise MalformedPayload(f"XML body refused: {error_class(exc)}") from None
    except SafeET.ParseError as exc:
        raise MalformedPayload(f"XML body does not parse: {str(exc)[:120]}") from None
    except LookupError as exc:  # an encoding Python does not know, named in the declaration
        raise MalformedPayload(f"XML body declares an unsupported encoding: {exc}") from None
    except ValueError as exc:
        raise MalformedPayload(f"XML body does not parse: {str(exc)[:120]}") from None
    if _xml_depth(root) > MAX_DEPTH:
        raise MalformedPayload(f"XML body is nested more than {MAX_DEPTH} levels deep")
    value = _element_value(root)
    if isinstance(value, dict):
        return value
    return {"#text": value} if value else {}


def _xml_depth(root: Element) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in element)
    return deepest


def _element_value(element: Element) -> Any:
    children = list(element)
    # Text may stand before the first child or after any child (an element's "tail").
    text = ((element.text or "") + "".join(child.tail or "" for child in children)).strip()
    if not children and not element.attrib:
        return element.text or ""
    result: dict[str, Any] = {f"@{name}": value for name, value in element.attrib.items()}
    for child in children:
        value = _element_value(child)
        if child.tag not in result:
            result[child.tag] = value
        elif isinstance(result[child.tag], list):
            result[child.tag].append(value)
        else:
            result[child.tag] = [result[child.tag], value]
    if text:
        result["#text"] = text
    return result
