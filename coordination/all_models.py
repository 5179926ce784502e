"""Imports every domain's models so ``Base.metadata`` is complete (Alembic, test schemas).

Add a line when a domain gets tables.
"""

from coordination.directory import models as directory_models

__all__ = ["directory_models"]
