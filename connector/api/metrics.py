"""Prometheus metrics, collected when scraped (no global registry, nothing to keep in sync).

From the state store (shared by every instance, durable):

* ``connector_messages_sent_total{method}``: messages delivered, by iTIP method;
* ``connector_messages_failed_total{method}``: failed delivery attempts, by iTIP method;
* ``connector_queue_depth{status}``: outbox messages by status (pending, sending, failed, ...);
* ``connector_sync_last_cycle_timestamp_seconds`` and ``..._duration_seconds``: the last
  cycle of the sync service (no sample before its first cycle);
* ``connector_state_store_up``: 0 when the store could not be read for this scrape.

From this process: ``connector_delivery_retries_total`` (retries after transient errors),
``connector_graph_throttled_total`` (HTTP 429 answers from Graph),
``connector_transport_events_total{event}`` (every counter the transport keeps),
``connector_deliveries_total{outcome}`` and ``connector_info{version,transport}``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from connector import __version__
from connector.app import App
from mapping.errors import ConnectorError

log = logging.getLogger("connector.api.metrics")

METHODS = ("REQUEST", "CANCEL")
QUEUE_STATUSES = ("pending", "sending", "failed", "parked")
FAILED_OUTCOMES = ("transient", "permanent", "unknown")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _seconds(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


class ConnectorCollector:
    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        up = 1.0
        messages: Mapping[tuple[str, str], int] = {}
        attempts: Mapping[tuple[str, str], int] = {}
        depth: Mapping[str, int] = {}
        last_at = last_seconds = None
        try:
            messages = app.store.message_counts()
            attempts = app.store.attempt_counts()
            depth = app.store.queue_depth()
            last_at = app.store.get("sync.last_cycle_at")
            last_seconds = app.store.get("sync.last_cycle_seconds")
        except ConnectorError as error:
            up = 0.0
            log.warning("event=metrics_store_unreadable code=%s", error.code)
        yield GaugeMetricFamily(
            "connector_state_store_up", "1 when the state store was read for this scrape", up
        )
        methods = sorted(set(METHODS) | {m for m, _ in messages} | {m for m, _ in attempts})
        sent = CounterMetricFamily(
            "connector_messages_sent", "Messages delivered, by iTIP method", labels=["method"]
        )
        failed = CounterMetricFamily(
            "connector_messages_failed",
            "Failed delivery attempts, by iTIP method",
            labels=["method"],
        )
        for method in methods:
            sent.add_metric([method], messages.get((method, "sent"), 0))
            failed.add_metric([method], sum(attempts.get((method, o), 0) for o in FAILED_OUTCOMES))
        yield sent
        yield failed
        queue = GaugeMetricFamily(
            "connector_queue_depth", "Outbox messages by status", labels=["status"]
        )
        for status in sorted(set(QUEUE_STATUSES) | set(depth)):
            queue.add_metric([status], depth.get(status, 0))
        yield queue
        stamp = _timestamp(last_at)
        if stamp is not None:
            yield GaugeMetricFamily(
                "connector_sync_last_cycle_timestamp_seconds",
                "When the last sync cycle finished (Unix time)",
                stamp,
            )
        duration = _seconds(last_seconds)
        if duration is not None:
            yield GaugeMetricFamily(
                "connector_sync_last_cycle_duration_seconds",
                "How long the last sync cycle took",
                duration,
            )
        yield from self._process()

    def _process(self) -> Iterator[Metric]:
        app = self.app
        stats = app.deliverer.stats
        yield CounterMetricFamily(
            "connector_delivery_retries",
            "Delivery retries after transient errors (this process)",
            stats.get("retries", 0),
        )
        deliveries = CounterMetricFamily(
            "connector_deliveries", "Delivery runs by outcome (this process)", labels=["outcome"]
        )
        for outcome in ("sent", "failed", "parked"):
            deliveries.add_metric([outcome], stats.get(outcome, 0))
        yield deliveries
        transport_stats = getattr(app.transport, "stats", None)
        counters = transport_stats if isinstance(transport_stats, Mapping) else {}
        yield CounterMetricFamily(
            "connector_graph_throttled",
            "HTTP 429 answers from Microsoft Graph (this process)",
            _number(counters.get("throttled")) or 0.0,
        )
        events = CounterMetricFamily(
            "connector_transport_events",
            "Counters kept by the transport (this process)",
            labels=["event"],
        )
        for name in sorted(counters):
            value = _number(counters[name])
            if value is not None:
                events.add_metric([str(name)], value)
        yield events
        info = GaugeMetricFamily(
            "connector_info",
            "Version and transport of this process",
            labels=["version", "transport"],
        )
        info.add_metric([__version__, app.config.transport], 1)
        yield info


def render_metrics(app: App) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConnectorCollector(app))
    return bytes(generate_latest(registry))
