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
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core.exceptions import GoogleAPIError, NotFound, PreconditionFailed
from google.auth.exceptions import GoogleAuthError
from hookpipe.errors import error_class
from hookpipe.spool import PREFIX, object_name
from requests.exceptions import RequestException

from hookpipe_ingest.errors import BadSpoolObject, SpoolUnavailable

SPOOL_WRITERS = 32  # spool writes in flight at once in one ingest process

# What the storage client raises when a call does not get through: the API, credentials, the
# HTTP transport, the network. Named once; each call translates it into SpoolUnavailable.
STORAGE_ERRORS = (GoogleAPIError, GoogleAuthError, RequestException, OSError)


@dataclass(frozen=True, slots=True)
class SpooledObject:
    name: str
    generation: int
    created: datetime


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
        raise BadSpoolObject(f"not a spooled message: {error_class(exc)}") from None
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise BadSpoolObject("not a spooled message: attributes are not strings")
    return data, attributes


class GcsSpool:
    """Create-only writes (ingest); list, read and delete (the drainer).

    The storage client is made on first use, in a worker thread: an ingest whose Pub/Sub is
    healthy never imports it, never looks up credentials for it, and never blocks its event
    loop doing so.
    """

    def __init__(
        self, bucket: str, *, project_id: str, timeout_seconds: float, emulator_host: str | None
    ) -> None:
        self._bucket_name = bucket
        self._project_id = project_id
        self._emulator = bool(emulator_host)
        self._timeout = timeout_seconds
        # Its own threads: asyncio's default pool (cores + 4) held the spool back during a Pub/Sub
        # outage (docs/benchmarks.md, "Spool"). Threads start only as they are needed.
        self._writers = ThreadPoolExecutor(SPOOL_WRITERS, thread_name_prefix="spool")
        self._lock = threading.Lock()
        self._handle: tuple[Any, Any] | None = None  # (bucket, retry), made on first use

    def _bucket(self) -> tuple[Any, Any]:
        """The bucket and the retry policy every call uses with it."""
        with self._lock:
            if self._handle is None:
                import google.cloud.storage as storage
                from google.auth.credentials import AnonymousCredentials
                from google.cloud.storage.retry import DEFAULT_RETRY

                # The library's default retry keeps trying a refused connection for 120 s; a
                # webhook's request has this budget in all.
                retry = DEFAULT_RETRY.with_timeout(self._timeout)
                # With STORAGE_EMULATOR_HOST the client finds the emulator itself; credentials
                # must still be given.
                credentials = AnonymousCredentials() if self._emulator else None
                client = storage.Client(project=self._project_id, credentials=credentials)
                self._handle = (client.bucket(self._bucket_name), retry)
            return self._handle

    def _upload(self, event_id: str, body: bytes) -> None:
        bucket, retry = self._bucket()
        bucket.blob(object_name(event_id)).upload_from_string(
            body,
            content_type="application/json",
            if_generation_match=0,
            timeout=self._timeout,
            retry=retry,
        )

    async def put(self, event_id: str, data: bytes, attributes: Mapping[str, str]) -> None:
        upload = functools.partial(self._upload, event_id, encode(data, attributes))
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._writers, upload),
                # A write still going on in its thread after this may yet land: the sender, told
                # 503, resends, and the create-only object (or its publish) keeps it once.
                self._timeout + 1,
            )
        except PreconditionFailed:
            return  # already spooled: a resend of the same webhook, kept once
        except Exception as exc:
            # Whatever stopped the write (the API, credentials, the network, a timeout, a client
            # bug): the event was not kept, and the request is answered 503 + Retry-After, as
            # this protocol promises, never a 500.
            raise SpoolUnavailable(f"spool write failed: {error_class(exc)}") from None

    def list(self, limit: int | None = None, *, start_at: str = "") -> Iterator[SpooledObject]:
        """Every spooled object, lazily, a page of names at a time (memory does not grow with
        the backlog): those named from ``start_at`` on, then those before it."""
        ranges = [(start_at, None), ("", start_at)] if start_at else [("", None)]
        left = limit
        for start, end in ranges:
            for item in self._list_range(left, start, end):
                yield item
                if left is not None:
                    left -= 1
            if left == 0:
                return

    def _list_range(
        self, limit: int | None, start: str, end: str | None
    ) -> Iterator[SpooledObject]:
        try:
            bucket, retry = self._bucket()
            for blob in bucket.client.list_blobs(
                bucket,
                prefix=PREFIX,
                max_results=limit,
                start_offset=start or None,
                end_offset=end,
                timeout=self._timeout,
                retry=retry,
            ):
                yield SpooledObject(blob.name, int(blob.generation), blob.time_created)
        except STORAGE_ERRORS as exc:
            raise SpoolUnavailable(f"spool list failed: {error_class(exc)}") from None

    def read(self, item: SpooledObject) -> bytes | None:
        """The object's content, or None when it is gone (another drainer took it)."""
        try:
            bucket, retry = self._bucket()
            blob = bucket.blob(item.name)
            return bytes(
                blob.download_as_bytes(
                    if_generation_match=item.generation, timeout=self._timeout, retry=retry
                )
            )
        except (NotFound, PreconditionFailed):
            return None
        except STORAGE_ERRORS as exc:
            raise SpoolUnavailable(f"spool read failed: {error_class(exc)}") from None

    def delete(self, item: SpooledObject) -> None:
        try:
            bucket, retry = self._bucket()
            bucket.blob(item.name).delete(
                if_generation_match=item.generation, timeout=self._timeout, retry=retry
            )
        except (NotFound, PreconditionFailed):
            return  # another drainer deleted it after its own confirmed publish
        except STORAGE_ERRORS as exc:
            raise SpoolUnavailable(f"spool delete failed: {error_class(exc)}") from None
