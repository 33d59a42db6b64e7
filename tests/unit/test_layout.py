"""The boundaries README's layout table promises, checked the way an import linter would.

Between packages: ``hookpipe`` (shared) is the contract and imports no other hookpipe package;
the services never import the operator tooling or each other; ``hookpipe_ops`` imports neither
service; neither service's installed dependencies include the operator CLI or its terminal
library. Within packages (``MODULE_RULES``): a use case imports ports, never an adapter or an I/O
library; protocol code has no I/O; the contract imports no runtime module; the operator CLI's
click and rich stay in ``cli/``; and ``hookpipe`` imports no package its pyproject does not
declare. Each rule is also shown to catch the import it forbids."""

from __future__ import annotations

import ast
import re
import sys
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


def _imports(source: str, filename: str = "<module>") -> set[str]:
    """Every absolute module name ``source`` imports, lazy imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from google.cloud import bigquery` imports google.cloud.bigquery.
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


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


# (what the rule says, the modules it covers (paths relative to the repository; a directory
# covers every module below it), import prefixes they must never import, modules exempt)
type Rule = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
IO_LIBRARIES = ("psycopg", "psycopg_pool", "google.cloud", "google.api_core", "requests", "grpc")
MODULE_RULES: list[Rule] = [
    (
        "the worker's use case knows only ports",
        tuple(
            f"worker/hookpipe_worker/{m}.py"
            for m in (
                "process",
                "writer",
                "rows",
                "delivery",
                "ports",
                "dead_letters",
                "errors",
            )
        ),
        (
            "hookpipe_worker.sinks",
            "hookpipe_worker.bootstrap",
            "hookpipe_worker.app",
            "hookpipe.bigquery",
            *IO_LIBRARIES,
        ),
        (),
    ),
    (
        "ingest's protocol code has no I/O",
        tuple(f"ingest/hookpipe_ingest/{m}.py" for m in ("accept", "auth", "sources", "errors")),
        (
            "hookpipe_ingest.publisher",
            "hookpipe_ingest.spool",
            "hookpipe_ingest.keeper",
            "hookpipe_ingest.drain",
            "hookpipe_ingest.bootstrap",
            "hookpipe_ingest.app",
            *IO_LIBRARIES,
        ),
        (),
    ),
    (
        "the contract is pure: no runtime module, no I/O",
        tuple(
            f"shared/hookpipe/{m}.py"
            for m in (
                "event",
                "payload",
                "sources",
                "mapping",
                "problems",
                "errors",
                "deadletters",
                "spool",
                "text",
            )
        ),
        (
            "hookpipe.batching",
            "hookpipe.logging",
            "hookpipe.tracing",
            "hookpipe.http",
            "hookpipe.settings",
            "hookpipe.bigquery",
            *IO_LIBRARIES,
        ),
        (),
    ),
    (
        "the operator CLI's click and rich stay in cli/; operations never import the CLI",
        ("ops/hookpipe_ops",),
        ("click", "rich", "hookpipe_ops.cli"),
        ("ops/hookpipe_ops/cli",),
    ),
]


def _modules(paths: tuple[str, ...], exempt: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for path in (REPO / p for p in paths):
        assert path.exists(), f"{path} is gone: fix MODULE_RULES"
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [m for m in found if not str(m.relative_to(REPO)).startswith(exempt)]


def _broken(imports: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in imports if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("rule", MODULE_RULES, ids=[rule[0] for rule in MODULE_RULES])
def test_modules_keep_their_layer(rule: Rule) -> None:
    _, paths, forbidden, exempt = rule
    crossing = {
        str(m.relative_to(REPO)): broken
        for m in _modules(paths, exempt)
        if (broken := _broken(_imports(m.read_text(), str(m)), forbidden))
    }
    assert crossing == {}, f"{rule[0]}: {crossing}"


@pytest.mark.parametrize(
    ("rule", "line"),
    [
        (MODULE_RULES[0], "from hookpipe_worker.sinks.archive import DeadLetterArchive"),
        (MODULE_RULES[0], "from hookpipe_worker.sinks.current_state import CurrentStateTable"),
        (MODULE_RULES[0], "import psycopg"),
        (MODULE_RULES[1], "from hookpipe_ingest.publisher import PubSubPublisher"),
        (MODULE_RULES[2], "from hookpipe.tracing import parse_trace"),
        (MODULE_RULES[3], "import click"),
    ],
)
def test_each_rule_catches_the_import_it_forbids(rule: Rule, line: str) -> None:
    """A rule that could not fail would guard nothing: each one, fed the import it forbids."""
    assert _broken(_imports("def lazy():\n    " + line), rule[2]) != []


# The import name of each package a `hookpipe` module may import, by the distribution that
# provides it; a new one is added here and to shared/pyproject.toml together.
SHARED_DISTRIBUTIONS = {
    "cloudevents": "cloudevents",
    "defusedxml": "defusedxml",
    "pydantic": "pydantic",
    "pydantic_settings": "pydantic-settings",
    "google.cloud.bigquery": "google-cloud-bigquery",
    "google.auth": "google-auth",
}


def _declared(pyproject: dict[str, object]) -> set[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower() for spec in specs}


def test_shared_imports_only_what_it_declares() -> None:
    declared = _declared(tomllib.loads((REPO / "shared/pyproject.toml").read_text()))
    undeclared: dict[str, set[str]] = {}
    for module in sorted(PACKAGES["hookpipe"].rglob("*.py")):
        for name in _imports(module.read_text(), str(module)):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "hookpipe":
                continue
            distribution = next(
                (
                    d
                    for i, d in SHARED_DISTRIBUTIONS.items()
                    if name == i or name.startswith(i + ".")
                ),
                None,
            )
            if distribution is None or distribution not in declared:
                undeclared.setdefault(name, set()).add(module.name)
    assert undeclared == {}, (
        f"hookpipe imports packages shared/pyproject.toml does not declare: {undeclared}"
    )


README = (REPO / "README.md").read_text()


@pytest.mark.parametrize(
    ("row", "folder"),
    [
        ("ingest/", "ingest/hookpipe_ingest"),
        ("worker/", "worker/hookpipe_worker"),
        ("worker/", "worker/hookpipe_worker/sinks"),
        ("ops/", "ops/hookpipe_ops"),
        ("shared/", "shared/hookpipe"),
    ],
)
def test_readmes_layout_table_names_every_module(row: str, folder: str) -> None:
    """A module the layout table does not name is one a newcomer cannot place."""
    [line] = [x for x in README.splitlines() if x.startswith(f"| `{row}` |")]
    modules = sorted(p.name for p in (REPO / folder).glob("*.py") if p.name != "__init__.py")
    assert [m for m in modules if f"`{m}`" not in line] == []
