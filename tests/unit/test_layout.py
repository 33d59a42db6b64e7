"""The package boundaries README's layout table promises, checked the way an import linter would:
``hookpipe`` (shared) is the contract and imports no other hookpipe package; the services never
import the operator tooling or each other; ``hookpipe_ops`` imports neither service; and neither
service's installed dependencies include the operator CLI or its terminal library."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "hookpipe": REPO / "shared/hookpipe",
    "hookpipe_ingest": REPO / "ingest/hookpipe_ingest",
    "hookpipe_worker": REPO / "worker/hookpipe_worker",
    "hookpipe_ops": REPO / "ops/hookpipe_ops",
    "hookpipe_devstack": REPO / "devstack/hookpipe_devstack",
}
FORBIDDEN = {
    "hookpipe": {"hookpipe_ingest", "hookpipe_worker", "hookpipe_ops", "hookpipe_devstack"},
    "hookpipe_ingest": {"hookpipe_worker", "hookpipe_ops", "hookpipe_devstack"},
    "hookpipe_worker": {"hookpipe_ingest", "hookpipe_ops", "hookpipe_devstack"},
    "hookpipe_ops": {"hookpipe_ingest", "hookpipe_worker", "hookpipe_devstack"},
}


def _imported_packages(root: Path) -> dict[str, set[str]]:
    """Top-level package of every import in every module below ``root``, lazy ones included."""
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_the_layout_allows(package: str) -> None:
    imported = _imported_packages(PACKAGES[package])
    crossing = {
        name: sorted(files) for name, files in imported.items() if name in FORBIDDEN[package]
    }
    assert crossing == {}, f"{package} imports {crossing}"


def _closure(lock: dict[str, object], root: str) -> set[str]:
    packages = {p["name"]: p for p in lock["package"]}  # type: ignore[index, union-attr]
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [d["name"] for d in packages[name].get("dependencies", [])]
    return seen


@pytest.mark.parametrize("service", ["hookpipe-ingest", "hookpipe-worker"])
def test_service_images_carry_no_operator_code(service: str) -> None:
    """What `uv sync --no-dev --package <service>` installs in the image."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    installed = _closure(lock, service)
    assert "hookpipe" in installed
    assert not {"hookpipe-ops", "rich", "hookpipe-devstack"} & installed
