"""The exception tree shared by both services.

Each service maps these (and its own subclasses) to an HTTP status in exactly one place:
``hookpipe_ingest.errors`` and ``hookpipe_worker.errors``.

    HookpipeError
    └── PayloadError            the webhook body cannot be turned into a JSON object
        ├── UnsupportedMediaType    content type is not JSON, form or XML
        └── MalformedPayload        the bytes do not parse as the declared type
    └── EnvelopeError           a Pub/Sub message is not a hookpipe CloudEvent
"""


class HookpipeError(Exception):
    """Base of every error hookpipe raises on purpose."""


class PayloadError(HookpipeError):
    """The body cannot be normalized to one JSON object."""


class UnsupportedMediaType(PayloadError):
    """The Content-Type is not one the source accepts."""


class MalformedPayload(PayloadError):
    """The body does not parse as its declared Content-Type."""


class EnvelopeError(HookpipeError):
    """A Pub/Sub message does not carry a valid hookpipe CloudEvent."""
