"""`azurezo init`'s sign-in options: single sign-on and the terms of use, rendered for Synapse."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from azurezo_cli.home import HomeError, init_home, load_home
from azurezo_cli.main import app
from azurezo_cli.signin import AccountSettings, apply_account_settings
from azurezo_cli.synapse_config import current_terms_version, terms_versions
from tests.azurezo_cli.test_synapse_config import parse_with_synapse, rendered

SECRET = "oidc-client-secret-from-the-provider-0123"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "psc_secret"
    path.write_text(SECRET + "\n")
    return path


def _init(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "var"), "init", "--no-demo", *args])
    return result.exit_code, result.output


def test_init_with_oidc_renders_the_provider_and_keeps_the_secret_out_of_the_home_file(
    tmp_path: Path, secret_file: Path
) -> None:
    code, output = _init(
        tmp_path,
        "--oidc-issuer",
        "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
        "--oidc-client-id",
        "azurezo-region",
        "--oidc-client-secret-file",
        str(secret_file),
    )
    assert code == 0, output
    home = load_home(tmp_path / "var")
    assert SECRET not in (home.path / "azurezo.json").read_text()
    [provider] = rendered(home)["oidc_providers"]
    assert provider["issuer"] == "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
    assert provider["client_secret"] == SECRET
    assert provider["skip_verification"] is False  # https: Synapse checks the discovery document
    assert provider["allow_existing_users"] is True
    mapping = provider["user_mapping_provider"]
    assert mapping["module"] == "synapse_module.sso.DirectoryOidcMapping"
    assert mapping["config"]["national_id_claim"] == "SubjectNameID"
    assert mapping["config"]["directory_secret"] == home.secrets.internal_api_secret
    config = parse_with_synapse(home, tmp_path)  # Synapse accepts it (and loads the mapping provider)
    assert [p.idp_id for p in config.oidc.oidc_providers] == ["oidc-psc"]
    assert rendered(home)["modules"][0]["config"].get("password_login", True) is True


def test_no_password_login_is_passed_to_the_module(tmp_path: Path, secret_file: Path) -> None:
    code, output = _init(
        tmp_path,
        "--oidc-issuer",
        "https://psc.exemple.fr",
        "--oidc-client-id",
        "c",
        "--oidc-client-secret-file",
        str(secret_file),
        "--no-password-login",
    )
    assert code == 0, output
    assert rendered(load_home(tmp_path / "var"))["modules"][0]["config"]["password_login"] is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--oidc-issuer", "https://psc.exemple.fr"], "les trois options ensemble"),
        (
            [
                "--oidc-issuer",
                "http://psc.exemple.fr",
                "--oidc-client-id",
                "c",
                "--oidc-client-secret-file",
                "{s}",
            ],
            "n'est pas une adresse d'émetteur OpenID Connect utilisable",
        ),
        (
            [
                "--oidc-issuer",
                "https://p.fr",
                "--oidc-client-id",
                "c",
                "--oidc-client-secret-file",
                "/nulle/part",
            ],
            "secret du client OpenID Connect est illisible",
        ),
        (["--no-password-login"], "n'a de sens qu'avec la connexion unique"),
    ],
)
def test_bad_sign_in_options_are_refused_in_french(
    tmp_path: Path, secret_file: Path, args: list[str], expected: str
) -> None:
    code, output = _init(tmp_path, *[a.replace("{s}", str(secret_file)) for a in args])
    assert code != 0
    assert expected in output


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    home, _ = init_home(tmp_path / "var")
    settings = AccountSettings(oidc_issuer="https://p.fr", oidc_client_id="c", oidc_client_secret_file=empty)
    with pytest.raises(HomeError, match="est vide"):
        apply_account_settings(home, settings)


def test_terms_are_on_in_production_off_in_the_test_profile_and_switchable(tmp_path: Path) -> None:
    production, _ = init_home(tmp_path / "prod")
    test, _ = init_home(tmp_path / "test", profile="test")
    assert "user_consent" in rendered(production)
    assert "user_consent" not in rendered(test)
    switched = apply_account_settings(test, AccountSettings(terms=True))
    assert load_home(switched.path).terms_of_use is True
    assert rendered(switched)["user_consent"]["version"] == current_terms_version()
    consent_dir = Path(rendered(switched)["user_consent"]["template_dir"])
    assert (consent_dir / "en" / "1.0.html").is_file()  # Synapse's one language directory
    assert (consent_dir / "en" / "success.html").is_file()


def test_the_region_can_publish_its_own_terms_in_the_home(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    (home.path / "terms").mkdir()
    (home.path / "terms" / "2.0.html").write_text("<p>Conditions de la région, {{ version }}</p>")
    (home.path / "terms" / "10.0.html").write_text("<p>Plus récente</p>")
    assert terms_versions(home.path / "terms") == ["2.0", "10.0"]  # numeric order, not text order
    assert rendered(home)["user_consent"]["version"] == "10.0"


def test_smtp_and_auto_approval_reach_the_service_settings(tmp_path: Path) -> None:
    password = tmp_path / "smtp_password"
    password.write_text("mot-de-passe-smtp\n")
    code, output = _init(
        tmp_path,
        "--smtp-host",
        "smtp.exemple.fr",
        "--smtp-user",
        "azurezo",
        "--smtp-password-file",
        str(password),
        "--smtp-from",
        "AZUREZO <noreply@exemple.fr>",
        "--signup-trusted-domain",
        "mssante.fr",
        "--signup-auto-approve-structure-domain",
    )
    assert code == 0, output
    home = load_home(tmp_path / "var")
    assert "mot-de-passe-smtp" not in (home.path / "azurezo.json").read_text()
    settings = home.service_settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_username) == (
        "smtp.exemple.fr",
        587,
        "azurezo",
    )
    assert settings.smtp_password == "mot-de-passe-smtp"
    assert settings.smtp_sender == "AZUREZO <noreply@exemple.fr>"
    assert settings.signup_trusted_domains == ("mssante.fr",)
    assert settings.signup_auto_approve_structure_domain is True
    assert settings.registration_shared_secret == home.secrets.registration_shared_secret


def test_smtp_credentials_without_a_host_are_refused(tmp_path: Path) -> None:
    code, output = _init(tmp_path, "--smtp-user", "azurezo")
    assert code != 0 and "--smtp-host" in output


def test_admin_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    home_dir = str(tmp_path / "var")
    assert runner.invoke(app, ["--home", home_dir, "init"]).exit_code == 0  # the demo directory
    listed = runner.invoke(app, ["--home", home_dir, "admin", "list"])
    assert "Aucun administrateur" in listed.output
    refused = runner.invoke(app, ["--home", home_dir, "admin", "add", "899999999999"])
    assert refused.exit_code == 1 and "n'est pas un professionnel actif" in refused.output
    added = runner.invoke(app, ["--home", home_dir, "admin", "add", "819990000093"])  # a demo nurse
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["--home", home_dir, "admin", "list"]).output.strip() == "819990000093"
    removed = runner.invoke(app, ["--home", home_dir, "admin", "remove", "819990000093"])
    assert "n'est plus administrateur" in removed.output
