"""A logging filter for Synapse's log: no file name of an upload or a download reaches it.

Synapse's access log writes each request's URI (only ``access_token`` is redacted), and clients put
the professional's file name in it: ``/_matrix/media/v3/upload?filename=CR_NOM_Prénom_1940-02-03.pdf``
or ``/_matrix/client/v1/media/download/<server>/<id>/CR_NOM_Prénom.pdf``. File names of medical
documents carry patient names and birth dates (issue 6, item 7), so the filter, attached to every
handler of ``config/log.config.j2``, rewrites each record before it is written: the query string of
every media URI, any ``filename=`` parameter, and the optional file name segment of media downloads.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"

_MEDIA_PATH = r"/_matrix/(?:media/(?:r0|v1|v3)|client/v1/media)/"
_MEDIA_QUERY = re.compile(rf"({_MEDIA_PATH}[^\s?\"']*)\?[^\s\"']*")
_DOWNLOAD_NAME = re.compile(rf"({_MEDIA_PATH}download/[^/\s?\"']+/[^/\s?\"']+)/[^\s?\"']+")
_FILENAME_PARAM = re.compile(r"([?&;]filename\*?=)[^&;\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with media query strings, ``filename=`` values and download names replaced."""
    if "filename" not in text.lower() and "/media/" not in text:
        return text
    text = _MEDIA_QUERY.sub(rf"\1?{REDACTED}", text)
    text = _DOWNLOAD_NAME.sub(rf"\1/{REDACTED}", text)
    return _FILENAME_PARAM.sub(rf"\1{REDACTED}", text)


class RedactFileNames(logging.Filter):
    """Rewrite a record's message with ``redact``; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
