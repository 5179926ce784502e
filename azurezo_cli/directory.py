"""``azurezo directory ...``: import the national directory (RPPS, ROR / Annuaire Santé FHIR), search it.

Mounted by ``azurezo_cli.main`` as ``azurezo directory``; ``ctx.obj`` is the instance's ``Home``, whose
``database_url`` names the coordination database.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol

import typer

from coordination.directory.rules import MASS_DEACTIVATION_RATIO

app = typer.Typer(
    help="Annuaire national des professionnels et des structures (RPPS, ROR) : import et recherche.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class _HasDatabase(Protocol):
    database_url: str
    path: Path


def _fail(message: str) -> NoReturn:
    typer.echo(f"Erreur : {message}", err=True)
    raise typer.Exit(1)


def _database_url(ctx: typer.Context) -> str:
    home: _HasDatabase | None = ctx.obj
    url = getattr(home, "database_url", None)
    if not isinstance(url, str) or not url:
        _fail("aucune instance : lancez d'abord « azurezo up » (ou précisez --home).")
    return url


def _temp_dir(ctx: typer.Context) -> Path | None:
    """``<home>/tmp``: an import's temporary files stay in the home, swept after a crash."""
    home = getattr(ctx.obj, "path", None)
    return Path(home) / "tmp" if home is not None else None


def _print_report(report: Any, ctx: typer.Context | None = None) -> None:
    for line in report.summary():
        typer.echo(line)
    home = getattr(ctx.obj, "path", None) if ctx is not None else None
    if home is not None:  # the service's /metrics shows the last run (coordination/metrics.py)
        from coordination.metrics import write_import_metrics

        counts = {
            "lines": report.lines,
            "added": report.added,
            "updated": report.updated,
            "deactivated": report.deactivated,
            "reactivated": report.reactivated,
            "rejected": report.rejected,
        }
        write_import_metrics(Path(home) / "metrics", source=report.source, counts=counts, ok=True)


AllowMassDeactivation = Annotated[
    bool,
    typer.Option(
        "--allow-mass-deactivation",
        help="Accepter qu'un import complet désactive plus de professionnels que le seuil (départs "
        "attendus) ; sans cette option, un tel import est refusé et l'annuaire reste intact.",
    ),
]
MaxDeactivationRatio = Annotated[
    float,
    typer.Option(
        "--max-deactivation-ratio",
        min=0.0,
        max=1.0,
        help="Seuil de l'import complet : part maximale des professionnels actifs de la source qu'il "
        "peut désactiver (0.05 = 5 %), au-delà de 50 personnes.",
    ),
]


@app.command("import-rpps")
def import_rpps_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="Extraction PS_LibreAcces_Personne_activite_<horodatage>.txt (séparateur « | »)."
        ),
    ],
    allow_mass_deactivation: AllowMassDeactivation = False,
    max_deactivation_ratio: MaxDeactivationRatio = MASS_DEACTIVATION_RATIO,
) -> None:
    """Importer une extraction RPPS complète : c'est un instantané du RPPS (les professionnels absents
    sont désactivés, ceux qui reviennent sont réactivés). Les lignes mal formées sont signalées avec leur
    numéro de ligne, sans arrêter l'import. Est refusé, sauf --allow-mass-deactivation, un import sans
    aucune ligne valide, ou qui désactiverait tous les professionnels actifs, ou plus de 5 % d'entre eux
    (et plus de 50) : fichier tronqué ou erroné ? Code de sortie 1 si le fichier est illisible ou
    l'import refusé ; l'annuaire reste alors intact."""
    from ror_sync.importer import MassDeactivationError, import_rpps
    from ror_sync.rpps import RppsFormatError

    url = _database_url(ctx)
    if not file.is_file():
        _fail(f"{file} : fichier introuvable.")
    try:
        report = import_rpps(
            url,
            file,
            progress=True,
            allow_mass_deactivation=allow_mass_deactivation,
            max_deactivation_ratio=max_deactivation_ratio,
            temp_dir=_temp_dir(ctx),
        )
    except RppsFormatError as exc:
        _fail(f"{exc} Rien n'a été importé.")
    except MassDeactivationError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{file} : lecture impossible ({exc.strerror or exc}) ; rien n'a été importé.")
    _print_report(report, ctx)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--since « {value} » : date invalide ; attendu AAAA-MM-JJ ou AAAA-MM-JJTHH:MM:SS+00:00.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("import-fhir")
def import_fhir_command(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Fichiers de Bundles FHIR R4 (JSON), ou URL d'un serveur FHIR (base ou recherche)."
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(
            help="Import différentiel : seulement ce qui a changé depuis cette date (AAAA-MM-JJ) ; "
            "ne désactive personne. Sans --since, l'import est un instantané complet."
        ),
    ] = None,
    allow_mass_deactivation: AllowMassDeactivation = False,
    max_deactivation_ratio: MaxDeactivationRatio = MASS_DEACTIVATION_RATIO,
) -> None:
    """Importer des Bundles FHIR du ROR ou de l'Annuaire Santé (Organization, HealthcareService,
    Location, Practitioner, PractitionerRole). Les pages suivantes (link next) sont suivies. Un import
    complet qui désactiverait trop de professionnels est refusé, comme pour import-rpps."""
    from ror_sync.fhir import FhirSourceError
    from ror_sync.importer import MassDeactivationError, import_fhir

    url = _database_url(ctx)
    since_at = _parse_since(since)
    try:
        report = import_fhir(
            url,
            list(sources),
            since=since_at,
            progress=True,
            allow_mass_deactivation=allow_mass_deactivation,
            max_deactivation_ratio=max_deactivation_ratio,
        )
    except (FhirSourceError, MassDeactivationError) as exc:
        _fail(str(exc))
    _print_report(report, ctx)


@app.command("search")
def search_command(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Début du nom et/ou du prénom, ou numéro RPPS.")],
    as_json: Annotated[bool, typer.Option("--json", help="Sortie JSON (liste d'objets).")] = False,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Nombre maximal de résultats.")] = 50,
) -> None:
    """Chercher un professionnel dans l'annuaire (accents et majuscules indifférents)."""
    url = _database_url(ctx)
    if len(text.strip()) < 2:
        _fail("tapez au moins 2 caractères du nom, du prénom ou du numéro.")
    cards = asyncio.run(_search(url, text, limit))
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in cards], ensure_ascii=False, indent=2))
        return
    if not cards:
        typer.echo(f"Aucun professionnel ne correspond à « {text} ».")
        return
    for card in cards:
        state = "" if card.active else "  [INACTIF]"
        typer.echo(
            f"{card.national_id}  {card.display_name}  — {card.profession or '?'}"
            f" ({card.profession_code or '?'}){state}"
        )
        for site in card.sites:
            where = " ".join(p for p in (site.postal_code, site.city) if p)
            typer.echo(f"    {site.name or site.structure_id or '?'}  {where}")


async def _search(url: str, text: str, limit: int) -> list[Any]:
    from coordination.db import make_engine, make_sessionmaker
    from coordination.directory import service

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await service.search_persons(session=session, text=text, limit=limit)
    finally:
        await engine.dispose()
