"""hookpipe worker: Pub/Sub push endpoint writing BigQuery and Postgres rows effectively once."""
