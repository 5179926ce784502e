"""``azurezo admin``: the administrators who decide sign-up requests (``/app/admin/inscriptions``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from azurezo_cli.home import Home
from coordination.db import make_engine, make_sessionmaker
from coordination.errors import ServiceError
from coordination.signup import service as signup

app = typer.Typer(
    help="Administrateurs de la plateforme (ils valident les demandes d'inscription).", no_args_is_help=True
)

NationalId = Annotated[
    str, typer.Argument(help="Identifiant national du professionnel (RPPS 8… ou ADELI 0…).")
]


async def _run(home: Home, action: str, national_id: str | None) -> list[str] | bool:
    engine = make_engine(home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            if action == "add":
                assert national_id is not None
                return await signup.add_administrator(session=session, national_id=national_id)
            if action == "remove":
                assert national_id is not None
                return await signup.remove_administrator(session=session, national_id=national_id)
            return await signup.list_administrators(session=session)
    finally:
        await engine.dispose()


@app.command("add")
def add(ctx: typer.Context, national_id: NationalId) -> None:
    """Donne le rôle d'administrateur à un professionnel actif de l'annuaire."""
    try:
        added = asyncio.run(_run(ctx.obj, "add", national_id))
    except ServiceError as exc:
        typer.echo(f"Erreur : {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{national_id} est administrateur." if added else f"{national_id} était déjà administrateur.")


@app.command("remove")
def remove(ctx: typer.Context, national_id: NationalId) -> None:
    """Retire le rôle d'administrateur."""
    removed = asyncio.run(_run(ctx.obj, "remove", national_id))
    typer.echo(
        f"{national_id} n'est plus administrateur."
        if removed
        else f"{national_id} n'était pas administrateur."
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Liste les administrateurs (identifiants nationaux)."""
    admins = asyncio.run(_run(ctx.obj, "list", None))
    assert isinstance(admins, list)
    typer.echo(
        "\n".join(admins) if admins else "Aucun administrateur : ajoutez-en un avec `azurezo admin add`."
    )
