"""OIDC push authentication, offline: tokens signed with a test key, certificates from a fake."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from hookpipe_worker.errors import PushUnauthorized
from hookpipe_worker.pushauth import OidcPushAuth

AUDIENCE = "https://worker.example.run.app/pubsub/push"
ACCOUNT = "hookpipe-push@project.iam.gserviceaccount.com"


def _key_and_cert(kid: str) -> tuple[crypt.RSASigner, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = crypt.RSASigner.from_string(pem, key_id=kid)
    return signer, cert.public_bytes(serialization.Encoding.PEM).decode()


SIGNER, CERT = _key_and_cert("test-kid")
OTHER_SIGNER, _ = _key_and_cert("test-kid")  # same key id, different key


def _token(signer: crypt.RSASigner = SIGNER, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        "sub": "1",
    }
    claims.update(overrides)
    return jwt.encode(signer, claims).decode()


class FakeCerts:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Mapping[str, str]:
        self.calls += 1
        return {"test-kid": CERT}


def _verify(auth: OidcPushAuth, token: str | None) -> None:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    asyncio.run(auth.verify(headers))


def test_valid_token_and_certificates_are_cached() -> None:
    certs = FakeCerts()
    auth = OidcPushAuth(AUDIENCE, ACCOUNT, fetch_certs=certs)
    for _ in range(3):
        _verify(auth, _token())
    assert certs.calls == 1


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        (None, 401, "no Bearer token"),
        ("not-a-jwt", 401, "not a JWT"),
        (_token(OTHER_SIGNER), 401, "rejected"),  # bad signature
        (_token(aud="https://elsewhere"), 401, "rejected"),  # wrong audience
        (_token(exp=int(time.time()) - 120, iat=int(time.time()) - 3720), 401, "rejected"),
        (_token(iss="https://evil.example"), 403, "issuer"),
        (_token(email="someone@else.iam.gserviceaccount.com"), 403, "push service account"),
        (_token(email_verified=False), 403, "push service account"),
    ],
)
def test_rejected_tokens(token: str | None, status: int, message: str) -> None:
    auth = OidcPushAuth(AUDIENCE, ACCOUNT, fetch_certs=FakeCerts())
    with pytest.raises(PushUnauthorized, match=message) as info:
        _verify(auth, token)
    assert info.value.status == status


@pytest.mark.parametrize("kid", [{"a": 1}, ["a"], 7])
def test_a_key_id_that_is_not_a_string_is_refused_not_a_500(kid: Any) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": kid}).encode())
    token = header.decode().rstrip("=") + "." + _token().split(".", 1)[1]
    auth = OidcPushAuth(AUDIENCE, ACCOUNT, fetch_certs=FakeCerts())
    _verify(auth, _token())  # certificates fetched and fresh: the key id is looked up in them
    with pytest.raises(PushUnauthorized, match="rejected") as info:
        _verify(auth, token)
    assert info.value.status == 401


def test_unknown_key_id_refetches_at_most_once_a_minute() -> None:
    certs = FakeCerts()
    clock = [1000.0]
    auth = OidcPushAuth(AUDIENCE, ACCOUNT, fetch_certs=certs, monotonic=lambda: clock[0])
    _verify(auth, _token())
    stranger, _ = _key_and_cert("rotated-kid")
    for _ in range(3):
        with pytest.raises(PushUnauthorized):
            _verify(auth, _token(stranger))
    assert certs.calls == 1  # within a minute of the last fetch: no refetch storm
    clock[0] += 61
    with pytest.raises(PushUnauthorized):
        _verify(auth, _token(stranger))
    assert certs.calls == 2


def test_google_certificates_are_fetched_through_the_public_transport() -> None:
    """fetch_google_certs against a local server: certificates by key id, or a TransportError
    (which the authenticator turns into 503) for an error status or a body that is not them."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import google.auth.exceptions
    from hookpipe_worker.pushauth import fetch_google_certs

    answers = {"/ok": (200, json.dumps({"k1": "PEM"}).encode()), "/down": (503, b"{}"),
               "/html": (200, b"<html>"), "/list": (200, b"[1]")}  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers[self.path]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert fetch_google_certs(base + "/ok") == {"k1": "PEM"}
        for path in ("/down", "/html", "/list"):
            with pytest.raises(google.auth.exceptions.TransportError):
                fetch_google_certs(base + path)
    finally:
        server.shutdown()
