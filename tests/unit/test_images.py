"""The container images, read from their Dockerfiles (no Docker engine runs here): base pinned
by digest, build tools hash-pinned and left in the build stage, non-root at run time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "worker", "ops")  # ops: the reconcile job's image
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def stages(service: str) -> tuple[dict[str, str], list[list[str]]]:
    """The Dockerfile's ARG defaults, and its lines split into stages at each FROM."""
    args: dict[str, str] = {}
    found: list[list[str]] = []
    for line in (REPO / f"{service}/Dockerfile").read_text().splitlines():
        if line.startswith("ARG ") and "=" in line and not found:
            name, value = line[4:].split("=", 1)
            args[name] = value
        elif line.startswith("FROM "):
            found.append([line])
        elif found and line and not line.startswith("#"):
            found[-1].append(line)
    return args, found


def base_image(args: dict[str, str], from_line: str) -> str:
    image = from_line.split()[1]
    return args.get(image.strip("${}"), image) if image.startswith("${") else image


@pytest.mark.parametrize("service", SERVICES)
def test_every_base_is_pinned_by_digest(service: str) -> None:
    args, found = stages(service)
    assert len(found) >= 2, "multi-stage: a build stage and a runtime stage"
    for stage in found:
        assert DIGEST.search(base_image(args, stage[0])), stage[0]


def test_both_services_start_from_the_same_base() -> None:
    bases = set()
    for service in SERVICES:
        args, found = stages(service)
        bases.add(base_image(args, found[-1][0]))
    assert len(bases) == 1, bases


@pytest.mark.parametrize("service", SERVICES)
def test_build_tools_are_hash_pinned_and_stay_in_the_build_stage(service: str) -> None:
    _, found = stages(service)
    build, runtime = "\n".join(found[0]), "\n".join(found[-1])
    assert "pip install --no-cache-dir --require-hashes -r /tmp/uv-requirements.txt" in build
    assert "uv sync --frozen --no-dev --package hookpipe-" + service in build
    assert "pip install" not in runtime
    assert "COPY --from=build /app/.venv /app/.venv" in runtime  # the environment, not uv
    pins = (REPO / "infra/images/uv-requirements.txt").read_text()
    assert re.search(r"^uv==[\d.]+ \\$", pins, re.M)
    assert "--hash=sha256:" in pins


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root(service: str) -> None:
    _, found = stages(service)
    users = [line.split()[1] for line in found[-1] if line.startswith("USER ")]
    assert users, "no USER in the runtime stage"
    assert users[-1] not in ("root", "0")
