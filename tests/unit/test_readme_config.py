"""README's configuration table names every variable the settings classes read, and only those:
a setting added without a row, or a row left behind by a removed setting, fails here."""

from __future__ import annotations

import re
from pathlib import Path

from hookpipe.settings import CommonSettings
from hookpipe_ingest.drain import DrainSettings
from hookpipe_ingest.settings import IngestSettings
from hookpipe_worker.settings import WorkerSettings

from tests.settings_variables import environment_variables

REPO = Path(__file__).resolve().parents[2]
SETTINGS: list[type[CommonSettings]] = [IngestSettings, WorkerSettings, DrainSettings]
# Read by libraries or the platform, documented in the table as such, not settings fields.
PLATFORM = {"STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "K_SERVICE", "K_REVISION"}


def _variables(cls: type[CommonSettings]) -> set[str]:
    return environment_variables(cls)


def _table() -> set[str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    found: set[str] = set()
    for row in rows:
        first_cell = row.split("|")[1]
        prefix = ""
        for name in re.findall(r"`([A-Z_…<>]+)`", first_cell):
            if name.startswith("…"):  # `HOOKPIPE_BATCH_MAX_ROWS`, `…_MAX_BYTES`: same prefix
                found.add(prefix + name.removeprefix("…"))
            else:
                found.add(name)
                prefix = name.rsplit("_MAX_", 1)[0] if "_MAX_" in name else prefix
    return found


README = (REPO / "README.md").read_text()


def test_every_setting_has_a_row() -> None:
    documented = _table()
    for cls in SETTINGS:
        missing = _variables(cls) - documented - PLATFORM - {"K_REVISION"}
        assert not missing, f"{cls.__name__}: README's configuration table lacks {sorted(missing)}"


def test_every_row_is_a_setting() -> None:
    known = set().union(*(_variables(cls) for cls in SETTINGS)) | PLATFORM
    rows = {n for n in _table() if "<" not in n}  # HOOKPIPE_<SOURCE>_TOKENS: a source's own
    assert rows <= known, f"README rows no settings class reads: {sorted(rows - known)}"
