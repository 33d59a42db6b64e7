"""Webhook authentication schemes. Pure: (raw body, headers, query, secrets, now) → None or raise.

Verification runs over the raw bytes before any parsing. Every comparison of a presented credential
with a secret is constant-time (``hmac.compare_digest``) and tries every configured secret, so the
time taken says nothing about which secret (if any) nearly matched. Error messages name the check
that failed, never a secret, a presented token or a signature.

The ``standardwebhooks`` package is not used: its ``Webhook.verify`` reads the wall clock itself
(no ``now`` argument, so it cannot be verified with a fixed clock) and takes one secret per
instance. The scheme is fifteen lines; the tests check interoperability with that package's signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from hookpipe.sources import HmacAuth, StandardWebhooksAuth, TokenAuth
from hookpipe.text import is_ascii_digits

from hookpipe_ingest.errors import Unauthenticated
from hookpipe_ingest.sources import Source, Token


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A webhook as received: what authentication and normalization need, nothing more."""

    source: str
    body: bytes
    headers: Mapping[str, str]  # names lower-case
    query: Mapping[str, str]
    received_at: datetime

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def verify(source: Source, request: WebhookRequest) -> None:
    """Raise :class:`Unauthenticated` unless ``request`` has valid credentials for ``source``."""
    match source.config.auth:
        case TokenAuth() as auth:
            verify_token(auth, source.tokens, request)
        case StandardWebhooksAuth() as auth:
            verify_standard_webhooks(auth, [k.get_secret_value() for k in source.keys], request)
        case HmacAuth() as auth:
            verify_hmac(auth, [k.get_secret_value() for k in source.keys], request)


def _any_equal(presented: bytes, candidates: Iterable[bytes]) -> int | None:
    """Index of the candidate equal to ``presented``; compares against all of them regardless."""
    found = None
    for index, candidate in enumerate(candidates):
        if hmac.compare_digest(presented, candidate) and found is None:
            found = index
    return found


def presented_token(auth: TokenAuth, request: WebhookRequest) -> str | None:
    if auth.header is not None:
        value = request.headers.get(auth.header.lower())
        if value is not None:
            if auth.header_scheme is None:
                return value.strip()
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == auth.header_scheme.lower() and token.strip():
                return token.strip()
            raise Unauthenticated(f"{auth.header} header is not '{auth.header_scheme} <token>'")
    if auth.query_param is not None:
        return request.query.get(auth.query_param)
    return None


def verify_token(auth: TokenAuth, tokens: Iterable[Token], request: WebhookRequest) -> None:
    presented = presented_token(auth, request)
    if not presented:
        where = [f"{auth.header} header" if auth.header else "", f"?{auth.query_param}="]
        raise Unauthenticated(f"no token: send it in the {' or '.join(w for w in where if w)}")
    token_list = list(tokens)
    index = _any_equal(
        presented.encode(), (t.value.get_secret_value().encode() for t in token_list)
    )
    if index is None:
        raise Unauthenticated("token does not match any active token")
    expires_at = token_list[index].expires_at
    if expires_at is not None and request.received_at >= expires_at:
        raise Unauthenticated("token has expired")


# Unix seconds have 10 digits until the year 2286. A longer "timestamp" is not one, and must be
# refused before int() (over 4300 digits: ValueError) or float arithmetic (over 308: OverflowError).
MAX_TIMESTAMP_DIGITS = 12


def _check_timestamp(raw: str | None, request: WebhookRequest, tolerance: int) -> int:
    text = (raw or "").strip()
    # isascii: str.isdigit() accepts "²" and other Unicode digits that int() refuses.
    if not is_ascii_digits(text):
        raise Unauthenticated("signature timestamp is missing or not an integer")
    if len(text) > MAX_TIMESTAMP_DIGITS:
        raise Unauthenticated(f"signature timestamp has over {MAX_TIMESTAMP_DIGITS} digits")
    timestamp = int(text)
    skew = request.received_at.timestamp() - timestamp
    if skew > tolerance:
        raise Unauthenticated(f"signature timestamp is older than {tolerance} s")
    if skew < -tolerance:
        raise Unauthenticated(f"signature timestamp is more than {tolerance} s in the future")
    return timestamp


def verify_standard_webhooks(
    auth: StandardWebhooksAuth, keys: Iterable[str], request: WebhookRequest
) -> None:
    msg_id = request.headers.get("webhook-id")
    signature_header = request.headers.get("webhook-signature")
    if not msg_id or not signature_header:
        raise Unauthenticated("webhook-id and webhook-signature headers are required")
    timestamp = _check_timestamp(
        request.headers.get("webhook-timestamp"), request, auth.tolerance_seconds
    )
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = [
        base64.b64encode(hmac.new(k.encode("latin-1"), signed, hashlib.sha256).digest())
        for k in keys
    ]
    presented = [
        sig.encode()
        for version, _, sig in (p.partition(",") for p in signature_header.split())
        if version == "v1"
    ]
    if not any(_any_equal(p, expected) is not None for p in presented):
        raise Unauthenticated("no webhook-signature matches (tampered body or wrong secret)")


def _parse_pairs(value: str) -> list[tuple[str, str]]:
    pairs = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            pairs.append((key.strip(), val.strip()))
    return pairs


def verify_hmac(auth: HmacAuth, keys: Iterable[str], request: WebhookRequest) -> None:
    header_value = request.headers.get(auth.signature_header.lower())
    if not header_value:
        raise Unauthenticated(f"{auth.signature_header} header is required")
    raw_timestamp: str | None = None
    if auth.signature_key is not None:
        pairs = _parse_pairs(header_value)
        signatures = [v for k, v in pairs if k == auth.signature_key]
        if auth.timestamp_key is not None:
            raw_timestamp = next((v for k, v in pairs if k == auth.timestamp_key), None)
    else:
        if not header_value.startswith(auth.prefix):
            raise Unauthenticated(f"{auth.signature_header} does not start with {auth.prefix!r}")
        signatures = [header_value.removeprefix(auth.prefix).strip()]
    if auth.timestamp_header is not None:
        raw_timestamp = request.headers.get(auth.timestamp_header.lower())
    signed = request.body
    if auth.timestamp_key is not None or auth.timestamp_header is not None:
        timestamp = _check_timestamp(raw_timestamp, request, auth.tolerance_seconds)
        signed = f"{timestamp}.".encode() + request.body
    digest = getattr(hashlib, auth.algorithm)
    macs = [hmac.new(k.encode(), signed, digest).digest() for k in keys]
    if auth.encoding == "hex":
        expected = [m.hex().encode() for m in macs]
        presented = [s.lower().encode() for s in signatures]
    else:
        expected = [base64.b64encode(m) for m in macs]
        presented = [s.encode() for s in signatures]
    if not any(_any_equal(p, expected) is not None for p in presented):
        raise Unauthenticated(
            f"{auth.signature_header} does not match (tampered body or wrong secret)"
        )
