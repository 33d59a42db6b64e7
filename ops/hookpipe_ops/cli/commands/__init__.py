"""The ``hookpipe`` command groups, one module each."""
