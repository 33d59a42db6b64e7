"""hookpipe's operator tooling: the ``hookpipe`` CLI (dead letters, the archive, subscriptions,
smoke test) and the Pub/Sub topology it and the local stack create. Never in a service image."""
