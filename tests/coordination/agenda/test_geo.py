"""Where a commune is: the bundled communes file, the directory's (postal code, city) pairs, what a
professional types, and distances."""

from __future__ import annotations

import pytest

from coordination.agenda import geo


def test_names_are_compared_without_accents_abbreviations_punctuation_or_cedex() -> None:
    same = ("St-Laurent-du-Var", "SAINT LAURENT DU VAR", "saint laurent du var", "ST LAURENT DU VAR CEDEX 2")
    assert {geo.normalise(n) for n in same} == {"SAINT LAURENT DU VAR"}
    assert geo.normalise("Ste-Maxime") == geo.normalise("SAINTE MAXIME") == "SAINTE MAXIME"
    assert geo.normalise("L’Abergement-Clémenciat") == "L ABERGEMENT CLEMENCIAT"
    assert geo.normalise("CANNET (LE)") == geo.normalise("Le Cannet") == "LE CANNET"
    assert geo.normalise("Œuilly") == "OEUILLY"
    assert geo.normalise("NICE CEDEX 3") == "NICE"


def test_the_bundled_file_holds_every_commune_with_a_point() -> None:
    g = geo.gazetteer()
    assert g.size > 37_000  # communes, arrondissements, delegated communes
    communes = [c for c in g.by_insee.values() if c.kind == geo.COMMUNE]
    assert len(communes) > 34_800
    assert all(-90 < c.latitude < 90 and -180 < c.longitude < 180 for c in communes)
    overseas = {"971", "972", "973", "974", "976"}
    assert {c.department for c in communes} >= {"01", "06", "2A", "2B", "95", *overseas}


@pytest.mark.parametrize(
    ("code", "name", "department"),
    [
        ("06088", "Nice", "06"),
        ("2a004", "Ajaccio", "2A"),
        ("2B033", "Bastia", "2B"),
        ("97411", "Saint-Denis", "974"),
        ("97209", "Fort-de-France", "972"),
        ("97611", "Mamoudzou", "976"),
        ("75056", "Paris", "75"),
        ("75115", "Paris 15e Arrondissement", "75"),
        ("69383", "Lyon 3e Arrondissement", "69"),
        ("13208", "Marseille 8e Arrondissement", "13"),
    ],
)
def test_an_insee_code_gives_its_commune(code: str, name: str, department: str) -> None:
    commune = geo.by_code(code)
    assert commune is not None
    assert (commune.name, commune.department) == (name, department)


@pytest.mark.parametrize(
    ("postal_code", "city", "insee"),
    [
        ("06000", "NICE", "06088"),
        ("06300", "NICE", "06088"),
        ("06700", "ST LAURENT DU VAR", "06123"),
        ("06700", "Saint-Laurent-du-Var", "06123"),
        ("06110", "LE CANNET", "06030"),
        ("06110", "CANNET (LE)", "06030"),
        ("06800", "CAGNES SUR MER", "06027"),
        # CEDEX codes are not postal codes of a commune: the name, in the code's department.
        ("06359", "NICE CEDEX 3", "06088"),
        ("75732", "PARIS CEDEX 15", "75056"),
        # Paris, Lyon, Marseille: the arrondissement of the postal code.
        ("75015", "PARIS", "75115"),
        ("75016", "PARIS", "75116"),
        ("75116", "PARIS", "75116"),
        ("69003", "LYON", "69383"),
        ("13008", "MARSEILLE", "13208"),
        # Corsica: 200xx/201xx in 2A, 202xx-206xx in 2B (also for a CEDEX code).
        ("20000", "AJACCIO", "2A004"),
        ("20186", "AJACCIO CEDEX 2", "2A004"),
        ("20200", "BASTIA", "2B033"),
        # Overseas.
        ("97400", "ST DENIS", "97411"),
        ("97200", "FORT DE FRANCE", "97209"),
        ("97600", "MAMOUDZOU", "97611"),
        # A postal code of several communes: the city chooses.
        ("06670", "ST MARTIN DU VAR", "06126"),
        ("06670", "LEVENS", "06075"),
    ],
)
def test_a_directory_address_is_located(postal_code: str, city: str, insee: str) -> None:
    commune = geo.locate(postal_code, city)
    assert commune is not None, (postal_code, city)
    assert commune.insee == insee


def test_a_delegated_communes_old_name_is_its_own_point() -> None:
    """Addresses keep the name of a commune merged into a « commune nouvelle »."""
    old = geo.locate("50120", "EQUEURDREVILLE HAINNEVILLE")
    assert old is not None and old.kind == geo.DELEGATED and old.parent == "50129"
    new = geo.by_code("50129")
    assert new is not None and new.name == "Cherbourg-en-Cotentin"
    assert 0 < geo.distance_km(old.latitude, old.longitude, new.latitude, new.longitude) < 10


def test_an_unknown_address_is_none() -> None:
    assert geo.locate("99999", "NULLE PART") is None
    assert geo.locate(None, None) is None
    assert geo.locate("06000", None) is not None  # one commune for the code
    assert geo.locate(None, "SAINT LAURENT") is None  # a name of several communes, no code


@pytest.mark.parametrize(
    ("typed", "insee"),
    [
        ("Nice", "06088"),
        ("  nice ", "06088"),
        ("Saint-Laurent-du-Var", "06123"),
        ("st laurent du var", "06123"),
        ("06700", "06123"),
        ("06088", "06088"),
        ("Nice 06", "06088"),
        ("Nice (06)", "06088"),
        ("Nice 06000", "06088"),
        ("Saint-Laurent 22", "22310"),
        ("Paris 15", "75115"),
        ("Paris", "75056"),
        ("Ajaccio", "2A004"),
        ("Saint-Denis 974", "97411"),
        ("Saint-Denis 93", "93066"),
        ("Le Cannet", "06030"),
    ],
)
def test_what_a_professional_types_finds_the_commune(typed: str, insee: str) -> None:
    assert geo.find(typed).insee == insee


def test_a_shared_name_asks_for_the_department_listing_candidates() -> None:
    with pytest.raises(geo.UnknownPlace) as caught:
        geo.find("Saint-Denis")
    message = caught.value.message
    assert message.startswith("« Saint-Denis » désigne plusieurs communes : ")
    assert "Saint-Denis (93)" in message and "Saint-Denis (974)" in message
    assert "Précisez le département (« Saint-Denis " in message
    assert {c.insee for c in caught.value.candidates} >= {"93066", "97411"}


def test_an_unknown_name_says_what_to_type_and_suggests() -> None:
    with pytest.raises(geo.UnknownPlace) as caught:
        geo.find("Nicee")
    assert "Commune introuvable : « Nicee »" in caught.value.message
    assert "Vouliez-vous dire : Nice (06)" in caught.value.message
    assert "code postal" in caught.value.message
    with pytest.raises(geo.UnknownPlace, match="Indiquez une commune"):
        geo.find("   ")
    with pytest.raises(geo.UnknownPlace, match="Commune introuvable"):
        geo.find("Nice 83")


def test_a_code_that_is_an_insee_code_and_another_communes_postal_code_asks_for_the_name() -> None:
    with pytest.raises(geo.UnknownPlace) as caught:
        geo.find("01100")  # Cheignieu-la-Balme's INSEE code, Oyonnax's postal code
    assert "« 01100 » est à la fois un code INSEE (commune : Cheignieu-la-Balme (01))" in caught.value.message
    assert "Oyonnax (01)" in caught.value.message
    assert geo.find("Oyonnax 01100").insee == "01283"
    assert geo.find("Cheignieu-la-Balme 01").insee == "01100"


def test_a_postal_code_of_several_communes_asks_for_the_name() -> None:
    with pytest.raises(geo.UnknownPlace) as caught:
        geo.find("06670")
    assert "Le code postal 06670 couvre plusieurs communes" in caught.value.message
    assert geo.find("Levens 06670").insee == "06075"


def test_distances_between_known_communes() -> None:
    nice, cagnes, grasse, menton = (geo.by_code(c) for c in ("06088", "06027", "06069", "06083"))
    assert nice and cagnes and grasse and menton

    def km(a: geo.Commune, b: geo.Commune) -> float:
        return geo.distance_km(a.latitude, a.longitude, b.latitude, b.longitude)

    assert km(nice, nice) == 0
    # Town hall to town hall, as the crow flies (by road: about 12, 30 and 25 km).
    assert 10 < km(nice, cagnes) < 11
    assert 20 < km(nice, menton) < 21
    assert 28 < km(nice, grasse) < 29
    assert km(nice, cagnes) == pytest.approx(km(cagnes, nice))
    # Paris - Marseille, about 660 km as the crow flies.
    paris, marseille = geo.by_code("75056"), geo.by_code("13055")
    assert paris and marseille and 655 < km(paris, marseille) < 665


def test_the_bounding_box_holds_the_circle() -> None:
    south, north, west, east = geo.bounding_box(43.7, 7.27, 20)
    assert south < 43.7 < north and west < 7.27 < east
    # Points 20 km due north, south, east and west are inside; the box is not much larger.
    assert north - 43.7 == pytest.approx(20 / 111.2, rel=0.01)
    assert geo.distance_km(43.7, 7.27, 43.7, east) >= 20
    assert geo.distance_km(43.7, 7.27, 43.7, east) < 20.5
