"""``azurezo directory`` commands through Typer's runner, with a Home-like object in ``ctx.obj``."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from azurezo_cli.directory import app
from tests.ror_sync.helpers import national_id, rpps_line, write_rpps

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo"


@dataclass
class FakeHome:
    database_url: str
    path: Path | None = None


async def invoke(home: FakeHome, *args: str) -> Result:
    # In a thread: the commands run their own event loop, as they do from a shell.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=home)


async def test_import_then_search_json(database_url: str, tmp_path: Path) -> None:
    home = FakeHome(database_url)
    path = write_rpps(tmp_path / "r.txt", [rpps_line(1, site=1), rpps_line(1, site=2), "x|y|"])
    result = await invoke(home, "import-rpps", str(path))
    assert result.exit_code == 0, result.output
    assert "professionnels         : 1  (ajoutés 1" in result.output
    assert f"{path}:4: 2 colonnes au lieu de 52" in result.output

    found = await invoke(home, "search", "dupont1", "--json")
    assert found.exit_code == 0, found.output
    [card] = json.loads(found.output)
    assert card["national_id"] == national_id(1) and card["active"] is True
    assert {"family_name", "given_name", "profession_code", "profession"} <= set(card)
    assert len(card["sites"]) == 2

    fhir = await invoke(home, "import-fhir", str(DEMO / "ror_demo_bundle.json"))
    assert fhir.exit_code == 0, fhir.output
    assert "Import FHIR complet" in fhir.output


async def test_errors_name_the_file_and_exit_non_zero(database_url: str, tmp_path: Path) -> None:
    home = FakeHome(database_url)
    missing = await invoke(home, "import-rpps", str(tmp_path / "absent.txt"))
    assert missing.exit_code == 1 and "absent.txt : fichier introuvable" in missing.output
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("a|b|\n1|2|\n", encoding="utf-8")
    bad = await invoke(home, "import-rpps", str(wrong))
    assert bad.exit_code == 1 and f"{wrong}:1: en-tête" in bad.output
    since = await invoke(home, "import-fhir", "x.json", "--since", "hier")
    assert since.exit_code == 1 and "--since « hier »" in since.output
    nofile = await invoke(home, "import-fhir", str(tmp_path / "none.json"))
    assert nofile.exit_code == 1 and "fichier introuvable" in nofile.output


async def test_a_mass_deactivation_is_refused_with_the_way_to_force_it(
    database_url: str, tmp_path: Path
) -> None:
    home = FakeHome(database_url)
    full = write_rpps(tmp_path / "complet.txt", [rpps_line(n) for n in range(1, 101)])
    assert (await invoke(home, "import-rpps", str(full))).exit_code == 0
    truncated = write_rpps(tmp_path / "tronque.txt", [rpps_line(n) for n in range(1, 21)])

    refused = await invoke(home, "import-rpps", str(truncated))
    assert refused.exit_code == 1
    assert f"Erreur : {truncated} : cet import désactiverait 80 professionnels" in refused.output
    assert f"import-rpps {truncated} --allow-mass-deactivation" in refused.output
    found = await invoke(home, "search", "dupont99", "--json")
    assert json.loads(found.output)[0]["active"] is True  # nothing changed

    bad = await invoke(home, "import-rpps", str(truncated), "--max-deactivation-ratio", "5")
    assert bad.exit_code == 2  # refused by the option parser: a proportion is between 0 and 1
    raised = await invoke(home, "import-rpps", str(truncated), "--max-deactivation-ratio", "0.9")
    assert raised.exit_code == 0, raised.output
    assert "désactivés 80" in raised.output
    assert (await invoke(home, "import-rpps", str(full))).exit_code == 0  # all back (reactivations)
    forced = await invoke(home, "import-rpps", str(truncated), "--allow-mass-deactivation")
    assert forced.exit_code == 0 and "désactivés 80" in forced.output


async def test_a_header_only_file_is_refused(database_url: str, tmp_path: Path) -> None:
    home = FakeHome(database_url)
    full = write_rpps(tmp_path / "complet.txt", [rpps_line(n) for n in range(1, 4)])
    assert (await invoke(home, "import-rpps", str(full))).exit_code == 0
    empty = write_rpps(tmp_path / "entete.txt", [])
    refused = await invoke(home, "import-rpps", str(empty))
    assert refused.exit_code == 1, refused.output
    assert f"Erreur : {empty} : aucune ligne valide" in refused.output
    found = await invoke(home, "search", "dupont2", "--json")
    assert json.loads(found.output)[0]["active"] is True


async def test_an_import_sweeps_what_a_killed_import_left_in_the_home(
    database_url: str, tmp_path: Path
) -> None:
    home = FakeHome(database_url, path=tmp_path / "home")
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    stale = tmp_path / "home" / "tmp" / f"azurezo-rpps-{dead.pid}-x1"
    stale.mkdir(parents=True)
    (stale / "part.db").write_bytes(b"\0" * 1024)
    path = write_rpps(tmp_path / "r.txt", [rpps_line(1)])
    result = await invoke(home, "import-rpps", str(path))
    assert result.exit_code == 0, result.output
    assert not stale.exists()
