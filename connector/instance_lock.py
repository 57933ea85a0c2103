"""One instance per SQLite state store.

SQLite cannot share the outbox between processes safely (no ``SKIP LOCKED``), so ``run`` takes
an exclusive ``flock`` on ``<database>.lock`` and a second instance refuses to start. The
operating system releases the lock when the process dies, even by SIGKILL. PostgreSQL stores
need no lock: instances share the work through leases and row locks.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from mapping.errors import UsageError


class SecondInstance(UsageError):
    code = "second_instance"


class InstanceLock:
    def __init__(self, state_url: str) -> None:
        url = make_url(state_url)
        self.path: Path | None = None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self.path = (
                Path(str(url.database)).resolve().with_name(Path(str(url.database)).name + ".lock")
            )
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise SecondInstance(detail=f"pid {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
