"""Prometheus metrics of the coordination service: ``GET /metrics`` (loopback; never proxied).

- ``azurezo_service_request_seconds{method,route,status}``: request latency by route *template*
  (``/api/v1/patients/{patient_id}``: never an identifier, never a query string);
- ``azurezo_outbox_lag_events{consumer}`` and ``azurezo_outbox_lag_seconds{consumer}``: how far each
  outbox consumer (the bot) is behind: events not acknowledged yet, and the age of the oldest one;
- ``azurezo_import_*``: the directory importer's last run, read from the file it writes
  (``ror_sync`` runs as a separate job; see ``write_import_metrics``).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordination.outbox.models import ConsumerCursor, OutboxEvent

__all__ = ["CONTENT_TYPE_LATEST", "RequestMetrics", "render", "write_import_metrics"]

# One registry for the process (the app may be created several times in one test process).
REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_SECONDS = Histogram(
    "azurezo_service_request_seconds",
    "Latency of the service's HTTP requests, by route template.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
OUTBOX_LAG_EVENTS = Gauge(
    "azurezo_outbox_lag_events",
    "Outbox events a consumer has not acknowledged yet.",
    ["consumer"],
    registry=REGISTRY,
)
OUTBOX_LAG_SECONDS = Gauge(
    "azurezo_outbox_lag_seconds",
    "Age of the oldest outbox event a consumer has not acknowledged (0: none pending).",
    ["consumer"],
    registry=REGISTRY,
)
IMPORT_METRICS_FILE = "import.prom"


class RequestMetrics:
    """ASGI middleware timing every HTTP request; the route is the matched template, or
    ``(unmatched)`` (a 404 must not create one time series per probed path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


async def _outbox_lag(session: AsyncSession) -> None:
    newest = (await session.execute(select(func.max(OutboxEvent.id)))).scalar() or 0
    now = datetime.now(UTC)
    for cursor in (await session.execute(select(ConsumerCursor))).scalars():
        OUTBOX_LAG_EVENTS.labels(cursor.consumer).set(max(newest - cursor.last_acked_id, 0))
        oldest = (
            await session.execute(
                select(func.min(OutboxEvent.created_at)).where(OutboxEvent.id > cursor.last_acked_id)
            )
        ).scalar()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        OUTBOX_LAG_SECONDS.labels(cursor.consumer).set((now - oldest).total_seconds() if oldest else 0.0)


async def render(session: AsyncSession, metrics_dir: Path | None) -> bytes:
    """The exposition text: this process's metrics, then the importer's last run (if any)."""
    await _outbox_lag(session)
    text = generate_latest(REGISTRY)
    if metrics_dir is not None:
        with contextlib.suppress(FileNotFoundError):
            text += (metrics_dir / IMPORT_METRICS_FILE).read_bytes()
    return text


def write_import_metrics(metrics_dir: Path, *, source: str, counts: dict[str, Any], ok: bool) -> None:
    """Record an import run for ``/metrics`` (Prometheus text format, written atomically)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lines = [
        "# HELP azurezo_import_last_run_timestamp_seconds When the directory import last ran.",
        "# TYPE azurezo_import_last_run_timestamp_seconds gauge",
        f'azurezo_import_last_run_timestamp_seconds{{source="{source}"}} {now}',
        "# HELP azurezo_import_last_run_success 1 when the last import succeeded.",
        "# TYPE azurezo_import_last_run_success gauge",
        f'azurezo_import_last_run_success{{source="{source}"}} {1 if ok else 0}',
        "# HELP azurezo_import_last_run_records Records of the last import, by outcome.",
        "# TYPE azurezo_import_last_run_records gauge",
    ]
    for key, value in sorted(counts.items()):
        if isinstance(value, int) and not isinstance(value, bool):
            lines.append(f'azurezo_import_last_run_records{{source="{source}",outcome="{key}"}} {value}')
    target = metrics_dir / IMPORT_METRICS_FILE
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, target)
