"""README's configuration table names every variable the settings classes read, and only those,
with the services that read each and its default: a setting added without a row, a row left
behind by a removed setting, a default changed in one place only, or a service that reads a
variable its row does not name (or the reverse), fails here."""

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


SERVICES: dict[str, type[CommonSettings]] = {
    "ingest": IngestSettings,
    "worker": WorkerSettings,
    "drainer": DrainSettings,
}
REQUIRED = object()  # no default: the service refuses to start without it


def _rows() -> list[tuple[list[str], set[str], list[str]]]:
    """(variables, services, defaults) per row whose variables are settings fields."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, services_cell, defaults_cell = (c.strip() for c in line.split("|")[1:4])
        names, prefix = [], ""
        for name in re.findall(r"`([A-Z_…<>]+)`", names_cell):
            if name.startswith("…"):
                names.append(prefix + name.removeprefix("…"))
            else:
                names.append(name)
                prefix = name.rsplit("_MAX_", 1)[0] if "_MAX_" in name else prefix
        if any("<" in n for n in names) or set(names) & PLATFORM:
            continue
        services = (
            set(SERVICES)
            if services_cell == "all"
            else {s.strip() for s in services_cell.split(",")}
        )
        defaults = (
            [d.strip() for d in defaults_cell.split(", ")] if len(names) > 1 else [defaults_cell]
        )
        rows.append((names, services, defaults))
    return rows


def _field(cls: type[CommonSettings], variable: str) -> object:
    prefix = str(cls.model_config.get("env_prefix", ""))
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if (alias if isinstance(alias, str) else prefix + name.upper()) == variable:
            return REQUIRED if info.is_required() else info.default
    raise KeyError(variable)


def _documented(text: str, service: str) -> object:
    """A default as the table writes it: `x`, a number, `5 MB`, unset, — (required)."""
    override = re.search(rf"\({service}:? ([^)]+)\)", text)
    if override:
        text = override.group(1)
    text = re.sub(r"\s*\(.*\)$", "", text).strip()
    if text in ("—", "required") or text.endswith("in the images"):
        return REQUIRED
    if text.startswith("unset"):
        return None
    if text.endswith(" MB"):
        return float(text.removesuffix(" MB")) * 1024 * 1024
    text = text.strip("`")
    try:
        return float(text)
    except ValueError:
        return text


def test_each_row_names_the_services_that_read_it_and_their_defaults() -> None:
    for names, services, defaults in _rows():
        if len(defaults) == 1:  # one for all of them
            defaults *= len(names)
        assert len(defaults) == len(names), f"{names}: one default each, or one for all"
        for name, default in zip(names, defaults, strict=True):
            readers = {s for s, cls in SERVICES.items() if name in _variables(cls)}
            assert readers == services, f"{name}: read by {sorted(readers)}, README {services}"
            for service in readers:
                actual = _field(SERVICES[service], name)
                if isinstance(actual, int | float) and not isinstance(actual, bool):
                    actual = float(actual)
                elif hasattr(actual, "__str__") and actual not in (None, REQUIRED):
                    actual = str(actual)
                documented = _documented(default, service)
                assert documented == actual, f"{name} ({service}): README {default!r}, {actual!r}"
