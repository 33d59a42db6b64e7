"""The Makefile is the newcomer's entry point: it parses without warnings (a target defined twice
silently loses a recipe), and every `make …` the docs tell people to run exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _make(*argv: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed (Debian/Ubuntu: apt-get install make)")
    return subprocess.run(
        [make, "-n", *argv], cwd=REPO, capture_output=True, text=True, check=False, timeout=60
    )


def test_the_makefile_parses_without_warnings() -> None:
    result = _make("help")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr


def test_every_make_command_in_the_docs_is_a_target() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    mentioned = {
        (doc.name, target)
        for doc in documents
        for target in re.findall(r"`make ([a-z][\w-]*)", doc.read_text())
    }
    assert mentioned
    missing = sorted((doc, target) for doc, target in mentioned if target not in targets)
    assert missing == []
