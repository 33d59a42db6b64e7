"""Property-based fuzz of ingest's HTTP surface, driven by its OpenAPI document.

Random methods, paths, headers, bodies, content types and sizes never produce a 5xx or a status the
document does not list, and nothing is ever published without valid credentials.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.ingest_fakes import METHODS, TOKEN, RecordingPublisher, asgi, ingest_app

REPO = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = yaml.safe_load((REPO / "ingest/openapi.yaml").read_text())
EXAMPLES = int(os.environ.get("HOOKPIPE_FUZZ_EXAMPLES", "10000"))

DOC_PATHS = [p.replace("{source}", "leadprosper") for p in SPEC["paths"]]
DOC_CONTENT_TYPES = list(SPEC["paths"]["/webhooks/{source}"]["post"]["requestBody"]["content"])


def documented_statuses(path: str, method: str) -> set[int]:
    template = "/webhooks/{source}" if path.startswith("/webhooks/") else path
    item = SPEC["paths"].get(template)
    if item is None:  # undocumented path: the only answer is 404
        return {404}
    operation = item.get(method.lower())
    if operation is None:
        return {404, 405}
    return {int(code) for code in operation["responses"]}


paths = st.one_of(
    st.sampled_from(DOC_PATHS),
    st.sampled_from(["/webhooks/", "/webhooks/unknown", "/webhooks/leadprosper/extra", "/"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/-_%.", max_size=30).map(lambda p: "/" + p),
)
content_types = st.one_of(
    st.sampled_from(DOC_CONTENT_TYPES),
    st.sampled_from(
        [
            "text/plain",
            "application/octet-stream",
            "multipart/form-data",
            "application/json; charset=latin-1",
            "application/problem+json",
            "",
        ]
    ),
    st.text(max_size=40),
)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    json_like.map(lambda v: yaml.safe_dump(v).encode()),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode()
    ),
    st.sampled_from(
        [
            b"<lead><a>1</a></lead>",
            b"<a><b></a>",
            b'{"lp_status": "SOLD"}',
            b"<!DOCTYPE x [<!ENTITY a 'a'>]><x>&a;</x>",
            b"x" * (1024 * 1024 + 1),
        ]
    ),
)
credentials = st.sampled_from(["valid", "valid-query", "wrong", "none", "malformed"])
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def _headers(
    credential: str, content_type: str, extra: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    headers = {**extra}
    params: dict[str, str] = {}
    if content_type:
        headers["Content-Type"] = content_type
    if credential == "valid":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif credential == "valid-query":
        params["token"] = TOKEN
    elif credential == "wrong":
        headers["Authorization"] = f"Bearer {TOKEN[:-1]}X"
    elif credential == "malformed":
        headers["Authorization"] = TOKEN
    return headers, params


client = TestClient(asgi(ingest_app(publisher := RecordingPublisher())))


@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    method=st.sampled_from(METHODS),
    path=paths,
    content_type=content_types,
    body=bodies,
    credential=credentials,
    extra=st.dictionaries(
        st.sampled_from(
            [
                "X-Cloud-Trace-Context",
                "traceparent",
                "webhook-id",
                "Content-Length",
                "User-Agent",
                "X-Random",
            ]
        ),
        header_text,
        max_size=3,
    ),
)
def test_ingest_never_fails_and_never_publishes_without_credentials(
    method: str,
    path: str,
    content_type: str,
    body: bytes,
    credential: str,
    extra: dict[str, str],
) -> None:
    if "\n" in content_type or "\r" in content_type:
        content_type = ""
    extra.pop("Content-Length", None)  # a lying Content-Length is the server's to police
    headers, params = _headers(credential, content_type, extra)
    before = len(publisher.published)
    try:
        response = client.request(
            method,
            path,
            headers=headers,
            params=params,
            content=body if method not in ("GET", "HEAD") else None,
        )
    except (ValueError, UnicodeEncodeError):
        return  # the client itself refused to send it (e.g. a non-latin-1 header)
    assert response.status_code < 500, response.text
    if method != "HEAD" and response.status_code >= 400:
        assert response.json()["status"] == response.status_code
    assert response.status_code in documented_statuses(path, method) | {200}
    published = len(publisher.published) - before
    if response.status_code == 202:
        assert published == 1
        assert credential in ("valid", "valid-query")
    else:
        assert published == 0
