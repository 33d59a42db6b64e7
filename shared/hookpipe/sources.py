"""Webhook sources, as configured in ``infra/sources.toml`` (or the file ``HOOKPIPE_SOURCES_FILE``
names). Pure: text in, validated configuration out.

A source is configured, not coded: its authentication scheme, accepted body formats, size limit,
event type, idempotency rule, the typed columns mapped from its payload, and optionally a
current-state table. Secrets are never in the file: ``secret_env`` names the environment variable
that holds them (ingest resolves them, :mod:`hookpipe_ingest.sources`). README.md, "Adding a
source", explains every key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hookpipe.errors import ConfigError, validation_summary
from hookpipe.payload import BodyFormat

MAX_BODY_BYTES = 9 * 1024 * 1024


class SourceConfigError(ConfigError, ValueError):
    """The sources file or a source's secrets are invalid; start-up stops with this message."""


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenAuth(_Config):
    """A shared token in a header or, for senders that can only set a URL, a query parameter."""

    scheme: Literal["token"]
    secret_env: str
    header: str | None = "Authorization"
    header_scheme: str | None = "Bearer"  # value is "<scheme> <token>"; None: the whole value
    query_param: str | None = "token"


class StandardWebhooksAuth(_Config):
    """Standard Webhooks: webhook-id / webhook-timestamp / webhook-signature (v1, HMAC-SHA256)."""

    scheme: Literal["standard-webhooks"]
    secret_env: str
    tolerance_seconds: int = Field(default=300, ge=1, le=3600)


class HmacAuth(_Config):
    """Generic HMAC over the raw body (GitHub-style) or over "timestamp.body" (Stripe-style).

    ``signature_header`` holds either the signature itself (after ``prefix``), or, when
    ``signature_key`` is set, comma-separated ``key=value`` pairs (``t=…,v1=…,v1=…``) in which
    ``signature_key`` marks signatures and ``timestamp_key`` the timestamp.
    """

    scheme: Literal["hmac"]
    secret_env: str
    signature_header: str
    algorithm: Literal["sha256", "sha1"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    signature_key: str | None = None
    timestamp_key: str | None = None
    timestamp_header: str | None = None
    tolerance_seconds: int = Field(default=300, ge=1, le=3600)


AuthConfig = Annotated[TokenAuth | StandardWebhooksAuth | HmacAuth, Field(discriminator="scheme")]


class IdempotencyRule(_Config):
    """How an event's stable id is derived (first rule that applies wins).

    1. ``header``: the value of that request header (e.g. ``webhook-id``), if present;
    2. ``fields``: the values of these normalized-payload fields, if all are present and non-empty;
    3. otherwise the SHA-256 of the raw body.
    """

    header: str | None = None
    fields: tuple[str, ...] = ()


ColumnType = Literal["string", "integer", "numeric", "timestamp"]


class ColumnSpec(_Config):
    """A typed column filled from one payload field (see :mod:`hookpipe.mapping`)."""

    field: str = Field(min_length=1)
    type: ColumnType = "string"


class CurrentStateSpec(_Config):
    """A Postgres table holding one row per ``key``, updated only by newer events.

    An event is newer when its ``version`` column (falling back to the time ingest accepted it)
    is later, ties broken by event id, so redeliveries in any order never move a row backwards.
    """

    table: str = Field(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
    key: str
    version: str
    columns: tuple[str, ...]


class ReconcileSpec(_Config):
    """How ``hookpipe reconcile`` reads the sender's own API (docs/reconcile.md)."""

    # LeadProsper allows 100 a minute for the whole account, shared with whatever else the user
    # runs against it: leave the rest to them.
    requests_per_minute: int = Field(default=60, ge=1, le=100)
    window_hours: int = Field(default=48, ge=1, le=24 * 90)
    timezone: str = "UTC"  # the API's dates, and the report's days
    max_pages: int = Field(default=2000, ge=1)  # per run: a cursor that never ends is an error
    # A day a run finished listing this recently is not listed again: a killed run, run again,
    # resumes. Shorter than the job's interval, so every scheduled run looks for new returns.
    resume_minutes: int = Field(default=30, ge=0, le=24 * 60)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC)") from None
        return value


class SourceConfig(_Config):
    event_type: str = Field(min_length=1)
    auth: AuthConfig
    # Whether the sender retries a webhook we did not answer 2xx. A sender that does not (e.g.
    # LeadProsper) loses every webhook we refuse, so for it an authenticated body that does not
    # parse, or has a Content-Type the source does not list, is accepted and marked, not refused
    # with 400/415 (docs/delivery.md, "Mark, don't refuse").
    sender_retries: bool = True
    # Alert when no webhook from this source was accepted for this many minutes: a sender that
    # never retries goes silent, not loud, when its trigger is switched off (off by default;
    # infra/terraform/alerts.tf reads it through locals.tf, a test keeps them in step).
    quiet_alert_minutes: int | None = Field(default=None, ge=5, le=1410)
    formats: tuple[BodyFormat, ...] = ("json", "form", "xml")
    # A Pub/Sub message holds at most 10 MB, data and attributes together: 9 MiB leaves room.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, le=MAX_BODY_BYTES)
    idempotency: IdempotencyRule = IdempotencyRule()
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    current_state: CurrentStateSpec | None = None
    reconcile: ReconcileSpec | None = None

    @model_validator(mode="after")
    def _current_state_uses_mapped_columns(self) -> SourceConfig:
        state = self.current_state
        if state is not None:
            unknown = {state.key, state.version, *state.columns} - set(self.columns)
            if unknown:
                raise ValueError(
                    f"current_state names columns that are not mapped: {sorted(unknown)}"
                )
        return self


def load_source_configs(path: Path) -> dict[str, SourceConfig]:
    """Read and validate the sources file."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SourceConfigError(f"sources file {path} not found (HOOKPIPE_SOURCES_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"sources file {path}: {exc}") from None
    configs = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise SourceConfigError(f"{path}: [{name}] must be a table")
        try:
            configs[name] = SourceConfig.model_validate(table)
        except ValidationError as exc:
            problems = validation_summary(exc)
            raise SourceConfigError(f"{path}: source {name!r}: {problems}") from None
    return configs
