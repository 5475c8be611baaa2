"""The guard against mass removal, as a function: which editions a run may not shrink unasked."""

import polars as pl
import pytest

from dei_pipeline.removal import CONFIRM_REMOVAL_TAG, mass_removals, removal_confirmed

CITIES = [f"{330100 + 100 * i}" for i in range(148)]
COUNTIES = [f"{440300 + i}" for i in range(100)]


def units(year: int, cities: list[str], counties: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "survey_year": [year] * (len(cities) + len(counties)),
            "unit_type": ["city"] * len(cities) + ["county"] * len(counties),
            "unit_code": cities + counties,
            "source_file": [f"raw/{year}/cities.csv"] * len(cities)
            + [f"raw/{year}/counties.csv"] * len(counties),
        },
        schema_overrides={"survey_year": pl.Int32},
    )


PRESENT = pl.concat([units(2019, CITIES[:113], COUNTIES), units(2020, CITIES, COUNTIES)])


def test_up_to_the_share_goes_through_and_one_more_unit_is_refused() -> None:
    assert mass_removals(PRESENT, {2020: units(2020, CITIES[14:], COUNTIES)}, 0.1) == {}  # 14 of 148: 9.5%
    refused = mass_removals(PRESENT, {2020: units(2020, CITIES[15:], COUNTIES)}, 0.1)  # 15 of 148: 10.1%
    assert list(refused) == [2020]
    assert "this run would remove 15 of the 148 cities (10%) of edition 2020" in str(refused[2020])
    assert refused[2020].failures.is_empty()  # nothing for the quarantine: no cell is wrong


def test_losing_every_unit_of_a_type_is_refused_whatever_the_share() -> None:
    refused = mass_removals(PRESENT, {2020: units(2020, CITIES, [])}, 1.0)
    message = str(refused[2020])
    assert "this run would remove all 100 county units of edition 2020" in message
    assert (
        "no raw file of county units was read: raw/2020/counties.csv (or .parquet, .xlsx) is missing"
        in message
    )
    assert (
        f"--confirm-removal`, or launch the run from the Dagster UI with the tag {CONFIRM_REMOVAL_TAG}=true"
        in message
    )
    assert "cities" not in message.split("\n")[0]  # the cities are all there


def test_only_the_checked_editions_and_only_lost_units_count() -> None:
    # 2019 is not part of the run: its units are not "removed". New units are no compensation for lost ones.
    assert mass_removals(PRESENT, {2020: units(2020, CITIES, COUNTIES)}, 0.1) == {}
    renamed = units(2020, [f"9{code[1:]}" for code in CITIES], COUNTIES)
    assert "all 148 cities" in str(mass_removals(PRESENT, {2020: renamed}, 0.1)[2020])
    # An edition new to the warehouse has nothing to lose.
    assert mass_removals(PRESENT, {2021: units(2021, CITIES[:3], [])}, 0.1) == {}


def test_lost_units_are_named_and_the_registry_is_read_only_when_needed() -> None:
    calls: list[int] = []

    def names() -> pl.DataFrame:
        calls.append(1)
        return pl.DataFrame({"unit_type": ["city"], "unit_code": [CITIES[0]], "name_zh": ["杭州"]})

    mass_removals(PRESENT, {2020: units(2020, CITIES, COUNTIES)}, 0.1, names)
    assert calls == []
    message = str(mass_removals(PRESENT, {2020: units(2020, [], COUNTIES)}, 0.1, names)[2020])
    assert (
        f"Units that would be lost: {CITIES[0]} 杭州, {CITIES[1]}, " in message
        and ", … and 138 more." in message
    )


@pytest.mark.parametrize(
    ("value", "confirmed"),
    [("true", True), ("True", True), (" yes ", True), ("1", True), ("false", False), ("", False)],
)
def test_the_run_tag_confirms(value: str, confirmed: bool) -> None:
    assert removal_confirmed({CONFIRM_REMOVAL_TAG: value}) is confirmed
    assert removal_confirmed({}) is False
