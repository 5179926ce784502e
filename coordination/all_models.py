"""Imports every domain's models so ``Base.metadata`` is complete (Alembic, test schemas).

Add a line when a domain gets tables.
"""

from coordination.agenda import models as agenda_models
from coordination.audit import models as audit_models
from coordination.circle import models as circle_models
from coordination.dac_requests import models as dac_requests_models
from coordination.directory import models as directory_models
from coordination.documents import models as documents_models
from coordination.evaluations import models as evaluations_models
from coordination.idempotency import models as idempotency_models
from coordination.outbox import models as outbox_models
from coordination.patients import models as patients_models
from coordination.plans import models as plans_models
from coordination.rooms import models as rooms_models
from coordination.signup import models as signup_models
from coordination.syntheses import models as syntheses_models
from coordination.tasks import models as tasks_models
from coordination.timeline import models as timeline_models
from coordination.web import models as web_models

__all__ = [
    "agenda_models",
    "audit_models",
    "circle_models",
    "dac_requests_models",
    "directory_models",
    "documents_models",
    "evaluations_models",
    "idempotency_models",
    "outbox_models",
    "patients_models",
    "plans_models",
    "rooms_models",
    "signup_models",
    "syntheses_models",
    "tasks_models",
    "timeline_models",
    "web_models",
]
