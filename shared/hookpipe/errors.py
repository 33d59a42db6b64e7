"""The root of hookpipe's one exception tree, and the branches both services share.

Every error hookpipe raises on purpose is a :class:`HookpipeError` and carries, on its class, the
HTTP ``status`` it is answered with wherever it reaches an HTTP answer, and the ``headers()`` that
go with it (``Retry-After``, ``Allow``). Each service turns an exception into its answer in one
place (``response_for`` in ``hookpipe_ingest.app`` and ``hookpipe_worker.app``); anything that is
not a ``HookpipeError`` is a bug and answered 500. Third-party errors are translated into this
tree by the adapter that meets them.

    HookpipeError                       500 unless a subclass says otherwise
    ├── ConfigError                     start-up stops with the message (exit 78)
    │   ├── SettingsError                   an environment variable is missing or invalid
    │   ├── SourceConfigError               the sources file or a source's secrets
    │   └── TopologyError (hookpipe_ops)    the subscription settings file
    ├── PayloadError                    the webhook body cannot become one JSON object
    │   ├── UnsupportedMediaType    415     Content-Type missing, over-long or not accepted
    │   ├── MalformedPayload        400     the bytes do not parse as the Content-Type says
    │   └── MappingError                    a value does not convert (marked, never raised out)
    ├── EnvelopeError                   a Pub/Sub message is not a hookpipe CloudEvent
    ├── BatcherClosed (hookpipe.batching)   503  the process is shutting down
    ├── IngestError (hookpipe_ingest.errors)
    ├── WorkerError (hookpipe_worker.errors)
    └── OperatorError (hookpipe_ops.errors)
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError


class HookpipeError(Exception):
    """Base of every error hookpipe raises on purpose."""

    status: ClassVar[int] = 500

    def headers(self) -> dict[str, str]:
        """Headers that go with this error's answer."""
        return {}


class ConfigError(HookpipeError):
    """The configuration is invalid; the process stops at start-up with this message."""


class SettingsError(ConfigError):
    """One or more environment variables are missing or invalid (one line each)."""


class PayloadError(HookpipeError):
    """The body cannot be normalized to one JSON object."""


class UnsupportedMediaType(PayloadError):
    """The Content-Type is missing, too long, or not one the source accepts."""

    status = 415


class MalformedPayload(PayloadError):
    """The body does not parse as its declared Content-Type."""

    status = 400


class EnvelopeError(HookpipeError):
    """A Pub/Sub message does not carry a valid hookpipe CloudEvent."""


def error_class(exc: BaseException) -> str:
    """The name hookpipe gives an error wherever it reports one (a dead letter's reason, a log
    line's ``reason``, a refusal's message): its class's name, never its module path."""
    return type(exc).__name__


def status_for(exc: BaseException) -> int:
    """The HTTP status a service answers for ``exc``: its class's ``status``; anything not raised
    on purpose is a 500, never a 2xx. (The worker answers permanent failures 204 *after* it has
    dead-lettered them, not here.)"""
    return exc.status if isinstance(exc, HookpipeError) else 500


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """What pydantic found wrong, one ``(field, message)`` per problem; ``field`` is the dotted
    path (``retry_policy.minimum_backoff_seconds``). The one place its errors are read, for the
    messages that say what to fix in a settings file, a sources file or the environment."""
    return [(".".join(str(part) for part in e["loc"]), e["msg"]) for e in exc.errors()]


def validation_summary(exc: ValidationError) -> str:
    """:func:`validation_problems` on one line: ``field: message; field: message``."""
    return "; ".join(f"{field}: {message}" for field, message in validation_problems(exc))
