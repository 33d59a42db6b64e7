"""The operator tooling's branch of the exception tree (root: :mod:`hookpipe.errors`). The CLI
turns each into an exit code (``hookpipe_ops.cli.main``: 2 usage, 5 smoke) rather than a status.

OperatorError
├── UsageError          the command's words or settings are wrong (exit 2)
├── SmokeFailed         a smoke-test check failed (exit 5)
└── RepublishFailed     Pub/Sub did not confirm a replayed dead letter (counted; the replay
                        exits 4 when any failed)
(TopologyError, for the subscription settings file, is a ConfigError: exit 2.)
"""

from __future__ import annotations

from hookpipe.errors import ConfigError, HookpipeError


class OperatorError(HookpipeError):
    """Base of the operator tooling's deliberate errors."""


class UsageError(OperatorError):
    pass


class SmokeFailed(OperatorError):
    """A smoke-test check failed; the message says which."""


class RepublishFailed(OperatorError):
    """Pub/Sub did not confirm a republished dead letter: it stays where it was."""


class TopologyError(ConfigError, ValueError):
    """The subscription settings file is missing or invalid."""
