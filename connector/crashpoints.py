"""Named crash points for the crash tests.

When the environment variable ``CONNECTOR_CRASH_AT`` names a point, the process kills itself
with SIGKILL the first time it passes that point: no ``finally`` block, no flush, exactly what
a power cut or an OOM kill does. Unset (always, in production), a crash point costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "CONNECTOR_CRASH_AT"
POINTS = ("after_record", "before_send", "after_send")


def crash_point(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
