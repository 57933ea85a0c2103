"""Small real transports for tests: they fail on purpose, the way a mail system does."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from connector.ports import Envelope
from mapping.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError


class Scripted:
    """Raises the scripted errors in order, then accepts every message."""

    name = "scripted"

    def __init__(self, script: Iterable[DeliveryError | None] = ()) -> None:
        self.script = list(script)
        self.accepted: list[Envelope] = []
        self.calls = 0
        self.lock = threading.Lock()

    def send(self, envelope: Envelope) -> str:
        with self.lock:
            self.calls += 1
            step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        with self.lock:
            self.accepted.append(envelope)
        return f"accepted #{len(self.accepted)}"

    def close(self) -> None:
        return None


def throttled(retry_after: float | None = 1.0) -> TransientDeliveryError:
    return TransientDeliveryError(
        status=429, remote_code="ApplicationThrottled", detail="throttled", retry_after=retry_after
    )


def unavailable() -> TransientDeliveryError:
    return TransientDeliveryError(status=503, remote_code="ServiceUnavailable", detail="busy")


def forbidden() -> PermanentDeliveryError:
    return PermanentDeliveryError(status=403, remote_code="ErrorAccessDenied", detail="denied")
