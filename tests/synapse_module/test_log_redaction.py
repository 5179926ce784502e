"""The log filter of Synapse's log config: no upload or download file name survives it."""

from __future__ import annotations

import logging

import pytest

from synapse_module.log_redaction import RedactFileNames, redact

ACCESS_LINE = (
    "127.0.0.1 - 8008 - {@a:azurezo.test} Processed request: 0.010sec/0.001sec ru=(0.0, 0.0) "
    'db=(0.0/0.0/1) 42B 200 "POST /_matrix/media/v3/upload?filename=CR_NOM_Pr%C3%A9nom_1940-02-03.pdf '
    'HTTP/1.1" "python-httpx/0.28" [0 dbevts]'
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "/_matrix/media/v3/upload?filename=CR_NOM_Pr%C3%A9nom_1940-02-03.pdf",
            "/_matrix/media/v3/upload?<redacted>",
        ),
        (
            "/_matrix/client/v1/media/download/azurezo.test/AbCd/CR_NOM.pdf?allow_redirect=true",
            "/_matrix/client/v1/media/download/azurezo.test/AbCd/<redacted>?<redacted>",
        ),
        (
            "/_matrix/media/v3/download/azurezo.test/AbCd/CR_NOM.pdf",
            "/_matrix/media/v3/download/azurezo.test/AbCd/<redacted>",
        ),
        (
            "/_matrix/media/v3/upload/azurezo.test/AbCd?filename=NOM.pdf",
            "/_matrix/media/v3/upload/azurezo.test/AbCd?<redacted>",
        ),
        ("/other?x=1&filename=NOM.pdf", "/other?x=1&filename=<redacted>"),
        ("/_matrix/client/v3/sync?since=s1", "/_matrix/client/v3/sync?since=s1"),
        (
            "/_matrix/client/v1/media/download/azurezo.test/AbCd",
            "/_matrix/client/v1/media/download/azurezo.test/AbCd",
        ),
    ],
)
def test_redact_removes_file_names_and_keeps_the_rest(uri: str, expected: str) -> None:
    assert redact(uri) == expected


def test_filter_rewrites_the_formatted_access_line() -> None:
    record = logging.LogRecord(
        "synapse.access.http.8008", logging.INFO, __file__, 1, "%s", (ACCESS_LINE,), None
    )
    assert RedactFileNames().filter(record) is True
    message = record.getMessage()
    assert "CR_NOM" not in message and "1940" not in message
    assert "/_matrix/media/v3/upload?<redacted> HTTP/1.1" in message
