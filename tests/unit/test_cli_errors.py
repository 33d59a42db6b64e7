"""The operator CLI's answers when it cannot start work: what is missing and how to get it, an
exit code, never a traceback. (The commands themselves run against the emulators in
tests/e2e/test_cli.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from hookpipe_ops.cli.common import EXIT_ERROR, EXIT_USAGE
from hookpipe_ops.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No emulator, no key file, no gcloud login, no metadata server."""
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "HOOKPIPE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(REPO / "nonexistent-gcloud-config"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("HOOKPIPE_PROJECT_ID", "p")
    monkeypatch.chdir(REPO)


@pytest.mark.usefixtures("no_credentials")
def test_no_google_credentials_says_how_to_get_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "stats"]) == EXIT_ERROR
    stderr = " ".join(capsys.readouterr().err.split())  # as rich wrapped it, unwrapped
    assert "no Google credentials" in stderr
    assert "gcloud auth application-default login" in stderr
    assert "Traceback" not in stderr


@pytest.mark.usefixtures("no_credentials")
def test_an_age_in_other_digits_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """'²' passes str.isdigit(), not int(): the message names the value, not int()'s parse."""
    assert main(["dlq", "replay", "--since", "²h"]) == EXIT_USAGE
    assert "²h" in capsys.readouterr().err


@pytest.mark.usefixtures("no_credentials")
def test_a_database_url_libpq_cannot_parse_is_a_usage_error_that_never_shows_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://hookpipe:s3cr%et-pw@127.0.0.1:1/x"
    assert main(["dlq", "peek", "--from-archive", "--database-url", url]) == EXIT_USAGE
    stderr = " ".join(capsys.readouterr().err.split())
    assert "is not a PostgreSQL URL libpq can parse" in stderr
    assert "s3cr" not in stderr
