"""The durable spool: where ingest keeps an event when Pub/Sub does not confirm it.

One Cloud Storage object per event id (``spool/<event id>``), holding the Pub/Sub message exactly
as it would have been published: a JSON document ``{"attributes": {...}, "data": "<base64>"}``.
Objects are created with ``if_generation_match=0`` (create-only): a sender's retry of a spooled
webhook finds its object already there, which is success, and nothing can overwrite it.

The drainer (:mod:`hookpipe_ingest.drain`) republishes each object with its original data and
attributes and deletes it only after Pub/Sub confirmed; docs/delivery.md, "The spool", says why
that is exactly once downstream even with drainers racing or killed between publish and delete.

``encode``/``decode`` are pure; :class:`GcsSpool` is the adapter, created once per process.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.api_core.exceptions import GoogleAPIError, NotFound, PreconditionFailed
from requests.exceptions import RequestException

PREFIX = "spool/"
SPOOL_WRITERS = 32  # spool writes in flight at once in one ingest process


class SpoolUnavailable(Exception):
    """The spool could not take, list, read or delete an object now."""


class BadSpoolObject(ValueError):
    """An object under the prefix is not a spooled message (left in place, reported)."""


@dataclass(frozen=True, slots=True)
class SpooledObject:
    name: str
    generation: int
    created: datetime


def object_name(event_id: str) -> str:
    return PREFIX + event_id


def encode(data: bytes, attributes: Mapping[str, str]) -> bytes:
    return json.dumps(
        {"attributes": dict(attributes), "data": base64.b64encode(data).decode()},
        separators=(",", ":"),
    ).encode()


def decode(blob: bytes) -> tuple[bytes, dict[str, str]]:
    try:
        document = json.loads(blob)
        attributes = document["attributes"]
        data = base64.b64decode(document["data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadSpoolObject(f"not a spooled message: {type(exc).__name__}") from None
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise BadSpoolObject("not a spooled message: attributes are not strings")
    return data, attributes


class Spool(Protocol):
    async def put(self, event_id: str, data: bytes, attributes: Mapping[str, str]) -> None:
        """Keep the message durably; raise :class:`SpoolUnavailable` when it could not."""
        ...


class GcsSpool:
    """Create-only writes (ingest); list, read and delete (the drainer)."""

    def __init__(
        self, bucket: str, *, project_id: str, timeout_seconds: float, emulator_host: str | None
    ) -> None:
        # Imported here, on first use: the storage client is most of the spool's start-up cost,
        # and an ingest whose Pub/Sub is healthy never needs it.
        import google.cloud.storage as storage
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._timeout = timeout_seconds
        # Its own threads: on asyncio's default pool (cores + 4) a Pub/Sub outage spooled at most
        # six webhooks at a time (`make bench-spool`). Threads start only as they are needed.
        self._writers = ThreadPoolExecutor(SPOOL_WRITERS, thread_name_prefix="spool")
        # The library's default retry keeps trying a refused connection for 120 s; a webhook's
        # request has this budget in all.
        self._retry = DEFAULT_RETRY.with_timeout(timeout_seconds)
        if emulator_host:
            # The client finds STORAGE_EMULATOR_HOST itself; credentials must still be given.
            self._client = storage.Client(project=project_id, credentials=AnonymousCredentials())
        else:
            self._client = storage.Client(project=project_id)
        self._bucket = self._client.bucket(bucket)

    async def put(self, event_id: str, data: bytes, attributes: Mapping[str, str]) -> None:
        blob = self._bucket.blob(object_name(event_id))
        body = encode(data, attributes)
        upload = functools.partial(
            blob.upload_from_string,
            body,
            content_type="application/json",
            if_generation_match=0,
            timeout=self._timeout,
            retry=self._retry,
        )
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._writers, upload),
                # A write still going on in its thread after this may yet land: the sender, told
                # 503, resends, and the create-only object (or its publish) keeps it once.
                self._timeout + 1,
            )
        except PreconditionFailed:
            return  # already spooled: a resend of the same webhook, kept once
        except (GoogleAPIError, RequestException, OSError) as exc:  # TimeoutError is an OSError
            raise SpoolUnavailable(f"spool write failed: {type(exc).__name__}") from None

    def list(self, limit: int | None = None) -> Iterator[SpooledObject]:
        try:
            for blob in self._client.list_blobs(
                self._bucket,
                prefix=PREFIX,
                max_results=limit,
                timeout=self._timeout,
                retry=self._retry,
            ):
                yield SpooledObject(blob.name, int(blob.generation), blob.time_created)
        except (GoogleAPIError, RequestException, OSError) as exc:
            raise SpoolUnavailable(f"spool list failed: {type(exc).__name__}") from None

    def read(self, item: SpooledObject) -> bytes | None:
        """The object's content, or None when it is gone (another drainer took it)."""
        try:
            return bytes(
                self._bucket.blob(item.name).download_as_bytes(
                    if_generation_match=item.generation, timeout=self._timeout, retry=self._retry
                )
            )
        except (NotFound, PreconditionFailed):
            return None
        except (GoogleAPIError, RequestException, OSError) as exc:
            raise SpoolUnavailable(f"spool read failed: {type(exc).__name__}") from None

    def delete(self, item: SpooledObject) -> None:
        try:
            self._bucket.blob(item.name).delete(
                if_generation_match=item.generation, timeout=self._timeout, retry=self._retry
            )
        except (NotFound, PreconditionFailed):
            return  # another drainer deleted it after its own confirmed publish
        except (GoogleAPIError, RequestException, OSError) as exc:
            raise SpoolUnavailable(f"spool delete failed: {type(exc).__name__}") from None
