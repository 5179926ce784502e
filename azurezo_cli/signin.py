"""How professionals sign in: single sign-on (OpenID Connect) and the terms of use.

- **Single sign-on**: ``azurezo init --oidc-issuer … --oidc-client-id … --oidc-client-secret-file …``
  stores the provider in azurezo.json (``Home.sso``); ``config/homeserver.yaml.j2`` renders Synapse's
  ``oidc_providers`` with AZUREZO's mapping provider (``synapse_module.sso``), which binds the
  verified national id to the directory. ``--no-password-login`` leaves SSO as the only way in.
- **Terms of use**: Synapse's ``user_consent``. The French policy is a versioned file of
  ``config/terms/`` (``<version>.html``; the highest version is the current one). A professional
  must accept the current version before sending anything (Synapse answers ``M_CONSENT_NOT_GIVEN``
  with the link, and sends a server notice); Synapse records the version accepted
  (``users.consent_version``), so a new file asks everyone again. Service accounts accept at each
  start (the bot is not a person; the notices account is exempt in Synapse).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from azurezo_cli.home import Home, HomeError, Smtp, Sso, issuer_problem, save_home
from azurezo_cli.synapse_config import current_terms_version, render_synapse_config, terms_source


@dataclass(frozen=True)
class AccountSettings:
    """What ``azurezo init`` was told about sign-in (None / defaults: leave the home as it is)."""

    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret_file: Path | None = None
    oidc_claim: str = "SubjectNameID"
    oidc_name: str = "Pro Santé Connect"
    oidc_scopes: tuple[str, ...] = ("openid", "scope_all")
    password_login: bool = True
    terms: bool | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_sender: str | None = None
    smtp_username: str | None = None
    smtp_password_file: Path | None = None
    signup_trusted_domains: tuple[str, ...] | None = None
    signup_auto_approve_structure_domain: bool | None = None


def sso_from_settings(settings: AccountSettings) -> Sso | None:
    """The ``Sso`` the options describe, None when no OIDC option is given; French ``HomeError``."""
    given = (settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret_file)
    if all(value is None for value in given):
        if not settings.password_login:
            raise HomeError(
                "--no-password-login n'a de sens qu'avec la connexion unique : donnez aussi "
                "--oidc-issuer, --oidc-client-id et --oidc-client-secret-file."
            )
        return None
    if any(value is None for value in given):
        raise HomeError(
            "La connexion unique demande les trois options ensemble : --oidc-issuer, "
            "--oidc-client-id et --oidc-client-secret-file."
        )
    assert settings.oidc_issuer is not None and settings.oidc_client_id is not None
    assert settings.oidc_client_secret_file is not None
    problem = issuer_problem(settings.oidc_issuer)
    if problem:
        raise HomeError(problem)
    if "openid" not in settings.oidc_scopes:
        raise HomeError("La portée « openid » est obligatoire : ajoutez --oidc-scope openid.")
    sso = Sso(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id.strip(),
        client_secret_file=str(settings.oidc_client_secret_file.resolve()),
        national_id_claim=settings.oidc_claim.strip(),
        name=settings.oidc_name.strip() or "Pro Santé Connect",
        scopes=settings.oidc_scopes,
        password_login=settings.password_login,
    )
    sso.client_secret()  # readable and not empty, now rather than at Synapse's start
    return sso


def smtp_from_settings(settings: AccountSettings) -> Smtp | None:
    """The ``Smtp`` the options describe (None without --smtp-host); French ``HomeError``."""
    if settings.smtp_host is None:
        if settings.smtp_username or settings.smtp_password_file:
            raise HomeError("Donnez aussi --smtp-host : l'adresse du serveur de messagerie sortant.")
        return None
    smtp = Smtp(
        host=settings.smtp_host.strip(),
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        sender=settings.smtp_sender or Smtp.sender,
        username=settings.smtp_username,
        password_file=str(settings.smtp_password_file.resolve()) if settings.smtp_password_file else None,
    )
    smtp.password()  # readable now rather than at the first approval
    return smtp


def apply_account_settings(home: Home, settings: AccountSettings) -> Home:
    """Store the sign-in choices in the home and render Synapse's configuration again if changed."""
    changes: dict[str, object] = {}
    sso = sso_from_settings(settings)
    if sso is not None and sso != home.sso:
        changes["sso"] = sso
    if settings.terms is not None and settings.terms != home.terms_of_use:
        changes["terms_of_use"] = settings.terms
    smtp = smtp_from_settings(settings)
    if smtp is not None and smtp != home.smtp:
        changes["smtp"] = smtp
    if settings.signup_trusted_domains is not None:
        changes["signup_trusted_domains"] = tuple(d.strip().lower() for d in settings.signup_trusted_domains)
    if settings.signup_auto_approve_structure_domain is not None:
        changes["signup_auto_approve_structure_domain"] = settings.signup_auto_approve_structure_domain
    if not changes:
        return home
    home = replace(home, **changes)  # type: ignore[arg-type]
    save_home(home)
    render_synapse_config(home)
    return home


# --- terms of use ---------------------------------------------------------------------------------


def consent_hmac(*, form_secret: str, user: str) -> str:
    """The ``h`` parameter of Synapse's consent form for ``user`` (HMAC-SHA256 of form_secret)."""
    return hmac.new(form_secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def consent_url(home: Home, localpart: str) -> str:
    """The link a professional follows to read and accept the terms of use."""
    mac = consent_hmac(form_secret=home.secrets.form_secret, user=localpart)
    return f"{home.synapse_url}/_matrix/consent?u={localpart}&h={mac}"


async def accept_terms(home: Home, localpart: str, *, version: str | None = None) -> None:
    """Accept the current terms of use for ``localpart`` (service accounts, at each start)."""
    if not home.terms_required:
        return
    version = version or current_terms_version(terms_source(home))
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            f"{home.synapse_url}/_matrix/consent",
            data={
                "v": version,
                "u": localpart,
                "h": consent_hmac(form_secret=home.secrets.form_secret, user=localpart),
            },
            timeout=30.0,
        )
    if resp.status_code != 200:
        raise HomeError(
            f"Synapse n'a pas enregistré l'acceptation des conditions d'utilisation par "
            f"{home.user_id(localpart)} (HTTP {resp.status_code}) : consultez "
            f"{home.logs_dir / 'synapse.log'}."
        )
