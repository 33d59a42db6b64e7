"""Table-driven tests of each authentication scheme with a fixed clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hookpipe.sources import SourceConfig
from hookpipe_ingest.auth import WebhookRequest, verify
from hookpipe_ingest.errors import Unauthenticated
from hookpipe_ingest.sources import resolve_secrets
from standardwebhooks.webhooks import Webhook

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
BODY = b'{"lp_lead_id":"1","lp_status":"SOLD"}'
OLD, NEW = "old-token-0123456789abcdef", "new-token-0123456789abcdef"


def _source(auth: dict[str, Any], secret: str) -> Any:
    config = SourceConfig.model_validate({"event_type": "t", "auth": auth})
    return resolve_secrets("s", config, {auth["secret_env"]: secret})


def _request(
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: bytes = BODY,
    now: datetime = NOW,
) -> WebhookRequest:
    return WebhookRequest(
        "s", body, {k.lower(): v for k, v in (headers or {}).items()}, query or {}, now
    )


TOKEN = {"scheme": "token", "secret_env": "T"}
ROTATING = f"{OLD}@{(NOW + timedelta(hours=1)).isoformat()},{NEW}"
EXPIRED = f"{OLD}@{(NOW - timedelta(seconds=1)).isoformat()},{NEW}"


@pytest.mark.parametrize(
    ("secret", "request_", "error"),
    [
        (NEW, _request({"Authorization": f"Bearer {NEW}"}), None),
        (NEW, _request({"Authorization": f"bearer {NEW}"}), None),
        (NEW, _request(query={"token": NEW}), None),
        (ROTATING, _request({"Authorization": f"Bearer {OLD}"}), None),  # old, not yet expired
        (ROTATING, _request({"Authorization": f"Bearer {NEW}"}), None),  # new
        (EXPIRED, _request({"Authorization": f"Bearer {OLD}"}), "expired"),
        (EXPIRED, _request({"Authorization": f"Bearer {NEW}"}), None),
        (NEW, _request(), "no token"),
        (NEW, _request({"Authorization": f"Bearer {NEW}x"}), "does not match"),
        (NEW, _request({"Authorization": NEW}), "is not 'Bearer <token>'"),
        (NEW, _request({"Authorization": "Basic abc"}), "is not 'Bearer <token>'"),
        (NEW, _request(query={"token": "nope-nope-nope-nope"}), "does not match"),
        # A wrong header is not rescued by a right query token: the header is what was meant.
        (
            NEW,
            _request({"Authorization": "Bearer wrong-wrong-wrong"}, {"token": NEW}),
            "does not match",
        ),
    ],
)
def test_token_scheme(secret: str, request_: WebhookRequest, error: str | None) -> None:
    source = _source(TOKEN, secret)
    if error is None:
        verify(source, request_)
    else:
        with pytest.raises(Unauthenticated, match=error):
            verify(source, request_)


def test_token_errors_never_contain_the_presented_token() -> None:
    source = _source(TOKEN, NEW)
    with pytest.raises(Unauthenticated) as info:
        verify(source, _request({"Authorization": "Bearer secret-looking-value-123"}))
    assert "secret-looking-value-123" not in str(info.value)
    assert NEW not in str(info.value)


def test_custom_token_header_without_scheme() -> None:
    auth = {**TOKEN, "header": "X-LP-Token", "header_scheme": None, "query_param": None}
    source = _source(auth, NEW)
    verify(source, _request({"X-LP-Token": NEW}))
    with pytest.raises(Unauthenticated, match="no token"):
        verify(source, _request(query={"token": NEW}))


SW_SECRET_OLD = "whsec_" + base64.b64encode(b"old-secret-key-bytes-0123456789").decode()
SW_SECRET_NEW = "whsec_" + base64.b64encode(b"new-secret-key-bytes-0123456789").decode()
SW = {"scheme": "standard-webhooks", "secret_env": "SW"}


def _sw_headers(
    secret: str, at: datetime, body: bytes = BODY, msg_id: str = "msg_1"
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


@pytest.mark.parametrize(
    ("secrets", "headers", "body", "error"),
    [
        (SW_SECRET_NEW, _sw_headers(SW_SECRET_NEW, NOW), BODY, None),
        (f"{SW_SECRET_OLD} {SW_SECRET_NEW}", _sw_headers(SW_SECRET_OLD, NOW), BODY, None),
        (f"{SW_SECRET_OLD},{SW_SECRET_NEW}", _sw_headers(SW_SECRET_NEW, NOW), BODY, None),
        (SW_SECRET_NEW, _sw_headers(SW_SECRET_NEW, NOW - timedelta(seconds=299)), BODY, None),
        (SW_SECRET_NEW, _sw_headers(SW_SECRET_NEW, NOW - timedelta(seconds=301)), BODY, "older"),
        (SW_SECRET_NEW, _sw_headers(SW_SECRET_NEW, NOW + timedelta(seconds=301)), BODY, "future"),
        (SW_SECRET_NEW, _sw_headers(SW_SECRET_NEW, NOW), BODY + b" ", "no webhook-signature"),
        (SW_SECRET_NEW, _sw_headers(SW_SECRET_OLD, NOW), BODY, "no webhook-signature"),
        (SW_SECRET_NEW, {"webhook-id": "msg_1"}, BODY, "are required"),
        (
            SW_SECRET_NEW,
            {**_sw_headers(SW_SECRET_NEW, NOW), "webhook-timestamp": "soon"},
            BODY,
            "not an integer",
        ),
        (
            SW_SECRET_NEW,
            {**_sw_headers(SW_SECRET_NEW, NOW), "webhook-id": "msg_2"},
            BODY,
            "no webhook-signature",
        ),
    ],
)
def test_standard_webhooks_scheme(
    secrets: str, headers: dict[str, str], body: bytes, error: str | None
) -> None:
    source = _source(SW, secrets)
    request_ = _request(headers, body=body)
    if error is None:
        verify(source, request_)
    else:
        with pytest.raises(Unauthenticated, match=error):
            verify(source, request_)


def test_standard_webhooks_accepts_any_of_several_signatures() -> None:
    good = _sw_headers(SW_SECRET_NEW, NOW)
    good["webhook-signature"] = "v1,bm90LWEtc2lnbmF0dXJl " + good["webhook-signature"]
    verify(_source(SW, SW_SECRET_NEW), _request(good))


GITHUB = {
    "scheme": "hmac",
    "secret_env": "GH",
    "signature_header": "X-Hub-Signature-256",
    "prefix": "sha256=",
}
STRIPE = {
    "scheme": "hmac",
    "secret_env": "ST",
    "signature_header": "Stripe-Signature",
    "signature_key": "v1",
    "timestamp_key": "t",
}
LEGACY = {
    "scheme": "hmac",
    "secret_env": "LG",
    "signature_header": "X-Signature",
    "algorithm": "sha1",
    "encoding": "base64",
}


def _hex(key: str, content: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(key.encode(), content, getattr(hashlib, algorithm)).hexdigest()


def _stripe(key: str, at: datetime, body: bytes = BODY) -> str:
    ts = int(at.timestamp())
    return f"t={ts},v1={_hex(key, f'{ts}.'.encode() + body)}"


@pytest.mark.parametrize(
    ("auth", "secrets", "headers", "error"),
    [
        (
            GITHUB,
            "gh-secret-0123456789abcdef",
            {"X-Hub-Signature-256": "sha256=" + _hex("gh-secret-0123456789abcdef", BODY)},
            None,
        ),
        (
            GITHUB,
            "old-gh-secret-0123456789abcdef,gh-secret-0123456789abcdef",
            {"X-Hub-Signature-256": "sha256=" + _hex("gh-secret-0123456789abcdef", BODY).upper()},
            None,
        ),
        (
            GITHUB,
            "gh-secret-0123456789abcdef",
            {"X-Hub-Signature-256": "sha256=" + _hex("other", BODY)},
            "does not match",
        ),
        (
            GITHUB,
            "gh-secret-0123456789abcdef",
            {"X-Hub-Signature-256": _hex("gh-secret-0123456789abcdef", BODY)},
            "does not start with",
        ),
        (GITHUB, "gh-secret-0123456789abcdef", {}, "is required"),
        (
            STRIPE,
            "st-secret-0123456789abcdef",
            {"Stripe-Signature": _stripe("st-secret-0123456789abcdef", NOW)},
            None,
        ),
        (
            STRIPE,
            "st-secret-0123456789abcdef",
            {"Stripe-Signature": _stripe("st-secret-0123456789abcdef", NOW) + ",v1=" + "0" * 64},
            None,
        ),
        (
            STRIPE,
            "st-secret-0123456789abcdef",
            {"Stripe-Signature": _stripe("st-secret-0123456789abcdef", NOW - timedelta(minutes=6))},
            "older",
        ),
        (
            STRIPE,
            "st-secret-0123456789abcdef",
            {"Stripe-Signature": _stripe("st-secret-0123456789abcdef", NOW + timedelta(minutes=6))},
            "future",
        ),
        (
            STRIPE,
            "st-secret-0123456789abcdef",
            {"Stripe-Signature": "v1=" + _hex("st-secret-0123456789abcdef", BODY)},
            "timestamp is missing",
        ),
        (
            LEGACY,
            "lg-secret-0123456789abcdef",
            {
                "X-Signature": base64.b64encode(
                    hmac.new(b"lg-secret-0123456789abcdef", BODY, hashlib.sha1).digest()
                ).decode()
            },
            None,
        ),
    ],
)
def test_hmac_scheme(
    auth: dict[str, Any], secrets: str, headers: dict[str, str], error: str | None
) -> None:
    source = _source(auth, secrets)
    if error is None:
        verify(source, _request(headers))
    else:
        with pytest.raises(Unauthenticated, match=error):
            verify(source, _request(headers))


def test_hmac_tampered_body_is_rejected() -> None:
    source = _source(GITHUB, "gh-secret-0123456789abcdef")
    headers = {"X-Hub-Signature-256": "sha256=" + _hex("gh-secret-0123456789abcdef", BODY)}
    with pytest.raises(Unauthenticated, match="does not match"):
        verify(source, _request(headers, body=BODY.replace(b"SOLD", b"SOLE")))


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        ({"scheme": "standard-webhooks", "secret_env": "SW"}, "whsec_"),
        ({"scheme": "standard-webhooks", "secret_env": "SW"}, "whsec_" + "c2hvcnQ="),
        (GITHUB, "x"),
        (GITHUB, "twenty-three-bytes-only"),
    ],
)
def test_signing_secrets_shorter_than_24_bytes_are_refused_at_start_up(
    auth: dict[str, Any], secret: str
) -> None:
    """An empty key would let anyone sign; the Standard Webhooks spec asks for 24 bytes."""
    from hookpipe.sources import SourceConfigError

    with pytest.raises(SourceConfigError, match="shorter than 24 bytes"):
        _source(auth, secret)


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        (
            {"scheme": "standard-webhooks", "secret_env": "SW"},
            {"webhook-id": "m", "webhook-timestamp": "\u00b2", "webhook-signature": "v1,x"},
        ),
        (STRIPE, {"Stripe-Signature": "t=\u00b2,v1=abc"}),
        (STRIPE, {"Stripe-Signature": "t=\u0661\u0662,v1=abc"}),  # Arabic-Indic digits
    ],
)
def test_non_ascii_digits_in_a_timestamp_are_a_401_not_a_crash(
    auth: dict[str, Any], headers: dict[str, str]
) -> None:
    secret = SW_SECRET_NEW if auth["scheme"] == "standard-webhooks" else "k" * 32
    with pytest.raises(Unauthenticated, match="not an integer"):
        verify(_source(auth, secret), _request(headers))


@pytest.mark.parametrize("digits", [309, 4301, 20])
@pytest.mark.parametrize("scheme", ["standard-webhooks", "stripe"])
def test_a_timestamp_of_too_many_digits_is_a_401_not_a_crash(scheme: str, digits: int) -> None:
    """309 digits overflowed float arithmetic, 4301 int(): both 500s before any signature check."""
    value = "9" * digits
    if scheme == "stripe":
        auth, secret, headers = STRIPE, "k" * 32, {"Stripe-Signature": f"t={value},v1=abc"}
    else:
        auth, secret = {"scheme": "standard-webhooks", "secret_env": "SW"}, SW_SECRET_NEW
        headers = {"webhook-id": "m", "webhook-timestamp": value, "webhook-signature": "v1,x"}
    with pytest.raises(Unauthenticated, match="over 12 digits"):
        verify(_source(auth, secret), _request(headers))
