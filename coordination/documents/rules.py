"""Pure rules of documents: who sees a document, and safe download names (categories and visibilities
are ``coordination.vocab.DocumentCategory`` / ``DocumentVisibility``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from urllib.parse import quote


def can_see(
    *,
    national_id: str,
    structure_ids: Collection[str],
    uploader_national_id: str,
    visibility: str,
    audience: Iterable[tuple[str | None, str | None]],
) -> bool:
    """Whether an *authorised circle member* (``national_id``, working at ``structure_ids``) may see a
    document; the caller checks circle membership.

    ``audience`` holds (national_id, structure_id) of the chosen members: a professional sees it when
    named, and so does everyone working at a chosen structure. The uploader always sees it.
    """
    if uploader_national_id == national_id or visibility == "cercle":
        return True
    return any(
        (nid is not None and nid == national_id) or (sid is not None and sid in structure_ids)
        for nid, sid in audience
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\"\\/;]")


def content_disposition(title: str, extension: str) -> str:
    """An ``attachment`` header naming the file after its title, with the *detected* extension.

    The ASCII ``filename`` is stripped to ``[A-Za-z0-9._-]`` (no path, no quote, no header
    injection); ``filename*`` (RFC 6266 / 5987) keeps the accents for browsers that support it.
    """
    folded = unicodedata.normalize("NFKD", title)
    ascii_name = _UNSAFE.sub("_", folded.encode("ascii", "ignore").decode()).strip("._-")[:80]
    ascii_name = (ascii_name or "document") + extension
    utf8_name = _CONTROL.sub("_", title).strip()[:80] or "document"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(utf8_name + extension)}"
