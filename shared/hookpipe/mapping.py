"""Map a normalized payload to a source's typed columns. Pure.

Conversions (``ColumnSpec.type``):

* ``string``: the value as text.
* ``integer``: an integer, or text that is one (``"42"``).
* ``numeric``: an exact decimal from a number or text (``"12.50"``); NaN and infinities refused.
* ``timestamp``: epoch seconds (number or digits; 13-digit values are read as milliseconds), or
  ISO 8601 / ``YYYY-MM-DD HH:MM:SS`` text; text without an offset is UTC (LeadProsper's
  ``lp_lead_date_utc`` has none).

A missing, null or empty field maps to NULL. A value that does not convert raises
:class:`MappingError`: the event is dead-lettered with the field and the reason, since retrying
cannot fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from hookpipe.errors import PayloadError
from hookpipe.sources import ColumnSpec


class MappingError(PayloadError):
    """A payload value cannot be converted to its column's type."""


def map_columns(columns: Mapping[str, ColumnSpec], payload: Mapping[str, Any]) -> dict[str, Any]:
    return {name: convert(spec, payload.get(spec.field)) for name, spec in columns.items()}


def convert(spec: ColumnSpec, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    if isinstance(raw, list | dict | bool):
        raise MappingError(f"{spec.field}: expected one {spec.type} value, got {_kind(raw)}")
    try:
        match spec.type:
            case "string":
                return str(raw)
            case "integer":
                return _integer(raw)
            case "numeric":
                return _numeric(raw)
            case "timestamp":
                return _timestamp(raw)
    except (ValueError, InvalidOperation, OverflowError):
        raise MappingError(f"{spec.field}: {str(raw)[:80]!r} is not a valid {spec.type}") from None
    raise AssertionError(spec.type)  # pragma: no cover - the Literal lists every type


def _kind(value: Any) -> str:
    return {list: "a list", dict: "an object", bool: "a boolean"}.get(type(value), "?")


def _integer(raw: Any) -> int:
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(raw)
        return int(raw)
    return int(str(raw).strip())


def _numeric(raw: Any) -> Decimal:
    value = Decimal(str(raw).strip())
    if not value.is_finite():
        raise ValueError(raw)
    return value


def _timestamp(raw: Any) -> datetime:
    text = str(raw).strip()
    if isinstance(raw, int | float) or text.replace(".", "", 1).isdigit():
        seconds = float(text)
        if seconds > 1e11:  # milliseconds since the epoch
            seconds /= 1000
        return datetime.fromtimestamp(seconds, UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
