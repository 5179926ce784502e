"""The fixed vocabularies of the service: one ``Vocabulary`` (a ``StrEnum``) each, code + French label.

API codes are ASCII without accents (``a_faire``), stable, and what the database stores; labels carry
the accents and are what people read (dashboard, bot, error messages). Clients may send any spelling
of a code or its label ("À faire", "A_FAIRE", "a faire"): ``_missing_`` folds case, accents and
separators, so a bot command or a form never fails on typography. Codes that an earlier version stored
with accents are renamed by the migration ``c3_vocabulary_codes``.

Add a vocabulary here (not a ``Literal`` plus a label dict in a domain) so the OpenAPI schema, the
dashboard and the bot all read the same list.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Self, TypeVar


def fold(value: str) -> str:
    """A comparable form of a code or label: lower case, no accents, ``_`` between words."""
    folded = unicodedata.normalize("NFKD", value.strip().lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = folded.replace("'", " ").replace("’", " ").replace("-", " ").replace("_", " ")
    return "_".join(folded.split())


class Vocabulary(StrEnum):
    """A code with its French label: ``TaskStatus.A_FAIRE.label == "À faire"``."""

    label: str

    def __new__(cls, code: str, label: str) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.label = label
        return member

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        wanted = fold(value)
        for member in cls:
            if fold(member.value) == wanted or fold(member.label) == wanted:
                return member
        return None

    @classmethod
    def labels(cls) -> dict[str, str]:
        """``{code: label}`` in declaration order (for select boxes and help texts)."""
        return {m.value: m.label for m in cls}


V = TypeVar("V", bound=Vocabulary)


def parse(vocabulary: type[V], value: str) -> V:
    """``vocabulary(value)`` (any spelling of a code or label; ``ValueError`` otherwise), typed for mypy,
    which reads the two-argument ``__new__`` as the constructor."""
    return vocabulary(value)  # type: ignore[call-arg]


# --- tasks ---------------------------------------------------------------------------------------


class TaskType(Vocabulary):
    CONCERTATION_PLURIPROFESSIONNELLE = (
        "concertation_pluriprofessionnelle",
        "Concertation pluriprofessionnelle",
    )
    VISITE = ("visite", "Visite")
    APPEL = ("appel", "Appel")
    EVALUATION = ("evaluation", "Évaluation")
    SOINS = ("soins", "Soins")
    RENDEZ_VOUS = ("rendez_vous", "Rendez-vous")
    ADMINISTRATIF = ("administratif", "Administratif")
    AUTRE = ("autre", "Autre")


class TaskStatus(Vocabulary):
    A_FAIRE = ("a_faire", "À faire")
    EN_COURS = ("en_cours", "En cours")
    TERMINEE = ("terminee", "Terminée")
    ANNULEE = ("annulee", "Annulée")


OPEN_TASK_STATUSES = (TaskStatus.A_FAIRE, TaskStatus.EN_COURS)


class TaskPriority(Vocabulary):
    BASSE = ("basse", "Basse")
    NORMALE = ("normale", "Normale")
    HAUTE = ("haute", "Haute")


# --- documents -----------------------------------------------------------------------------------


class DocumentCategory(Vocabulary):
    ORDONNANCE = ("ordonnance", "Ordonnance")
    COMPTE_RENDU = ("compte_rendu", "Compte rendu")
    LETTRE_DE_LIAISON = ("lettre_de_liaison", "Lettre de liaison")
    LETTRE_DE_SORTIE = ("lettre_de_sortie", "Lettre de sortie")
    RESULTAT_BIOLOGIE = ("resultat_biologie", "Résultat de biologie")
    IMAGERIE = ("imagerie", "Imagerie")
    PHOTO = ("photo", "Photo")
    EVALUATION = ("evaluation", "Évaluation")
    ADMINISTRATIF = ("administratif", "Document administratif")
    AUTRE = ("autre", "Autre")


class DocumentVisibility(Vocabulary):
    CERCLE = ("cercle", "Tout le cercle de soins habilité")
    RESTREINTE = ("restreinte", "Membres choisis (et l'auteur)")


# --- DAC requests --------------------------------------------------------------------------------


class RequestStatus(Vocabulary):
    BROUILLON = ("brouillon", "Brouillon")
    ENVOYEE = ("envoyee", "Envoyée")
    EN_COURS = ("en_cours", "En cours")
    CLOTUREE = ("cloturee", "Clôturée")
    REFUSEE = ("refusee", "Refusée")
    ANNULEE = ("annulee", "Annulée")


class Urgency(Vocabulary):
    NORMALE = ("normale", "Normale")
    URGENTE = ("urgente", "Urgente")
    TRES_URGENTE = ("tres_urgente", "Très urgente")


class Decision(Vocabulary):
    ACCEPTEE = ("acceptee", "Acceptée")
    REORIENTEE = ("reorientee", "Réorientée")
    REFUSEE = ("refusee", "Refusée")
    INFORMATION = ("information", "Information donnée")


# --- patients (identity vigilance) ---------------------------------------------------------------


class IdentityStatus(Vocabulary):
    """RNIV identity statuses; any of homonyme / douteuse / fictive keeps it ``provisoire``."""

    PROVISOIRE = ("provisoire", "Provisoire")
    RECUPEREE = ("recuperee", "Récupérée")
    VALIDEE = ("validee", "Validée")
    QUALIFIEE = ("qualifiee", "Qualifiée")


class ConsentMode(Vocabulary):
    ORAL = ("oral", "Oral")
    ECRIT = ("ecrit", "Écrit")
    ELECTRONIQUE = ("electronique", "Électronique")
    REPRESENTANT_LEGAL = ("representant_legal", "Représentant légal")


class IdentityDocumentType(Vocabulary):
    """Documents the RNIV accepts to validate an identity (for a minor: livret de famille or birth
    certificate, with a parent's ID). A driving licence or a health card is not one of them."""

    PASSEPORT = ("passeport", "Passeport")
    CNI = ("cni", "Carte nationale d'identité")
    TITRE_DE_SEJOUR = ("titre_de_sejour", "Titre de séjour")
    LIVRET_DE_FAMILLE = ("livret_de_famille", "Livret de famille")
    EXTRAIT_ACTE_DE_NAISSANCE = ("extrait_acte_de_naissance", "Extrait d'acte de naissance")


class DischargeReason(Vocabulary):
    DECES = ("deces", "Décès")
    DEMENAGEMENT = ("demenagement", "Déménagement")
    FIN_DE_PRISE_EN_CHARGE = ("fin_de_prise_en_charge", "Fin de prise en charge")
    HOSPITALISATION = ("hospitalisation", "Hospitalisation")
    AUTRE = ("autre", "Autre")


class SignupStatus(Vocabulary):
    """Where a request for an account stands (``/inscription``, issue 13)."""

    EN_ATTENTE = ("en_attente", "En attente de validation")
    VALIDEE = ("validee", "Validée, en attente d'activation")
    REFUSEE = ("refusee", "Refusée")
    ACTIVEE = ("activee", "Compte activé")


# --- evaluations, PPCS plan, timeline (issue 14) -------------------------------------------------


class EvaluationStatus(Vocabulary):
    BROUILLON = ("brouillon", "Brouillon")
    SIGNEE = ("signee", "Signée")


class PlanStatus(Vocabulary):
    EN_COURS = ("en_cours", "En cours")
    CLOS = ("clos", "Clos")


class PlanActionStatus(Vocabulary):
    A_FAIRE = ("a_faire", "À faire")
    EN_COURS = ("en_cours", "En cours")
    REALISEE = ("realisee", "Réalisée")
    ABANDONNEE = ("abandonnee", "Abandonnée")


OPEN_PLAN_ACTION_STATUSES = (PlanActionStatus.A_FAIRE, PlanActionStatus.EN_COURS)


class PatientEventKind(Vocabulary):
    HOSPITALISATION = ("hospitalisation", "Hospitalisation")
    SORTIE_HOSPITALISATION = ("sortie_hospitalisation", "Sortie d'hospitalisation")
    PASSAGE_URGENCES = ("passage_urgences", "Passage aux urgences")
    ENTREE_ETABLISSEMENT = ("entree_etablissement", "Entrée en établissement")
    CHUTE = ("chute", "Chute")
    AUTRE = ("autre", "Autre événement")


class TimelineKind(Vocabulary):
    EVALUATION = ("evaluation", "Évaluation")
    PLAN = ("plan", "Plan personnalisé (PPCS)")
    DEMANDE = ("demande", "Demande au DAC")
    EVENEMENT = ("evenement", "Événement")
    TACHE = ("tache", "Tâche réalisée")
    DOCUMENT = ("document", "Document ajouté")
    SITUATION = ("situation", "Situation complexe")
    RENDEZ_VOUS = ("rendez_vous", "Rendez-vous")


# --- agenda --------------------------------------------------------------------------------------


class AgendaOwnerKind(Vocabulary):
    PROFESSIONNEL = ("professionnel", "Professionnel")
    STRUCTURE = ("structure", "Structure")
    RESSOURCE = ("ressource", "Service ou ressource d'une structure")


class AgendaAudience(Vocabulary):
    """Who may see an agenda's free/busy, or book in it (its managers always may)."""

    ANNUAIRE = ("annuaire", "Tous les professionnels de l'annuaire")
    MES_STRUCTURES = ("mes_structures", "Les professionnels de la structure de l'agenda")
    PERSONNE = ("personne", "Personne (seulement les gestionnaires)")


class EventCategory(Vocabulary):
    CONSULTATION = ("consultation", "Consultation")
    TELECONSULTATION = ("teleconsultation", "Téléconsultation")
    VISITE_DOMICILE = ("visite_domicile", "Visite à domicile")
    CONCERTATION = ("concertation", "Concertation")
    REUNION_EQUIPE = ("reunion_equipe", "Réunion d'équipe")
    INDISPONIBILITE = ("indisponibilite", "Indisponibilité")
    AUTRE = ("autre", "Autre")


class AppointmentStatus(Vocabulary):
    PROPOSE = ("propose", "Proposé (à confirmer)")
    RESERVE = ("reserve", "Réservé")
    ANNULE = ("annule", "Annulé")
    EFFECTUE = ("effectue", "Effectué")
    ABSENT = ("absent", "Patient non venu")
