"""Ingest's view of the sources: each configured source with its secrets resolved.

The configuration itself lives in :mod:`hookpipe.sources` (the worker reads it too, for the typed
columns); the secrets only ingest needs come from the environment variable each source's
``secret_env`` names (on Cloud Run, a Secret Manager secret mounted as that variable).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hookpipe.sources import (
    HmacAuth,
    SourceConfig,
    SourceConfigError,
    StandardWebhooksAuth,
    TokenAuth,
    load_source_configs,
)
from pydantic import SecretStr

MIN_TOKEN_LENGTH = 16
# Standard Webhooks asks for secrets of 24 to 64 bytes; an empty key would let anyone sign.
MIN_SIGNING_KEY_BYTES = 24

__all__ = [
    "MIN_TOKEN_LENGTH",
    "Source",
    "SourceConfigError",
    "Token",
    "load_sources",
    "resolve_secrets",
]


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
    return {
        name: resolve_secrets(name, config, environ)
        for name, config in load_source_configs(path).items()
    }


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
            for item in items:
                _check_key_length(name, env, item.encode())
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
    _check_key_length(source, env, key)
    # SecretStr holds text; latin-1 maps bytes 1:1 so the key round-trips exactly.
    return SecretStr(key.decode("latin-1"))


def _check_key_length(source: str, env: str, key: bytes) -> None:
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise SourceConfigError(
            f"source {source!r}: a secret in {env} is shorter than {MIN_SIGNING_KEY_BYTES} bytes"
        )
