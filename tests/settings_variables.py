"""The environment variables a settings class reads, for the tests that compare them with the
docs and docker-compose.yml."""

from __future__ import annotations

from pydantic_settings import BaseSettings


def environment_variables(cls: type[BaseSettings]) -> set[str]:
    """Each field's alias, or the class's prefix + the field's name."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names
