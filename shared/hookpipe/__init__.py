"""hookpipe's shared contract: what ingest and worker both import, and the operator CLI."""
