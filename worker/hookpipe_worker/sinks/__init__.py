"""Adapters for the two sinks, each created once per process."""
