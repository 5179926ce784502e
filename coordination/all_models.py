"""Imports every domain's models so ``Base.metadata`` is complete (Alembic, test schemas).

Add a line when a domain gets tables.
"""

from coordination.audit import models as audit_models
from coordination.directory import models as directory_models
from coordination.events import models as events_models

__all__ = ["audit_models", "directory_models", "events_models"]
