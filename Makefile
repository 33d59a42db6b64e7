# hookpipe: two commands for a newcomer, `make run` and `make test` (README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# uv must never download an interpreter (our machines cannot): use the Python 3.13 found here.
export UV_PYTHON_DOWNLOADS := never
PYTHON313 = $(shell scripts/find-python313)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help install run test unit lint typecheck infra-check pytest bench-ingest bench-worker bench-recovery bench-spool bench-drain bench-reconcile bench-trace \
        bench-bigquery lock \
        bigquery-emulator-lock clean

help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

# --compile-bytecode, as in the images: where PYTHONDONTWRITEBYTECODE is set (this machine kind,
# the images) nothing else writes .pyc files, and every process start compiled every module.
$(VENV)/.synced: uv.lock pyproject.toml shared/pyproject.toml ingest/pyproject.toml worker/pyproject.toml ops/pyproject.toml devstack/pyproject.toml
	@command -v uv >/dev/null 2>&1 || { echo "hookpipe: installing uv $(UV_VERSION) (pip install uv==$(UV_VERSION))"; \
	  python3 -m pip install -q "uv==$(UV_VERSION)" || { echo "hookpipe: could not install uv; see https://docs.astral.sh/uv/getting-started/installation/"; exit 1; }; }
	@py="$(PYTHON313)"; [ -n "$$py" ] || exit 1; UV_PYTHON="$$py" uv sync --frozen --all-packages --compile-bytecode
	@touch $@

install: $(VENV)/.synced ## Install the project and its dev tools into .venv (from uv.lock)

run: install ## Start the whole pipeline locally on 127.0.0.1 (Ctrl-C stops it)
	@exec $(PY) -m hookpipe_devstack run

lint: install ## ruff (lint and format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy --strict on all source
	$(VENV)/bin/mypy

pytest: install ## The test suite alone (starts and stops the local stack itself)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

CHECKOV_VERSION := 3.3.30
ZIZMOR_VERSION := 1.32.0

# actionlint is not run: its PyPI package downloads the binary from GitHub while it builds.
infra-check: install ## checkov on infra/terraform and zizmor on the workflows: zero findings
	@py="$(PYTHON313)"; uvx -q --python "$$py" --from "checkov==$(CHECKOV_VERSION)" checkov \
	  -d infra/terraform --framework terraform --quiet --compact --skip-download
	@py="$(PYTHON313)"; uvx -q --python "$$py" "zizmor==$(ZIZMOR_VERSION)" --offline .github/workflows

unit: lint typecheck ## The fast lane: lint, types and the unit tests (no stack)
	$(VENV)/bin/pytest -q tests/unit

test: lint typecheck infra-check pytest ## Everything CI runs: lint, types, checkov, unit, e2e, fault and fuzz suites

bench-ingest: install ## Ingest throughput/latency vs the emulator's publish ceiling and a naive baseline
	$(PY) -m benchmarks.ingest

bench-worker: install ## Worker throughput/latency with group commit vs one write per message (BASELINE=dir: against another checkout, PROFILE=1: CPU per stage)
	$(PY) -m benchmarks.worker $(if $(BASELINE),--baseline $(BASELINE)) $(if $(PROFILE),--profile) $(if $(ROUNDS),--rounds $(ROUNDS))

bench-bigquery: install ## insertAll against the Storage Write API on the BigQuery emulator
	$(PY) -m benchmarks.bigquery_write

bench-spool: install ## Ingest with and without the spool, while Pub/Sub is paused, and the time to drain it
	$(PY) -m benchmarks.spool

bench-drain: install ## The spool drainer on 10k and 100k spooled events: time and peak RSS (BASELINE=dir: against another checkout)
	$(PY) -m benchmarks.drain_backlog $(if $(BASELINE),--baseline $(BASELINE))

bench-reconcile: install ## hookpipe reconcile over a day of 10,000 leads (1% missing) against the API stand-in's rate limit
	$(PY) -m benchmarks.reconcile

bench-trace: install ## How long hookpipe trace takes to answer (a lead with a dozen events, 100k others), against the CLI's start-up
	$(PY) -m benchmarks.trace

bench-recovery: install ## How soon the worker's Postgres pool serves again after an outage, vs psycopg_pool's default
	$(PY) -m benchmarks.pool_recovery

lock: ## Re-resolve uv.lock after changing a pyproject.toml
	UV_PYTHON="$(PYTHON313)" uv lock

bigquery-emulator-lock: ## Re-resolve the BigQuery emulator's hashed requirements
	uv pip compile -q --python-version 3.13 --generate-hashes \
	  devstack/bigquery-emulator/requirements.in -o devstack/bigquery-emulator/requirements.txt

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) .hookpipe .pytest_cache .mypy_cache .ruff_cache
