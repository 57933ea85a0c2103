"""The directory transport: each message becomes one ``.eml`` file in a folder.

Files are written atomically (a temporary file in the same folder, then a rename), and named
after the message's UID, SEQUENCE, METHOD and Message-ID: delivering the same message twice
rewrites the same file instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from connector.ports import Envelope
from mapping.errors import TransientDeliveryError


class DirectoryTransport:
    name = "directory"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def filename(self, envelope: Envelope) -> str:
        digest = hashlib.sha256(envelope.message_id.encode()).hexdigest()[:12]
        uid = hashlib.sha256(envelope.uid.encode()).hexdigest()[:8]
        return f"{uid}-{envelope.sequence:04d}-{envelope.method.lower()}-{digest}.eml"

    def send(self, envelope: Envelope) -> str:
        target = self.path / self.filename(envelope)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=self.path)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(envelope.mime)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransientDeliveryError(
                detail=f"cannot write to {self.path}: {exc.strerror}"
            ) from exc
        return target.name

    def close(self) -> None:
        return None
