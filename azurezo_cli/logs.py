"""Log format of every AZUREZO process: ``text`` (default) or ``json`` (``azurezo --log-format json``):
one JSON object per line and per event, for a log collector.

The choice travels to the children of ``azurezo up`` in ``AZUREZO_LOG_FORMAT``; Synapse's
log.config uses Synapse's own JSON formatter. The fields are the same as in text logs (time, level,
logger, message, exception): messages carry identifiers, never a patient's name or a message text.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any, Literal

LOG_FORMAT_ENV = "AZUREZO_LOG_FORMAT"
LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_format() -> LogFormat:
    return "json" if os.environ.get(LOG_FORMAT_ENV, "text").lower() == "json" else "text"


class JsonFormatter(logging.Formatter):
    """One JSON line per record: ``time`` (UTC ISO 8601), ``level``, ``logger``, ``message``
    (and ``exception`` when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    """The root logger of a process: one stream handler in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format() == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def uvicorn_log_config() -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for JSON logs (None: uvicorn's default text format)."""
    if log_format() != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "azurezo_cli.logs.JsonFormatter"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {"uvicorn": {"handlers": [], "propagate": True}, "uvicorn.error": {"propagate": True}},
    }
