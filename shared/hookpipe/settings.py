"""Settings shared by every hookpipe process, and the fail-fast loader.

Each service has one typed, immutable settings object built once at start-up from the environment
(``HOOKPIPE_*``); secrets are ``SecretStr`` so they never print. A missing or invalid variable stops
the process with one clear line per problem, naming the variable.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookpipe.errors import ConfigError, SettingsError, validation_problems


class CommonSettings(BaseSettings):
    """What both services need to find each other on Pub/Sub."""

    model_config = SettingsConfigDict(env_prefix="HOOKPIPE_", frozen=True, extra="ignore")

    project_id: str = Field(min_length=1, description="Google Cloud project id")
    events_topic: str = Field(default="hookpipe-events", min_length=1)
    dead_letter_topic: str = Field(default="hookpipe-dead-letter", min_length=1)
    revision: str = Field(
        default="local",
        validation_alias="K_REVISION",  # Cloud Run sets it; logged and stamped on dead letters
        description="the running revision",
    )
    log_level: str = "INFO"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings[SettingsT: BaseSettings](cls: type[SettingsT]) -> SettingsT:
    """Build ``cls`` from the environment, or raise :class:`SettingsError` naming each bad
    variable on a line of its own (the entry points print it and exit 78)."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = [f"invalid configuration for {cls.__name__}:"]
        for field, message in validation_problems(exc):
            lines.append(f"  {prefix}{field.upper()}: {message}")
        raise SettingsError("\n".join(lines)) from None


def exit_on_config_error(service: str, error: ConfigError) -> SystemExit:
    """What an entry point raises for a configuration error: the message on stderr, then exit
    78 (EX_CONFIG), so the platform reports a bad deployment rather than a crash."""
    print(f"hookpipe {service}: {error}", file=sys.stderr)
    return SystemExit(78)
