"""hookpipe's local stack: the real emulators and PostgreSQL, started and stopped by PID.

Used by ``make run`` (``python -m hookpipe_devstack run``) and by the test suite's session fixture.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository the stack runs from
