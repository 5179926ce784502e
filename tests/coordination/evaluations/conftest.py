"""The app of these tests reads extra evaluation forms from a directory of the test (dropped files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordination.settings import Settings


@pytest.fixture
def forms_dir(tmp_path: Path) -> Path:
    path = tmp_path / "forms"
    path.mkdir()
    return path


@pytest.fixture
def settings(database_url: str, tmp_path: Path, forms_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        synapse_url="http://127.0.0.1:9",
        server_name="azurezo.test",
        internal_api_secret="t" * 48,
        documents_dir=tmp_path / "documents",
        bot_user_id="@azurezo-bot:azurezo.test",
        evaluation_forms_dir=forms_dir,
    )
