"""``azurezo bot run``: the coordination bot in the foreground (``azurezo up`` starts it as a child)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from azurezo_cli import logs
from azurezo_cli.home import LOOPBACK, Home

if TYPE_CHECKING:
    from coordination_bot.runner import BotConfig

app = typer.Typer(
    help="Robot de coordination (lancé par `azurezo up` ; utile sous un gestionnaire de services).",
    no_args_is_help=True,
)


def bot_config(home: Home) -> BotConfig:
    """The bot's settings for this instance (a ``coordination_bot.runner.BotConfig``)."""
    from coordination_bot.runner import BotConfig

    return BotConfig(
        homeserver=home.synapse_url,
        user_id=home.bot_user_id,
        password=home.bot_password,
        service_url=home.service_url,
        internal_secret=home.secrets.internal_api_secret,
        state_dir=home.bot_dir,
        health_host=LOOPBACK,
        health_port=home.bot_port,
    )


def health_url(home: Home) -> str:
    return f"http://{LOOPBACK}:{home.bot_port}/health"


@app.command("run")
def run(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", help="Journal détaillé (niveau DEBUG).")] = False,
) -> None:
    """Lance le robot de coordination au premier plan (Synapse et le service doivent tourner).

    Son état (appareil, jeton, clés de chiffrement, clés de signature croisée) est gardé dans
    <home>/bot/ et réutilisé à chaque démarrage ; Ctrl-C l'arrête sans le déconnecter.
    """
    from coordination_bot.runner import BotError, run_bot
    from coordination_bot.state import StateError

    home: Home = ctx.obj
    logs.configure(logging.DEBUG if verbose else logging.INFO)
    # nio logs event contents at DEBUG/INFO in places, httpx logs URLs with their query string (a
    # searched patient's name): both at WARNING, so no message text or name reaches the log.
    logging.getLogger("nio").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = bot_config(home)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def announce(bot: object) -> None:
            typer.echo(f"Robot de coordination : {home.bot_user_id} prêt.", err=True)

        await run_bot(config, stop, on_ready=announce)

    try:
        asyncio.run(main())
    except (BotError, StateError) as exc:
        typer.echo(f"Erreur : {exc}", err=True)
        raise typer.Exit(1) from None
