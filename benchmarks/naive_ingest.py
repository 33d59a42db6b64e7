"""The textbook baseline for `make bench-ingest`: a synchronous Flask function (functions-framework's
default server) that checks the token and calls ``publish(...).result()`` per request."""

import hmac
import os

import flask
import functions_framework
from google.cloud.pubsub_v1 import PublisherClient

TOPIC = os.environ["BENCH_TOPIC"]
TOKEN = os.environ["BENCH_TOKEN"]
_publisher: PublisherClient | None = None


@functions_framework.http
def naive(request: flask.Request) -> tuple[dict[str, str], int]:
    global _publisher
    if _publisher is None:  # created in the serving process (gRPC does not survive fork)
        _publisher = PublisherClient()
    presented = request.headers.get("Authorization", "")
    if not hmac.compare_digest(presented.encode(), f"Bearer {TOKEN}".encode()):
        return {"error": "unauthorized"}, 401
    message_id = _publisher.publish(TOPIC, request.get_data()).result()
    return {"message_id": message_id}, 202
