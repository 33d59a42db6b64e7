"""The one way hookpipe makes a BigQuery client: the worker, the local stack and ``hookpipe
smoke`` alike. Needs google-cloud-bigquery (a dependency of the worker and of hookpipe-ops);
ingest never imports this module."""

from __future__ import annotations

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery


def bigquery_client(project_id: str, endpoint: str | None = None) -> bigquery.Client:
    """Application Default Credentials in Google Cloud; with ``endpoint`` (the local emulator's
    URL), anonymous requests to it."""
    if endpoint is None:
        return bigquery.Client(project=project_id)
    return bigquery.Client(
        project=project_id,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )
