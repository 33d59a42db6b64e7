"""Benchmarks (`make bench-ingest`, `make bench-worker`): ratios measured in one run on the same
machine, recorded in docs/benchmarks.md. Never timed assertions in tests."""
