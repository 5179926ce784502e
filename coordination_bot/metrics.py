"""Prometheus metrics of the bot, served on its loopback health port (``GET /metrics``).

- ``azurezo_bot_commands_total{outcome}``: messages starting with ``!`` handled (``ok``) or failed;
- ``azurezo_bot_round_trip_seconds``: from the command's server timestamp to the end of its handling
  (the reply is sent by then);
- ``azurezo_bot_undecryptable_events_total`` and ``azurezo_bot_undecryptable_pending``: events whose
  room key had not arrived, and those still waiting.

Labels never carry a room, a user or any text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = [
    "COMMANDS",
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "ROUND_TRIP",
    "UNDECRYPTABLE",
    "UNDECRYPTABLE_PENDING",
    "render",
]

REGISTRY = CollectorRegistry(auto_describe=True)
COMMANDS = Counter(
    "azurezo_bot_commands", "Commands the bot handled, by outcome.", ["outcome"], registry=REGISTRY
)
ROUND_TRIP = Histogram(
    "azurezo_bot_round_trip_seconds",
    "From a command's server timestamp to the end of its handling (reply sent).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
UNDECRYPTABLE = Counter(
    "azurezo_bot_undecryptable_events", "Events received before their room key.", registry=REGISTRY
)
UNDECRYPTABLE_PENDING = Gauge(
    "azurezo_bot_undecryptable_pending", "Events still waiting for their room key.", registry=REGISTRY
)


def render() -> bytes:
    return generate_latest(REGISTRY)
