"""The worker's settings: one immutable object, built from the environment at start-up."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal, Self

from hookpipe.settings import CommonSettings
from pydantic import Field, SecretStr, field_validator, model_validator

DATABASE_URL_HELP = (
    "not a PostgreSQL connection URL libpq can parse (not shown: it holds the password); "
    "percent-encode reserved characters in the user and password: % as %25, @ as %40, "
    "/ as %2F, : as %3A, a space as %20"
)


def database_url_parses(url: str) -> bool:
    """Whether libpq can parse ``url``, without ever showing it."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception:
        return False
    return True


def database_url_secrets(url: str) -> list[str]:
    """The password in ``url``, as written and as libpq decodes it: what a log line must never
    carry (``hookpipe.logging.redact``)."""
    from psycopg.conninfo import conninfo_to_dict

    found = []
    userinfo = url.partition("://")[2].rpartition("@")[0] if "://" in url else ""
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    with contextlib.suppress(Exception):  # unparsable: what is written is all there is
        found.append(str(conninfo_to_dict(url).get("password") or ""))
    return [secret for secret in found if secret]


class WorkerSettings(CommonSettings):
    sources_file: Path = Field(description="TOML file declaring the sources (typed columns)")
    # Postgres / Supabase. Production: the Supavisor transaction-mode URL (port 6543) with
    # sslmode=verify-full and sslrootcert. See docs/delivery.md for the pool sizing rule:
    # max instances x pool_max_size must stay under the pooler's client limit.
    database_url: SecretStr
    # TLS to Supabase: verify-full with Supabase's CA certificate in production ("require" does
    # not check the server's identity). Unset: whatever the URL says (the local stack: none).
    database_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = None
    database_sslrootcert: Path | None = None
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=4, ge=1, le=100)
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a batch keeps trying again, with backoff, when Postgres was unreachable or
    # restarting (docs/delivery.md) before its pushes are answered 503.
    postgres_retry_seconds: float = Field(default=10.0, ge=0, le=30)
    # The whole commit of a batch (every attempt, both sinks, however many BigQuery requests)
    # ends within this or its pushes are answered 503. Below the push subscription's ack
    # deadline and the worker's request timeout (infra/pubsub/subscriptions.json; a test keeps
    # them in step), so Pub/Sub never redelivers a push that is still being committed.
    commit_deadline_seconds: float = Field(default=45.0, gt=0, le=590)

    bigquery_dataset: str = "hookpipe"
    bigquery_table: str = "raw_events"
    bigquery_endpoint: str | None = Field(
        default=None, description="local emulator URL; unset in production"
    )
    bigquery_timeout_seconds: float = Field(default=10.0, gt=0)
    # How the raw events reach BigQuery: the Storage Write API's default stream (Google's advice
    # for new pipelines; docs/delivery.md), or the legacy insertAll.
    bigquery_write_api: Literal["storage_write", "insert_all"] = "storage_write"
    bigquery_storage_endpoint: str | None = Field(
        default=None,
        description="local emulator's Storage Write gRPC host:port; unset in production",
    )

    push_path: str = "/pubsub/push"
    # The dead-letter archive's push endpoint (subscriptions.json: dead-letter-archive).
    archive_path: str = "/pubsub/dead-letters"
    bigquery_dead_letters_table: str = "dead_letters"
    # "oidc" verifies Pub/Sub's signed token; "none" is for the local emulator, which sends none.
    push_auth: Literal["oidc", "none"] = "oidc"
    # Set by Cloud Run / by the local stack: "none" is for the emulator (which sends no token).
    cloud_run_service: str | None = Field(default=None, validation_alias="K_SERVICE")
    pubsub_emulator_host: str | None = Field(default=None, validation_alias="PUBSUB_EMULATOR_HOST")
    push_audience: str | None = None
    push_service_account: str | None = None

    # Group commit (docs/benchmarks.md, "Worker"): a batch closes at max rows or max bytes (under
    # insertAll's request limit), when its oldest row has waited max delay, or when it holds as
    # many rows as the largest batch of the recent window (the pushes in flight are all back:
    # hookpipe.batching); rows arriving while max concurrent batches are in flight form the next
    # one, so batches also grow with load. Measured against no added wait it wins on throughput
    # and p99 (fewer, fuller insertAll calls); a push waits at most the max delay.
    batch_max_rows: int = Field(default=500, ge=1, le=10000)
    batch_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=9 * 1024 * 1024)
    batch_max_delay_ms: float = Field(default=20.0, ge=0, le=5000)
    batch_recent_window_ms: float = Field(default=1000.0, ge=0, le=60000)
    batch_max_concurrent: int = Field(default=4, ge=1, le=64)
    # Rows waiting for a batch before pushes are refused with 429 (Pub/Sub backs off).
    batch_max_queued: int = Field(default=5000, ge=1)
    dead_letter_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _parsable(cls, value: SecretStr) -> SecretStr:
        # At start-up rather than at the pool's first connection: psycopg_pool logs libpq's
        # parse error as a WARNING, and it quotes the offending part (the password, often).
        if not database_url_parses(value.get_secret_value()):
            raise ValueError(DATABASE_URL_HELP)
        return value

    @model_validator(mode="after")
    def _retries_fit_the_deadline(self) -> Self:
        if self.postgres_retry_seconds + self.pool_timeout_seconds >= self.commit_deadline_seconds:
            raise ValueError(
                "HOOKPIPE_POSTGRES_RETRY_SECONDS + HOOKPIPE_POOL_TIMEOUT_SECONDS must stay below "
                "HOOKPIPE_COMMIT_DEADLINE_SECONDS: a retried batch would always miss its deadline"
            )
        return self

    @model_validator(mode="after")
    def _no_unauthenticated_pushes_on_cloud_run(self) -> Self:
        if self.push_auth == "none" and self.cloud_run_service and not self.pubsub_emulator_host:
            raise ValueError(
                "HOOKPIPE_PUSH_AUTH=none is refused on Cloud Run (K_SERVICE is set and no "
                "PUBSUB_EMULATOR_HOST): anyone reaching the worker could write rows; use oidc"
            )
        return self

    @model_validator(mode="after")
    def _oidc_needs_identity(self) -> Self:
        if self.push_auth == "oidc" and not (self.push_audience and self.push_service_account):
            raise ValueError(
                "HOOKPIPE_PUSH_AUTH=oidc needs HOOKPIPE_PUSH_AUDIENCE and "
                "HOOKPIPE_PUSH_SERVICE_ACCOUNT (or set HOOKPIPE_PUSH_AUTH=none locally)"
            )
        return self

    @property
    def bigquery_table_id(self) -> str:
        return f"{self.project_id}.{self.bigquery_dataset}.{self.bigquery_table}"

    @property
    def bigquery_dead_letters_table_id(self) -> str:
        return f"{self.project_id}.{self.bigquery_dataset}.{self.bigquery_dead_letters_table}"
