"""AZUREZO's Synapse module: only directory professionals register, log in, invite and join;
uploads are accepted by their real content.

``AzurezoModule`` is imported lazily so that ``synapse_module.filetypes`` (pure, also used by the
coordination service) can be imported without importing Synapse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_module.module import AzurezoModule

__all__ = ["AzurezoModule"]


def __getattr__(name: str) -> Any:
    if name == "AzurezoModule":
        from synapse_module.module import AzurezoModule

        return AzurezoModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
