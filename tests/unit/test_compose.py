"""docker-compose.yml cannot run here (no Docker engine), so it is checked statically: against the
Compose Specification's JSON schema, and against what the code actually reads."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from hookpipe.settings import CommonSettings
from hookpipe_ingest.settings import IngestSettings
from hookpipe_ingest.sources import load_sources
from hookpipe_worker.settings import WorkerSettings

from tests.settings_variables import environment_variables

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def _setting_names(cls: type[CommonSettings]) -> set[str]:
    return environment_variables(cls)


def test_compose_file_follows_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(COMPOSE, schema)


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {
        "pubsub",
        "bigquery",
        "postgres",
        "storage",
        "setup",
        "worker",
        "ingest",
        "spool-drainer",
    }
    assert "emulators" in SERVICES["pubsub"]["image"]
    assert SERVICES["postgres"]["image"] == "postgres:17"  # the major version Supabase runs
    for service in ("ingest", "worker"):
        assert SERVICES[service]["build"]["dockerfile"] == f"{service}/Dockerfile"


@pytest.mark.parametrize(
    ("service", "settings"), [("ingest", IngestSettings), ("worker", WorkerSettings)]
)
def test_service_environment_is_what_the_code_reads(
    service: str, settings: type[CommonSettings]
) -> None:
    env = _env(service)
    known = _setting_names(settings) | {
        "PORT",
        "PUBSUB_EMULATOR_HOST",
        "GOOGLE_CLOUD_PROJECT",
        "STORAGE_EMULATOR_HOST",
    }
    if service == "ingest":
        known |= {
            s.config.auth.secret_env
            for s in load_sources(
                REPO / "infra/sources.toml", {"HOOKPIPE_LEADPROSPER_TOKENS": "x" * 16}
            ).values()
        }
    assert set(env) <= known, f"unknown variables: {set(env) - known}"
    dockerfile = (REPO / f"{service}/Dockerfile").read_text()
    image_env = set(re.findall(r"^ENV (HOOKPIPE_\w+)=", dockerfile, re.M))
    required = {
        f"HOOKPIPE_{n.upper()}" for n, f in settings.model_fields.items() if f.is_required()
    }
    assert required <= set(env) | image_env
    # The settings build from exactly this environment.
    settings.model_validate(
        {
            k.removeprefix("HOOKPIPE_").lower(): v
            for k, v in env.items()
            if k.startswith("HOOKPIPE_")
        }
        | {"sources_file": "x"}
    )


def _published_container_port(service: str) -> int:
    [mapping] = SERVICES[service]["ports"]
    return int(str(mapping).split(":")[-1])


def test_addresses_point_at_the_right_services_and_ports() -> None:
    pubsub_port = int(
        re.search(r"--host-port=0\.0\.0\.0:(\d+)", " ".join(SERVICES["pubsub"]["command"])).group(1)
    )  # type: ignore[union-attr]
    bigquery_port = int(
        re.search(r"--port=(\d+)", " ".join(SERVICES["bigquery"]["command"])).group(1)
    )  # type: ignore[union-attr]
    for service in ("setup", "worker", "ingest"):
        assert _env(service)["PUBSUB_EMULATOR_HOST"] == f"pubsub:{pubsub_port}"
    for service in ("setup", "worker"):
        assert _env(service)["HOOKPIPE_BIGQUERY_ENDPOINT"] == f"http://bigquery:{bigquery_port}"
        database = urlsplit(_env(service)["HOOKPIPE_DATABASE_URL"])
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.path == "/" + SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    for service in ("worker", "ingest"):
        assert _published_container_port(service) == int(_env(service)["PORT"])
    worker = urlsplit(_env("setup")["WORKER_URL"])
    assert (worker.hostname, worker.port) == ("worker", int(_env("worker")["PORT"]))
    assert _env("worker")["HOOKPIPE_PUSH_AUTH"] == "none"  # the emulator sends no OIDC token
    storage_port = re.search(r"-port (\d+)", " ".join(SERVICES["storage"]["command"]))
    assert storage_port
    for service in ("setup", "ingest", "spool-drainer"):
        assert _env(service)["STORAGE_EMULATOR_HOST"] == f"http://storage:{storage_port.group(1)}"
        assert _env(service)["HOOKPIPE_SPOOL_BUCKET"] == "hookpipe-spool"


def test_the_spool_drainer_runs_ingests_image_with_settings_it_reads() -> None:
    from hookpipe_ingest.drain import DrainSettings

    drainer = SERVICES["spool-drainer"]
    assert drainer["build"]["dockerfile"] == "ingest/Dockerfile"
    assert drainer["command"][:2] == ["hookpipe-spool", "drain"]
    known = _setting_names(DrainSettings) | {
        "PUBSUB_EMULATOR_HOST",
        "GOOGLE_CLOUD_PROJECT",
        "STORAGE_EMULATOR_HOST",
    }
    assert set(_env("spool-drainer")) <= known


def test_every_published_port_is_bound_to_loopback() -> None:
    """Postgres with trust auth, a worker without push auth, the emulators and a fixed dev token:
    none may be reachable from the network by default."""
    published = {
        name: [str(port) for port in service.get("ports", [])] for name, service in SERVICES.items()
    }
    assert any(published.values())
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
