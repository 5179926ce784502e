"""The pure command parser: every command of issue 8, French refusals, suggestions, pills, MSC4332."""

from __future__ import annotations

from datetime import date

import pytest

from coordination_bot import commands as c
from coordination_bot.ids import UserId

TODAY = date(2026, 11, 29)
PAUL = UserId("@paul.durand:azurezo.test")
CLAIRE = UserId("@claire:azurezo.test")


def parse(text: str, mentions: tuple[UserId, ...] = ()) -> c.Command | c.Refusal | None:
    return c.parse(text, today=TODAY, mentions=mentions)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!aide", c.Help()),
        ("!patient dup", c.PatientSearch("dup")),
        ("!patient", c.PatientShow()),
        ("!patient lier 3f2a", c.PatientLink("3f2a")),
        ("!patient salon", c.PatientRoomCreate(None)),
        ("!patient salon 3f2a", c.PatientRoomCreate("3f2a")),
        ("!taches", c.TaskList(mine=False)),
        ("!Tâches moi", c.TaskList(mine=True)),
        ("!fait 3", c.TaskDone("3")),
        ("!fait #12", c.TaskDone("12")),
        ("!cercle", c.CircleShow()),
        ("!cercle retirer @claire:azurezo.test", c.CircleRemove(CLAIRE)),
        ("!cercle ajouter @claire:azurezo.test kinésithérapeute", c.CircleAdd(CLAIRE, "kinésithérapeute")),
        ("!cercle ajouter @claire:azurezo.test", c.CircleAdd(CLAIRE, None)),
        (
            "!demande finess:060000099 Situation complexe",
            c.RequestCreate("finess:060000099", "Situation complexe", False),
        ),
        ("!demande DAC06 Retour à domicile urgente", c.RequestCreate("DAC06", "Retour à domicile", True)),
        ("!demandes", c.RequestList()),
        ("!dac salon", c.DacRoomSet(None)),
        ("!DAC Salon finess:060000099", c.DacRoomSet("finess:060000099")),
        ("!dac salon retirer", c.DacRoomSet(None, clear=True)),
        ("!dac salon Retirer finess:060000099", c.DacRoomSet("finess:060000099", clear=True)),
        ("!synthese", c.SynthesisShow()),
        ("!synthèse modifier Retour lundi", c.SynthesisEdit("Retour lundi")),
    ],
)
def test_each_command(text: str, expected: c.Command) -> None:
    assert parse(text) == expected


def test_task_with_mentions_and_due_date() -> None:
    command = parse("!tache Passage infirmier @paul.durand:azurezo.test pour le 12/03")
    assert command == c.TaskCreate("Passage infirmier", (PAUL,), date(2027, 3, 12))  # past date: next year
    command = parse("!tache Bilan pour le 01/12/2026", mentions=(CLAIRE,))
    assert command == c.TaskCreate("Bilan", (CLAIRE,), date(2026, 12, 1))
    assert parse("!tache Appeler la fille") == c.TaskCreate("Appeler la fille", (), None)


def test_refusals_are_french_and_say_what_to_do() -> None:
    missing = parse("!tache @paul.durand:azurezo.test")
    assert (
        isinstance(missing, c.Refusal)
        and "Il manque le titre" in missing.message
        and "!tache" in missing.message
    )
    bad_date = parse("!tache Bilan pour le 31/02")
    assert isinstance(bad_date, c.Refusal) and "Échéance invalide" in bad_date.message
    short = parse("!patient du")
    assert isinstance(short, c.Refusal) and "3 lettres" in short.message
    assert isinstance(parse("!fait"), c.Refusal)
    assert isinstance(parse("!cercle ajouter"), c.Refusal)
    assert isinstance(parse("!demande DAC06"), c.Refusal)
    dac = parse("!dac")
    assert isinstance(dac, c.Refusal) and "!dac salon" in dac.message
    assert isinstance(parse("!dac salon finess:1 finess:2"), c.Refusal)


def test_unknown_command_suggests_the_closest() -> None:
    refusal = parse("!tach Bilan")
    assert isinstance(refusal, c.Refusal)
    assert "Commande inconnue « !tach »" in refusal.message and "« !tache »" in refusal.message
    assert "!aide" in refusal.message
    far = parse("!zzzzzz")
    assert isinstance(far, c.Refusal) and "Vouliez-vous" not in far.message


def test_not_commands() -> None:
    assert parse("bonjour") is None
    assert parse("! pas une commande") is None
    assert parse("!!") is None


def test_pills_become_user_ids_and_reply_fallbacks_are_dropped() -> None:
    formatted = (
        "<mx-reply><blockquote>ancien</blockquote></mx-reply>!tache Bilan "
        '<a href="https://matrix.to/#/@paul.durand:azurezo.test">Paul Durand</a> pour le 02/12'
    )
    text = c.message_text("> ancien\n\n!tache Bilan Paul Durand pour le 02/12", formatted)
    assert text == "!tache Bilan @paul.durand:azurezo.test pour le 02/12"
    assert c.message_text("> <@a:b> ancien\n\n!taches") == "!taches"


def test_structured_commands_both_revisions() -> None:
    syntax_form = {"org.matrix.msc4332.command": {"syntax": "tache {titre}", "arguments": {"titre": "Bilan"}}}
    assert c.structured_text(syntax_form) == "!tache Bilan"
    designator_form = {
        "m.bot.command": {
            "designator": ["cercle", "ajouter"],
            "arguments": {"role": "kiné", "pro": "@claire:azurezo.test"},
        }
    }
    assert c.structured_text(designator_form) == "!cercle ajouter @claire:azurezo.test kiné"
    assert c.structured_text({"body": "!aide"}) is None


def test_advertisement_lists_every_command() -> None:
    content = c.advertisement()
    assert content["sigil"] == "!"
    syntaxes = [cmd["syntax"] for cmd in content["commands"]]
    assert "tache {titre}" in syntaxes and "aide" in syntaxes and len(syntaxes) == len(c.COMMANDS)
