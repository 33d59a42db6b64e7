"""The GitHub Actions workflows, checked offline: they follow GitHub's schemas (SchemaStore's,
vendored by check-jsonschema), every action is pinned by commit SHA, every job is bounded and
least-privileged, deploy smoke-tests before and after promotion, and every variable or secret
they read is one docs/deploy.md tells the operator to set."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
VENDORED = resources.files("check_jsonschema") / "builtin_schemas/vendor"


def load(path: Path) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); the schema wants the string.
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return dict(data)


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_follows_githubs_workflow_schema(path: Path) -> None:
    schema = json.loads((VENDORED / "github-workflows.json").read_text())
    jsonschema.validate(load(path), schema)


def test_dependabot_config_follows_its_schema() -> None:
    schema = json.loads((VENDORED / "dependabot.json").read_text())
    jsonschema.validate(yaml.safe_load((REPO / ".github/dependabot.yml").read_text()), schema)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_sha_with_the_version_beside(path: Path) -> None:
    uses = re.findall(r"uses: (\S+)(.*)", path.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), f"{action}: no version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_jobs_are_bounded_and_least_privileged(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 30, name
        assert set(job.get("permissions", {}).items()) <= {
            ("contents", "read"),
            ("id-token", "write"),
        }, name
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_deploy_smoke_tests_before_promoting_and_after_with_automatic_rollback() -> None:
    names = [
        step.get("name", step.get("uses", ""))
        for step in steps(load(REPO / ".github/workflows/deploy.yml"))
    ]
    order = [
        "Deploy tagged revisions without traffic",
        "Smoke test the tagged ingest revision",
        "Promote to 100% and tag stable",
        "Smoke test the promoted pipeline (new ingest and new worker)",
        "Roll back if the promoted pipeline failed its smoke test",
    ]
    assert [n for n in names if n in order] == order
    deploy = load(REPO / ".github/workflows/deploy.yml")
    by_name = {s.get("name"): s for s in steps(deploy)}
    for smoke in order[1], order[3]:
        assert "hookpipe smoke" in by_name[smoke]["run"]
    assert by_name[order[4]]["if"] == "failure() && steps.promoted.outcome == 'failure'"


def test_pull_requests_plan_read_only_and_only_main_applies() -> None:
    jobs = load(REPO / ".github/workflows/infra.yml")["jobs"]
    assert "pull_request" in jobs["plan"]["if"]
    assert "environment" not in jobs["plan"]  # its OIDC subject is the pull_request one
    plan_runs = " ".join(s.get("run", "") for s in jobs["plan"]["steps"])
    assert "plan -input=false -lock=false" in plan_runs
    assert "apply" not in plan_runs
    assert jobs["apply"]["environment"] == "production"
    assert jobs["apply"]["if"] == "github.event_name == 'push'"


def test_every_variable_and_secret_is_documented() -> None:
    deploy_doc = (REPO / "docs/deploy.md").read_text()
    used = {
        name
        for path in WORKFLOWS
        for name in re.findall(r"\$\{\{\s*(?:vars|secrets)\.(\w+)", path.read_text())
    }
    assert used
    assert {name for name in used if f"`{name}`" not in deploy_doc} == set()
