"""AZUREZO's Synapse module: only directory professionals register, log in, invite and join;
uploads are accepted by their real content (the shared ``filetyping`` policy)."""

from synapse_module.module import AzurezoModule

__all__ = ["AzurezoModule"]
