"""The ``!`` commands: a pure parser from a message's text to a typed command (or a French refusal).

No I/O here: the handlers (``coordination_bot.handlers``) do the work. The command table (``COMMANDS``)
is the single source for ``!aide``, the closest-command suggestion and the MSC4332 advertisement.
"""

from __future__ import annotations

import difflib
import html
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote

from coordination_bot.ids import UserId

SIGIL = "!"
# MSC4332 (open), unstable names: the state event the bot advertises, and the content block a client
# puts in a message when it sends a command in structured form.
COMMANDS_STATE_TYPE = "org.matrix.msc4332.commands"
COMMAND_CONTENT_KEYS = ("org.matrix.msc4332.command", "m.bot.command")


@dataclass(frozen=True)
class CommandSpec:
    name: str  # without the sigil, accents removed ("synthese")
    syntax: str  # what follows "!" in !aide ("tache <titre> [@pro …] [pour le JJ/MM[/AAAA]]")
    description: str
    example: str
    # MSC4332 arguments, in order: (name, type, description, required)
    arguments: tuple[tuple[str, str, str, bool], ...] = ()


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("aide", "aide", "toutes les commandes, avec un exemple", "!aide"),
    CommandSpec(
        "patient",
        "patient <3 lettres ou plus>",
        "chercher un patient par son nom (identité minimale)",
        "!patient dup",
        (("recherche", "string", "au moins 3 lettres du nom", True),),
    ),
    CommandSpec(
        "patient lier",
        "patient lier <identifiant du dossier>",
        "lier ce salon au dossier d'un patient ; ensuite « !patient » seul affiche son en-tête",
        "!patient lier 3f2a9c1e-…",
        (("dossier", "string", "identifiant du dossier", True),),
    ),
    CommandSpec(
        "patient salon",
        "patient salon [identifiant du dossier]",
        "faire créer par le robot un salon chiffré pour le patient (celui du salon, ou le dossier "
        "donné) ; ses membres suivent le cercle de soins",
        "!patient salon 3f2a9c1e-…",
        (("dossier", "string", "identifiant du dossier (facultatif dans un salon lié)", False),),
    ),
    CommandSpec(
        "tache",
        "tache <titre> [@pro …] [pour le JJ/MM[/AAAA]]",
        "créer une tâche sur le patient du salon, assignée aux professionnels mentionnés",
        "!tache Passage infirmier @paul.durand:azurezo.local pour le 12/03",
        (("titre", "string", "titre de la tâche, mentions et échéance", True),),
    ),
    CommandSpec("taches", "taches", "les tâches ouvertes du patient (ou du thème) du salon", "!taches"),
    CommandSpec("taches moi", "taches moi", "mes tâches ouvertes", "!taches moi"),
    CommandSpec(
        "fait",
        "fait <n°>",
        "clore une tâche (son numéro est donné par « !taches »)",
        "!fait 3",
        (("numero", "string", "numéro de la tâche", True),),
    ),
    CommandSpec("cercle", "cercle", "le cercle de soins du patient du salon", "!cercle"),
    CommandSpec(
        "cercle ajouter",
        "cercle ajouter @pro [rôle]",
        "ajouter un professionnel au cercle de soins (habilité)",
        "!cercle ajouter @claire.bernard:azurezo.local kinésithérapeute",
        (
            ("pro", "user_id", "le professionnel à ajouter", True),
            ("role", "string", "son rôle auprès du patient", False),
        ),
    ),
    CommandSpec(
        "cercle retirer",
        "cercle retirer @pro",
        "retirer un professionnel du cercle de soins",
        "!cercle retirer @claire.bernard:azurezo.local",
        (("pro", "user_id", "le professionnel à retirer", True),),
    ),
    CommandSpec(
        "demande",
        "demande <DAC> <motif> [urgente]",
        "adresser une demande d'appui au DAC pour le patient du salon (créée et envoyée)",
        "!demande finess:060000099 Situation complexe à domicile urgente",
        (
            ("dac", "string", "le DAC : identifiant de structure ou nom", True),
            ("motif", "string", "motif de la demande (terminé par « urgente » si urgente)", True),
        ),
    ),
    CommandSpec("demandes", "demandes", "les demandes au DAC du patient du salon et leur état", "!demandes"),
    CommandSpec(
        "dac salon",
        "dac salon [retirer] [<DAC>]",
        "(coordinateurs d'un DAC) faire de ce salon chiffré celui du DAC : les nouvelles demandes y sont "
        "annoncées ; « retirer » : revenir à un message direct à chaque coordinateur",
        "!dac salon",
        (("dac", "string", "le DAC, si vous coordonnez plusieurs DAC (finess:…)", False),),
    ),
    CommandSpec(
        "synthese",
        "synthese",
        "la synthèse du patient : identité, cercle, tâches, demandes, texte, messages marqués ❗ et ❓",
        "!synthese",
    ),
    CommandSpec(
        "synthese modifier",
        "synthese modifier <texte>",
        "remplacer le texte de synthèse du dossier (versionné)",
        "!synthese modifier Retour à domicile prévu lundi, aide-ménagère en place.",
        (("texte", "string", "le nouveau texte de synthèse", True),),
    ),
    CommandSpec(
        "plan", "plan", "les actions ouvertes du plan personnalisé (PPCS) du patient du salon", "!plan"
    ),
    CommandSpec(
        "eval", "eval", "les derniers scores des évaluations du patient du salon, avec leur date", "!eval"
    ),
    CommandSpec(
        "rdv",
        "rdv [type] [profession] [département, code postal, ville, ou « près de <commune> [N km] »]",
        "les prochains créneaux libres des agendas partagés, numérotés ; « près de Nice 15 km » : à moins "
        "de 15 km de Nice (20 km par défaut), avec la distance",
        "!rdv kiné près de Nice 15 km",
        (
            (
                "criteres",
                "string",
                "type de rendez-vous, profession, lieu ou « près de <commune> [N km] » (tous facultatifs)",
                False,
            ),
        ),
    ),
    CommandSpec(
        "rdv prendre",
        "rdv prendre <n°>",
        "réserver le créneau n° de la dernière liste « !rdv », pour le patient du salon s'il est lié",
        "!rdv prendre 2",
        (("numero", "string", "numéro du créneau", True),),
    ),
    CommandSpec(
        "agenda",
        "agenda [demain | JJ/MM]",
        "mes rendez-vous du jour (agendas que je gère et rendez-vous que j'ai pris)",
        "!agenda demain",
        (("jour", "string", "demain ou JJ/MM ; absent : aujourd'hui", False),),
    ),
)
_TOP_LEVEL = sorted({spec.name.split()[0] for spec in COMMANDS})


# --- the commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class PatientSearch:
    query: str


@dataclass(frozen=True)
class PatientLink:
    patient_ref: str


@dataclass(frozen=True)
class PatientShow:
    pass


@dataclass(frozen=True)
class PatientRoomCreate:
    patient_ref: str | None  # None: the patient of the room the command is typed in


@dataclass(frozen=True)
class TaskCreate:
    title: str
    assignees: tuple[UserId, ...]
    due: date | None


@dataclass(frozen=True)
class TaskList:
    mine: bool


@dataclass(frozen=True)
class TaskDone:
    ref: str


@dataclass(frozen=True)
class CircleShow:
    pass


@dataclass(frozen=True)
class CircleAdd:
    user_id: UserId
    role: str | None


@dataclass(frozen=True)
class CircleRemove:
    user_id: UserId


@dataclass(frozen=True)
class RequestCreate:
    dac: str
    reason: str
    urgent: bool


@dataclass(frozen=True)
class RequestList:
    pass


@dataclass(frozen=True)
class DacRoomSet:
    """``!dac salon [retirer] [<DAC>]``: this room becomes the DAC's own (or stops being)."""

    dac: str | None  # None: the one DAC the sender coordinates
    clear: bool = False


@dataclass(frozen=True)
class SynthesisShow:
    pass


@dataclass(frozen=True)
class SynthesisEdit:
    text: str


@dataclass(frozen=True)
class PlanShow:
    pdf: bool = False


@dataclass(frozen=True)
class EvaluationScores:
    pass


@dataclass(frozen=True)
class SlotSearch:
    """``!rdv``: every criterion is optional; ``category`` and ``profession_code`` are service codes."""

    category: str | None = None
    profession_code: str | None = None
    department: str | None = None
    postal_code: str | None = None
    city: str | None = None
    near: str | None = None  # a commune, as typed: the service resolves it
    within_km: int | None = None  # None: the service's default radius


@dataclass(frozen=True)
class SlotTake:
    number: int


@dataclass(frozen=True)
class AgendaDay:
    day: date


Command = (
    Help
    | PatientSearch
    | PatientLink
    | PatientShow
    | PatientRoomCreate
    | TaskCreate
    | TaskList
    | TaskDone
    | CircleShow
    | CircleAdd
    | CircleRemove
    | RequestCreate
    | RequestList
    | DacRoomSet
    | SynthesisShow
    | SynthesisEdit
    | PlanShow
    | EvaluationScores
    | SlotSearch
    | SlotTake
    | AgendaDay
)


@dataclass(frozen=True)
class Refusal:
    """A message that is a command but cannot be understood; ``message`` is French, says what to do."""

    message: str


# --- parsing ----------------------------------------------------------------------------------
# A user ID (spec "User Identifiers", historical characters allowed): @localpart:server[:port]
_USER_ID = re.compile(r"@[A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::[0-9]{1,5})?")
_DUE = re.compile(r"(?:^|\s)pour\s+le\s+(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\s*$", re.IGNORECASE)


def _fold(word: str) -> str:
    """Lower case without accents: « Tâches » and « taches » are the same command."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class _Args:
    """What follows a command's name: the raw rest, its words, the folded first word (a
    sub-command) and what follows it."""

    rest: str
    words: list[str]
    sub: str
    after_sub: str
    today: date
    mentions: Sequence[UserId]


def parse(text: str, *, today: date, mentions: Sequence[UserId] = ()) -> Command | Refusal | None:
    """Parse a message's text. ``None``: not a command (no ``!`` first). ``mentions``: users the
    message mentions (``m.mentions``), added to those written as ``@user:server`` in the text."""
    text = text.strip()
    if not text.startswith(SIGIL) or len(text) < 2 or not text[1].isalpha():
        return None
    head, _, rest = text[1:].partition(" ")
    rest = rest.strip()
    words = rest.split()
    args = _Args(
        rest=rest,
        words=words,
        sub=_fold(words[0]) if words else "",
        after_sub=rest[len(words[0]) :].strip() if words else "",
        today=today,
        mentions=mentions,
    )
    parser = _PARSERS.get(_fold(head))
    return parser(args) if parser is not None else _unknown(head)


def _parse_help(_args: _Args) -> Command | Refusal:
    return Help()


def _parse_patient(args: _Args) -> Command | Refusal:
    if args.sub == "lier":
        if not args.after_sub:
            return _missing("patient lier", "l'identifiant du dossier")
        return PatientLink(args.after_sub.split()[0])
    if args.sub == "salon":
        return PatientRoomCreate(args.after_sub.split()[0] if args.after_sub else None)
    if not args.rest:
        return PatientShow()
    if len(args.rest.replace(" ", "")) < 3:
        return Refusal("Tapez au moins 3 lettres du nom du patient, par exemple « !patient dup ».")
    return PatientSearch(args.rest)


def _parse_tasks(args: _Args) -> Command | Refusal:
    if not args.rest:
        return TaskList(mine=False)
    if args.sub == "moi" and len(args.words) == 1:
        return TaskList(mine=True)
    return Refusal("« !taches » s'utilise seul (tâches du patient du salon) ou « !taches moi » (les vôtres).")


def _parse_done(args: _Args) -> Command | Refusal:
    if not args.words:
        return _missing("fait", "le numéro de la tâche (donné par « !taches »)")
    return TaskDone(args.words[0].lstrip("#").removeprefix("n°"))


def _parse_circle(args: _Args) -> Command | Refusal:
    if not args.rest:
        return CircleShow()
    if args.sub not in ("ajouter", "retirer"):
        return Refusal(
            f"Sous-commande inconnue « {args.words[0]} » : utilisez « !cercle », "
            "« !cercle ajouter @pro [rôle] » ou « !cercle retirer @pro »."
        )
    users = _users(args.after_sub, args.mentions)
    if not users:
        return _missing(f"cercle {args.sub}", "le professionnel, mentionné (@prenom.nom:serveur)")
    if args.sub == "retirer":
        return CircleRemove(users[0])
    role = _USER_ID.sub(" ", args.after_sub).strip()
    return CircleAdd(users[0], role or None)


def _parse_request(args: _Args) -> Command | Refusal:
    words = args.words
    if len(words) < 2:
        return _missing("demande", "le DAC puis le motif")
    urgent = _fold(words[-1]) in ("urgente", "urgent")
    reason_words = words[1:-1] if urgent else words[1:]
    if not reason_words:
        return _missing("demande", "le motif")
    return RequestCreate(dac=words[0], reason=" ".join(reason_words), urgent=urgent)


def _parse_dac(args: _Args) -> Command | Refusal:
    if args.sub != "salon":
        return Refusal(
            "Commande « !dac » : tapez « !dac salon » dans le salon chiffré de votre DAC pour y recevoir "
            "les nouvelles demandes (ou « !dac salon retirer »)."
        )
    words = args.after_sub.split()
    clear = bool(words) and _fold(words[0]) == "retirer"
    rest = words[1:] if clear else words
    if len(rest) > 1:
        return Refusal("Donnez un seul DAC, par son identifiant : « !dac salon finess:060000099 ».")
    return DacRoomSet(dac=rest[0] if rest else None, clear=clear)


def _parse_requests(_args: _Args) -> Command | Refusal:
    return RequestList()


def _parse_synthesis(args: _Args) -> Command | Refusal:
    if args.sub == "modifier":
        if not args.after_sub:
            return _missing("synthese modifier", "le texte de la synthèse")
        return SynthesisEdit(args.after_sub)
    return SynthesisShow()


# Folded words of « !rdv » and what they mean (EventCategory codes; TRE_G15 profession codes).
RDV_CATEGORIES = {
    "consultation": "consultation",
    "consult": "consultation",
    "teleconsultation": "teleconsultation",
    "visite": "visite_domicile",
    "domicile": "visite_domicile",
    "concertation": "concertation",
}
RDV_PROFESSIONS = {
    "medecin": "10",
    "generaliste": "10",
    "pharmacien": "21",
    "dentiste": "40",
    "sage-femme": "50",
    "infirmier": "60",
    "infirmiere": "60",
    "ide": "60",
    "kine": "70",
    "kinesitherapeute": "70",
}
_DEPARTMENT = re.compile(r"^(?:\d{2}|2[ab]|97\d)$", re.IGNORECASE)
_POSTAL_CODE = re.compile(r"^\d{5}$")
_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})(?:/(\d{4}))?$")


# « près de Nice », « autour d'Antibes », « vers Grasse », « à 15 km de Nice », « dans un rayon de 15 km ».
_NEAR = ("pres", "autour", "proche", "vers")
_KM = re.compile(r"^(\d{1,4})(km)?$")
_RADIUS_WORDS = {"a", "moins", "de", "dans", "un", "rayon", "d'un", "d’un", "max", "maximum"}
MAX_KM = 200
_NEAR_EXAMPLE = "« !rdv kiné près de Nice 15 km »"


def _elided(folded: str) -> str | None:
    """« d'antibes » → « antibes » (the place after « près d' »); None if not elided."""
    for prefix in ("d'", "d’"):
        if folded.startswith(prefix) and len(folded) > len(prefix):
            return folded[len(prefix) :]
    return None


def _place_start(words: Sequence[str], i: int, *, after_km: bool) -> tuple[list[str], int] | None:
    """Whether a place begins at ``words[i]``: « près de », « autour d'… », « proche de », « vers » (or,
    right after a distance, « de » / « d'… »). Returns the place's first words and where it goes on."""
    folded = _fold(words[i]) if i < len(words) else ""
    following = _fold(words[i + 1]) if i + 1 < len(words) else ""
    if after_km:
        if folded == "de":
            return [], i + 1
        return ([words[i][2:]], i + 1) if _elided(folded) is not None else None
    if folded not in _NEAR:
        return None
    if following == "de":
        return [], i + 2
    if _elided(following) is not None:
        return [words[i + 1][2:]], i + 2
    return ([], i + 1) if folded == "vers" else None


def _split_near(words: Sequence[str]) -> tuple[list[str], list[str] | None, int | None]:
    """Separate « près de <commune> » and « N km » from the other criteria: (other words, the commune's
    words or None, the radius or None)."""
    rest: list[str] = []
    near: list[str] | None = None
    km: int | None = None
    collecting = False
    i = 0
    while i < len(words):
        word, folded = words[i], _fold(words[i])
        distance = _KM.match(folded)
        if distance and (distance[2] or (i + 1 < len(words) and _fold(words[i + 1]) == "km")):
            km = int(distance[1])
            i += 1 if distance[2] else 2
            spoken = near if collecting and near is not None else rest
            while spoken and _fold(spoken[-1]) in _RADIUS_WORDS:  # « à moins de », « dans un rayon de »
                spoken.pop()
            start = _place_start(words, i, after_km=True)  # « 15 km de Nice »
            collecting = start is not None
            if start is not None:
                near, i = start
            continue
        start = _place_start(words, i, after_km=False)
        if start is not None:
            (near, i), collecting = start, True
            continue
        if collecting and near is not None and folded not in RDV_CATEGORIES and folded not in RDV_PROFESSIONS:
            near.append(word)
        else:
            collecting = False  # « près de Nice kiné »: a criterion ends the place
            rest.append(word)
        i += 1
    return rest, near, km


def _criteria(words: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The type, profession, postal code and department among ``words``; the other words (a city)."""
    found: dict[str, str] = {}
    city: list[str] = []
    for word in words:
        folded = _fold(word)
        if folded in RDV_CATEGORIES and "category" not in found:
            found["category"] = RDV_CATEGORIES[folded]
        elif folded in RDV_PROFESSIONS and "profession_code" not in found:
            found["profession_code"] = RDV_PROFESSIONS[folded]
        elif _POSTAL_CODE.match(word):
            found["postal_code"] = word
        elif _DEPARTMENT.match(word):
            found["department"] = word.upper()
        else:
            city.append(word)
    return found, city


def _parse_rdv(args: _Args) -> Command | Refusal:
    if args.sub == "prendre":
        number = args.after_sub.split()[0].lstrip("#").removeprefix("n°") if args.after_sub else ""
        if not number.isdigit() or int(number) < 1:
            return _missing("rdv prendre", "le numéro du créneau (donné par « !rdv »)")
        return SlotTake(int(number))
    words, near, km = _split_near(args.words)
    if near is not None and not near:
        return Refusal(f"Après « près de », donnez une commune : {_NEAR_EXAMPLE}.")
    if km is not None and not 1 <= km <= MAX_KM:
        return Refusal(f"Rayon de {km} km : donnez entre 1 et {MAX_KM} km, par exemple {_NEAR_EXAMPLE}.")
    found, city = _criteria(words)
    place = " ".join(near) if near else None
    if place is None and km is not None:
        # « !rdv kiné Nice 15 km »: a radius makes the place the centre of the search.
        place = " ".join(city) or found.pop("postal_code", None)
        if place is None:
            return Refusal(f"Une distance se compte depuis une commune : {_NEAR_EXAMPLE}.")
        city = []
    elif place is not None and (city or "postal_code" in found):
        stray = " ".join([*city, found.get("postal_code", "")]).strip()
        return Refusal(
            f"« {stray} » en plus de « près de {place} » : donnez un seul lieu, par exemple {_NEAR_EXAMPLE}."
        )
    return SlotSearch(
        category=found.get("category"),
        profession_code=found.get("profession_code"),
        department=found.get("department"),
        postal_code=found.get("postal_code"),
        city=" ".join(city) or None,
        near=place,
        within_km=km,
    )


def _parse_agenda(args: _Args) -> Command | Refusal:
    if not args.words:
        return AgendaDay(args.today)
    if args.sub == "demain":
        return AgendaDay(date.fromordinal(args.today.toordinal() + 1))
    match = _DAY.match(args.words[0])
    if match is None:
        return Refusal("« !agenda » s'utilise seul (aujourd'hui), avec « demain » ou une date JJ/MM.")
    day, month, year = int(match[1]), int(match[2]), int(match[3] or args.today.year)
    try:
        return AgendaDay(date(year, month, day))
    except ValueError:
        return Refusal(f"Date invalide « {args.words[0]} » : écrivez-la JJ/MM, par exemple 12/03.")


_PARSERS: dict[str, Callable[[_Args], Command | Refusal]] = {
    "aide": _parse_help,
    "patient": _parse_patient,
    "tache": lambda args: _parse_task(args.rest, today=args.today, mentions=args.mentions),
    "taches": _parse_tasks,
    "fait": _parse_done,
    "cercle": _parse_circle,
    "demande": _parse_request,
    "demandes": _parse_requests,
    "dac": _parse_dac,
    "synthese": _parse_synthesis,
    "plan": lambda args: PlanShow(pdf=args.sub == "pdf"),
    "eval": lambda _args: EvaluationScores(),
    "rdv": _parse_rdv,
    "agenda": _parse_agenda,
}


def _parse_task(rest: str, *, today: date, mentions: Sequence[UserId]) -> Command | Refusal:
    assignees = _users(rest, mentions)
    remaining = re.sub(r"\s+", " ", _USER_ID.sub(" ", rest)).strip()
    due: date | None = None
    match = _DUE.search(remaining)
    if match is not None:
        day, month, year_text = int(match[1]), int(match[2]), match[3]
        year = today.year if year_text is None else int(year_text) + (2000 if len(year_text) == 2 else 0)
        try:
            due = date(year, month, day)
        except ValueError:
            return Refusal(
                f"Échéance invalide « {match[0].strip()} » : "
                "écrivez « pour le JJ/MM » ou « pour le JJ/MM/AAAA »."
            )
        if year_text is None and due < today:
            due = due.replace(year=today.year + 1)
        remaining = remaining[: match.start()].strip()
    remaining = remaining.rstrip(" :,-")
    if not remaining:
        return _missing("tache", "le titre de la tâche")
    if len(remaining) > 200:
        return Refusal("Titre trop long (200 caractères au plus) : raccourcissez-le.")
    return TaskCreate(title=remaining, assignees=assignees, due=due)


def _users(text: str, mentions: Sequence[UserId]) -> tuple[UserId, ...]:
    found = [UserId(m) for m in _USER_ID.findall(text)]
    return tuple(dict.fromkeys([*found, *mentions]))


def _spec(name: str) -> CommandSpec:
    return next(spec for spec in COMMANDS if spec.name == name)


def _missing(name: str, what: str) -> Refusal:
    spec = _spec(name)
    return Refusal(f"Il manque {what}. Syntaxe : « !{spec.syntax} », par exemple « {spec.example} ».")


def _unknown(head: str) -> Refusal:
    close = difflib.get_close_matches(_fold(head), _TOP_LEVEL, n=1, cutoff=0.5)
    hint = f" Vouliez-vous dire « !{close[0]} » ?" if close else ""
    return Refusal(f"Commande inconnue « !{head} ».{hint} Tapez « !aide » pour la liste des commandes.")


def suggestion(head: str) -> str | None:
    """The closest command name to ``head`` (for tests and help), or None."""
    close = difflib.get_close_matches(_fold(head), _TOP_LEVEL, n=1, cutoff=0.5)
    return close[0] if close else None


# --- message text -----------------------------------------------------------------------------
_PILL = re.compile(r'<a\s+href="https://matrix\.to/#/(@[^"?]+)[^"]*"\s*>.*?</a>', re.IGNORECASE | re.DOTALL)
_REPLY = re.compile(r"<mx-reply>.*?</mx-reply>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def message_text(body: str, formatted_body: str | None = None) -> str:
    """The command text of a message: pills (``matrix.to`` links) become user IDs, reply fallbacks
    are dropped (clients put the quoted message first)."""
    if formatted_body:
        text = _REPLY.sub("", formatted_body)
        text = _PILL.sub(lambda m: unquote(m[1]), text)
        text = re.sub(r"<br\s*/?>", "\n", text, flags=re.IGNORECASE)
        return html.unescape(_TAG.sub("", text)).strip()
    lines = body.splitlines()
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def structured_text(content: Mapping[str, Any]) -> str | None:
    """A command sent in MSC4332 structured form, as the equivalent text command (or None).

    Two schema revisions circulate: ``{"syntax": "tache {titre}", "arguments": {...}}`` and
    ``{"designator": ["tache"], "arguments": {...}}``; both are read.
    """
    block = next((content[k] for k in COMMAND_CONTENT_KEYS if isinstance(content.get(k), dict)), None)
    if block is None:
        return None
    arguments = block.get("arguments") if isinstance(block.get("arguments"), dict) else {}
    assert isinstance(arguments, dict)
    if isinstance(block.get("designator"), list):
        words = [str(w) for w in block["designator"]]
        spec = next((s for s in COMMANDS if s.name == " ".join(words)), None)
        order = [a[0] for a in spec.arguments] if spec else list(arguments)
        values = [_argument_text(arguments[k]) for k in order if k in arguments]
        return SIGIL + " ".join([*words, *values]).strip()
    syntax = block.get("syntax")
    if isinstance(syntax, str):
        text = re.sub(r"\{(\w+)\}", lambda m: _argument_text(arguments.get(m[1], "")), syntax)
        return SIGIL + re.sub(r"\s+", " ", text).strip().lstrip(SIGIL)
    return None


def _argument_text(value: object) -> str:
    if isinstance(value, list):
        return " ".join(_argument_text(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("id") or value.get("room_id") or value.get("event_id") or "")
    if isinstance(value, bool):
        return "oui" if value else ""
    return str(value)


def advertisement() -> dict[str, Any]:
    """The MSC4332 state event content listing every command (state_key: the bot's user ID)."""
    commands = []
    for spec in COMMANDS:
        syntax = spec.name + "".join(f" {{{a[0]}}}" for a in spec.arguments)
        commands.append(
            {
                "syntax": syntax,
                "description": spec.description,
                "arguments": {
                    name: {"type": kind, "description": text, "required": required}
                    for name, kind, text, required in spec.arguments
                },
            }
        )
    return {"sigil": SIGIL, "commands": commands}
