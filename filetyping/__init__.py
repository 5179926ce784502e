"""File typing: what an upload really is, and whether it may be stored (one policy for all).

Shared by the Synapse module (every stored media), the coordination service (document uploads)
and the bot. A leaf package: it imports the standard library and its own libraries (olefile,
oletools, pikepdf, defusedxml), never a package of AZUREZO, so each front-end can use it alone.
"""

from filetyping.policy import (
    ALLOWED_KINDS,
    DEFAULT_MAX_UPLOAD_BYTES,
    FileKind,
    Refusal,
    Verdict,
    classify,
    classify_path,
    too_large_reason,
)

__all__ = [
    "ALLOWED_KINDS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FileKind",
    "Refusal",
    "Verdict",
    "classify",
    "classify_path",
    "too_large_reason",
]
