"""The activation e-mail: composed in French, sent over SMTP (``aiosmtplib``) when configured."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from coordination.errors import ErrCode, Unavailable
from coordination.settings import Settings

logger = logging.getLogger(__name__)


def activation_message(
    *, settings: Settings, to: str, display_name: str, url: str, hours: int
) -> EmailMessage:
    """The e-mail carrying the single-use activation link (no health data, no password)."""
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = to
    message["Subject"] = "Activez votre compte AZUREZO"
    message.set_content(
        f"Bonjour {display_name},\n\n"
        "Votre demande de compte sur AZUREZO, la messagerie sécurisée des professionnels de la région, "
        "a été acceptée.\n\n"
        f"Pour choisir votre mot de passe et activer votre compte, ouvrez ce lien (valable {hours} heures, "
        f"une seule fois) :\n\n{url}\n\n"
        "Si vous n'avez pas demandé de compte, ignorez ce message : rien ne sera activé.\n\n"
        "— AZUREZO\n"
    )
    return message


async def send(*, settings: Settings, message: EmailMessage) -> None:
    """Send ``message``; ``Unavailable`` (French) when the SMTP server refuses or cannot be reached."""
    assert settings.smtp_host is not None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=20,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        logger.warning("activation e-mail not sent (%s)", type(exc).__name__)
        raise Unavailable(
            "Le courriel d'activation n'a pas pu être envoyé (serveur de messagerie injoignable) : "
            "la demande reste validée ; renvoyez le lien plus tard depuis la liste des inscriptions.",
            errcode=ErrCode.UNAVAILABLE,
        ) from exc
