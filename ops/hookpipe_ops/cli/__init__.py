"""``hookpipe``: the operator CLI (dead-letter inspection and replay, subscription tuning)."""
