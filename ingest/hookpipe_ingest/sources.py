"""Webhook sources: configured in a TOML file, secrets from the environment.

A source is configured, not coded. ``infra/sources.toml`` (or the file ``HOOKPIPE_SOURCES_FILE``
names) declares each source's authentication scheme, accepted body formats, size limit, event type
and idempotency rule; each source's secrets come from the environment variable its ``secret_env``
names (Secret Manager mounts them as env on Cloud Run). See README.md, "Adding a source".
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from hookpipe.payload import BodyFormat
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

MIN_TOKEN_LENGTH = 16


class SourceConfigError(ValueError):
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


class SourceConfig(_Config):
    event_type: str = Field(min_length=1)
    auth: AuthConfig
    formats: tuple[BodyFormat, ...] = ("json", "form", "xml")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, le=32 * 1024 * 1024)
    idempotency: IdempotencyRule = IdempotencyRule()


@dataclass(frozen=True, slots=True)
class Token:
    value: SecretStr
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """A configured source with its secrets resolved."""

    name: str
    config: SourceConfig
    tokens: tuple[Token, ...] = ()  # token scheme
    keys: tuple[SecretStr, ...] = ()  # HMAC keys (decoded for standard-webhooks)


def load_sources(path: Path, environ: Mapping[str, str]) -> dict[str, Source]:
    """Read the sources file and resolve each source's secrets from ``environ``."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SourceConfigError(f"sources file {path} not found (HOOKPIPE_SOURCES_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"sources file {path}: {exc}") from None
    sources = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise SourceConfigError(f"{path}: [{name}] must be a table")
        try:
            config = SourceConfig.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise SourceConfigError(f"{path}: source {name!r}: {problems}") from None
        sources[name] = resolve_secrets(name, config, environ)
    return sources


def resolve_secrets(name: str, config: SourceConfig, environ: Mapping[str, str]) -> Source:
    env = config.auth.secret_env
    raw = environ.get(env, "").strip()
    if not raw:
        raise SourceConfigError(f"source {name!r}: environment variable {env} is not set")
    items = [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]
    match config.auth:
        case TokenAuth():
            return Source(name, config, tokens=tuple(_parse_token(name, env, i) for i in items))
        case StandardWebhooksAuth():
            keys = [_standard_webhooks_key(name, env, i) for item in items for i in item.split()]
            return Source(name, config, keys=tuple(keys))
        case HmacAuth():
            return Source(name, config, keys=tuple(SecretStr(i) for i in items))


def _parse_token(source: str, env: str, item: str) -> Token:
    """``<token>`` or ``<token>@<ISO 8601 expiry>``: tokens are URL-safe, so '@' and ',' split."""
    value, _, expiry = item.partition("@")
    if len(value) < MIN_TOKEN_LENGTH:
        raise SourceConfigError(
            f"source {source!r}: a token in {env} is shorter than {MIN_TOKEN_LENGTH} characters"
        )
    expires_at = None
    if expiry:
        try:
            expires_at = datetime.fromisoformat(expiry)
        except ValueError:
            raise SourceConfigError(
                f"source {source!r}: token expiry {expiry!r} in {env} is not ISO 8601"
            ) from None
        if expires_at.tzinfo is None:
            raise SourceConfigError(
                f"source {source!r}: token expiry {expiry!r} in {env} needs a UTC offset"
            )
    return Token(SecretStr(value), expires_at)


def _standard_webhooks_key(source: str, env: str, item: str) -> SecretStr:
    """Standard Webhooks secrets are ``whsec_<base64>``; the HMAC key is the decoded bytes."""
    try:
        key = base64.b64decode(item.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise SourceConfigError(
            f"source {source!r}: a secret in {env} is not whsec_<base64>"
        ) from None
    # SecretStr holds text; latin-1 maps bytes 1:1 so the key round-trips exactly.
    return SecretStr(key.decode("latin-1"))
