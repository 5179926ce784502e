"""`azurezo --log-format json`: one JSON object per line and per event, in every process."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from pathlib import Path

import pytest
import yaml

from azurezo_cli import logs
from azurezo_cli.home import init_home
from azurezo_cli.synapse_config import render_synapse_config


def _capture(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.emit(record)
    return stream.getvalue()


def test_json_formatter_writes_one_line_per_event_with_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("coordination.x", logging.ERROR, __file__, 1, "a\nb %s", ("c",), None)
        record.exc_info = sys.exc_info()
    out = _capture(logs.JsonFormatter(), record)
    lines = out.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR" and entry["logger"] == "coordination.x"
    assert entry["message"] == "a\nb c"
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_the_format_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "json")
    assert logs.log_format() == "json"
    config = logs.uvicorn_log_config()
    assert config is not None
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)  # valid for uvicorn's dictConfig
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "text")
    assert logs.log_format() == "text" and logs.uvicorn_log_config() is None


def test_synapse_logs_json_with_its_own_formatter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "json")
    home, _ = init_home(tmp_path / "home", profile="test")
    render_synapse_config(home)
    config = yaml.safe_load(home.synapse_log_config.read_text())
    assert config["formatters"]["precise"] == {"class": "synapse.logging.JsonFormatter"}
    assert config["handlers"]["console"]["filters"] == ["redact_file_names"]
    from synapse.logging import JsonFormatter

    record = logging.LogRecord("synapse.access", logging.INFO, __file__, 1, "GET /x", (), None)
    assert json.loads(_capture(JsonFormatter(), record))["log"] == "GET /x"
