"""Map a normalized payload to a source's typed columns. Pure.

Conversions (``ColumnSpec.type``):

* ``string``: the value as text.
* ``integer``: an integer, or text that is one (``"42"``), within INT64 (BigQuery's INT64,
  Postgres's ``bigint``).
* ``numeric``: an exact decimal from a number or text (``"12.50"``) that BigQuery NUMERIC holds
  exactly: at most 29 digits before the point and 9 after it (trailing zeros do not count).
  NaN, infinities, ``1E-20000`` or ``0.`` and 20,000 digits (which Postgres ``numeric`` refuses
  too) do not convert.

**Every typed value is one both sinks hold**: a value one sink cannot store must not land in only
the other, or fail its batch-mates at the sink.
* ``timestamp``: epoch seconds (number or digits; 13-digit values are read as milliseconds), or
  ISO 8601 / ``YYYY-MM-DD HH:MM:SS`` text; text without an offset is UTC (LeadProsper's
  ``lp_lead_date_utc`` has none).

A missing, null or empty field maps to NULL. :func:`convert` raises :class:`MappingError` for a
value that does not convert; :func:`map_columns` turns that into NULL plus a
:class:`~hookpipe.problems.Problem` (field, value, reason), so the event still lands, marked
(*mark, don't refuse*: hookpipe.problems).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from hookpipe.errors import PayloadError
from hookpipe.problems import Problem, clip
from hookpipe.sources import ColumnSpec


class MappingError(PayloadError):
    """A payload value cannot be converted to its column's type."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MappedColumns:
    values: dict[str, Any]  # column name -> converted value (None where missing or unconvertible)
    problems: dict[str, Problem]  # column name -> why its value did not convert

    @property
    def unconverted(self) -> frozenset[str]:
        return frozenset(self.problems)


def map_columns(columns: Mapping[str, ColumnSpec], payload: Mapping[str, Any]) -> MappedColumns:
    values: dict[str, Any] = {}
    problems: dict[str, Problem] = {}
    for name, spec in columns.items():
        raw = payload.get(spec.field)
        try:
            values[name] = convert(spec, raw)
        except MappingError as exc:
            values[name] = None
            problems[name] = Problem(spec.field, clip(raw), exc.reason)
    return MappedColumns(values, problems)


def convert(spec: ColumnSpec, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    if isinstance(raw, list | dict | bool):
        raise MappingError(spec.field, f"expected one {spec.type} value, got {_kind(raw)}")
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
    except (ValueError, InvalidOperation, OverflowError, OSError):
        # OSError: a timestamp outside the platform's range (datetime.fromtimestamp).
        raise MappingError(spec.field, f"{clip(raw)[:80]!r} is not a valid {spec.type}") from None
    raise AssertionError(spec.type)  # pragma: no cover - the Literal lists every type


def _kind(value: Any) -> str:
    return {list: "a list", dict: "an object", bool: "a boolean"}.get(type(value), "?")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _integer(raw: Any) -> int:
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(raw)
        value = int(raw)
    else:
        value = int(str(raw).strip())
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(raw)
    return value


# BigQuery NUMERIC: 38 digits, 9 after the point. Postgres numeric takes more (and far fewer
# than a Decimal can carry: at most 16383 after the point), so NUMERIC's bounds are both sinks'.
NUMERIC_LIMIT = Decimal(10) ** 29
NUMERIC_FRACTION_DIGITS = 9
NUMERIC_SCALE = Decimal(10) ** -NUMERIC_FRACTION_DIGITS
# Quantizing to the scale must be exact: trailing zeros go, any other digit past it is refused.
_NUMERIC_CONTEXT = Context(prec=38, traps=[InvalidOperation, Inexact])


def _numeric(raw: Any) -> Decimal:
    value = Decimal(str(raw).strip())
    # copy_abs, not abs(): abs() rounds to the default context's 28 digits.
    if not value.is_finite() or value.copy_abs() >= NUMERIC_LIMIT:
        raise ValueError(raw)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -NUMERIC_FRACTION_DIGITS:
        try:
            return value.quantize(NUMERIC_SCALE, context=_NUMERIC_CONTEXT)
        except (InvalidOperation, Inexact):
            raise ValueError(raw) from None
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
