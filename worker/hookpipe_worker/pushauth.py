"""Authenticate Pub/Sub push requests by their OIDC token.

Pub/Sub signs a Google ID token for the push subscription's service account. google-auth checks
the signature, expiry, issuer and audience; the ``email`` claim (which google-auth does not check)
must be the configured push service account, with ``email_verified``. Google's certificates are
cached and refetched only when they expire or an unknown key id appears.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import google.auth.exceptions
from google.auth import jwt
from google.auth.transport.requests import Request as GoogleAuthRequest

from hookpipe_worker.errors import PushAuthUnavailable, PushForbidden, PushUnauthorized

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CERTS_TTL_SECONDS = 3600.0
CertsFetcher = Callable[[], Mapping[str, str]]


class PushAuthenticator(Protocol):
    async def verify(self, headers: Mapping[str, str]) -> None: ...


class NoPushAuth:
    """For the local emulator, which sends no token. Never use in production."""

    async def verify(self, headers: Mapping[str, str]) -> None:
        return None


# Google's public keys for the ID tokens it signs, as PEM certificates by key id (the URL
# google-auth's own id_token module verifies against; only its fetch helper is private).
GOOGLE_OAUTH2_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def fetch_google_certs(url: str = GOOGLE_OAUTH2_CERTS_URL) -> Mapping[str, str]:
    """Google's certificates, through google-auth's public transport."""
    response = GoogleAuthRequest()(url, method="GET", timeout=10)
    if response.status != 200:
        raise google.auth.exceptions.TransportError(f"GET {url}: {response.status}")
    try:
        certs = json.loads(response.data)
    except ValueError:
        raise google.auth.exceptions.TransportError("Google's certificates are not JSON") from None
    if not isinstance(certs, dict):
        raise google.auth.exceptions.TransportError("Google's certificates are not an object")
    return {str(k): str(v) for k, v in certs.items()}


class OidcPushAuth:
    def __init__(
        self,
        audience: str,
        service_account: str,
        fetch_certs: CertsFetcher = fetch_google_certs,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audience = audience
        self._service_account = service_account
        self._fetch_certs = fetch_certs
        self._monotonic = monotonic
        self._certs: Mapping[str, str] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _current_certs(self, key_id: str | None) -> Mapping[str, str]:
        stale = self._monotonic() - self._fetched_at > CERTS_TTL_SECONDS
        if stale or (key_id is not None and key_id not in self._certs):
            async with self._lock:
                # A burst of requests with a new key id refetches once, not once each.
                if self._monotonic() - self._fetched_at > 60 or stale:
                    try:
                        self._certs = await asyncio.to_thread(self._fetch_certs)
                    except google.auth.exceptions.TransportError as exc:
                        raise PushAuthUnavailable(
                            f"cannot fetch Google certificates: {exc}"
                        ) from None
                    self._fetched_at = self._monotonic()
        return self._certs

    async def verify(self, headers: Mapping[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise PushUnauthorized("push request has no Bearer token")
        try:
            header = jwt.decode_header(token)
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            raise PushUnauthorized("push token is not a JWT") from None
        # Anyone can send a header: a key id that is not a string names no key (it was a
        # TypeError, a 500, when it met the certificate map).
        kid = header.get("kid") if isinstance(header, dict) else None
        certs = await self._current_certs(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token, certs=dict(certs), audience=self._audience, clock_skew_in_seconds=10
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise PushUnauthorized(f"push token rejected: {exc}") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise PushForbidden("push token issuer is not Google")
        if claims.get("email") != self._service_account or claims.get("email_verified") is not True:
            raise PushForbidden("push token is not from the push service account")
