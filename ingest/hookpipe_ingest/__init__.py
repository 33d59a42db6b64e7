"""hookpipe ingest: authenticates webhooks and publishes them to Pub/Sub as CloudEvents."""
