"""Vocabulary codes without accents (``à_faire`` -> ``a_faire``): old rows stay readable.

The mapping is frozen here (a migration never follows later code); ``test_migrations`` checks that
every target is a code of today's ``coordination.vocab`` and that old data reads with the new codes.

Revision ID: c3_vocabulary_codes
Revises: b2_audit_append_only
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3_vocabulary_codes"
down_revision: str | None = "b2_audit_append_only"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES: dict[tuple[str, str], dict[str, str]] = {
    ("tasks", "status"): {"à_faire": "a_faire", "terminée": "terminee", "annulée": "annulee"},
    ("task_assignees", "status"): {"à_faire": "a_faire", "terminée": "terminee", "annulée": "annulee"},
    ("dac_requests", "status"): {
        "envoyée": "envoyee",
        "clôturée": "cloturee",
        "refusée": "refusee",
        "annulée": "annulee",
    },
    ("dac_requests", "urgency"): {"très_urgente": "tres_urgente"},
    ("dac_requests", "decision"): {"acceptée": "acceptee", "réorientée": "reorientee", "refusée": "refusee"},
    ("patients", "identity_status"): {"récupérée": "recuperee", "validée": "validee", "qualifiée": "qualifiee"},
    ("patients", "consent_mode"): {
        "écrit": "ecrit",
        "électronique": "electronique",
        "représentant légal": "representant_legal",
    },
    ("patients", "identity_document_type"): {
        "CNI": "cni",
        "titre de séjour": "titre_de_sejour",
        "livret de famille": "livret_de_famille",
        "extrait d'acte de naissance": "extrait_acte_de_naissance",
    },
    ("patients", "discharge_reason"): {
        "décès": "deces",
        "déménagement": "demenagement",
        "fin de prise en charge": "fin_de_prise_en_charge",
    },
}


def _rename(forward: bool) -> None:
    for (table, column), mapping in RENAMES.items():
        for old, new in mapping.items():
            src, dst = (old, new) if forward else (new, old)
            op.execute(
                sa.text(f"UPDATE {table} SET {column} = :dst WHERE {column} = :src").bindparams(
                    src=src, dst=dst
                )
            )


def upgrade() -> None:
    _rename(forward=True)


def downgrade() -> None:
    _rename(forward=False)
