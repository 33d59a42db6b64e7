"""Where a spooled event lives in the spool bucket: the contract between ingest, which writes it
when Pub/Sub cannot take it, the drainer, which publishes and deletes it, and ``hookpipe trace``,
which looks for it. Pure."""

from __future__ import annotations

PREFIX = "spool/"


def object_name(event_id: str) -> str:
    """The object that holds event ``event_id`` while it waits (one per event: a second write of
    the same event finds it already there)."""
    return PREFIX + event_id


def event_id_of(name: str) -> str:
    """The event id an object of the spool holds (its name less :data:`PREFIX`)."""
    return name.removeprefix(PREFIX)
