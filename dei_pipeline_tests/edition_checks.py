"""Helpers of the cross-edition tests: change a unit's raw scores, read a mart of a warehouse or snapshot,
and assert that an edition's comparisons restate the previous edition."""

import csv
from pathlib import Path

import duckdb
import polars as pl
import pytest


def lower_every_indicator(data_dir: Path, year: int, unit_code: str, by: float) -> None:
    """Subtract ``by`` from every indicator score of one unit in an edition's cities.csv."""
    path = data_dir / "raw" / str(year) / "cities.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        if row[0] == unit_code:
            row[2:] = [f"{float(value) - by:.2f}" for value in row[2:]]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def table(database: Path, name: str, year: int | None = None) -> pl.DataFrame:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.sql(
            f"SELECT * FROM {name}" + ("" if year is None else f" WHERE survey_year = {int(year)}")
        ).pl()
    return rows.sort(rows.columns, nulls_last=True)


def score(database: Path, year: int, unit_code: str) -> tuple[float, int]:
    [(value, rank)] = (
        table(database, "marts.city_index", year)
        .filter(pl.col("unit_code") == unit_code)
        .select("score", "rank")
        .rows()
    )
    return value, rank


def assert_editions_agree(database: Path, year: int, prev_year: int) -> None:
    """What ``year`` says of ``prev_year`` is what ``prev_year`` says of itself."""
    index = table(database, "marts.city_index", prev_year)
    changes = table(database, "marts.city_yoy", year).filter(pl.col("status") == "returning")
    joined = changes.join(index, on="unit_code", suffix="_then")
    assert set(joined["prev_year"].to_list()) == {prev_year}
    assert (joined["prev_score"] - joined["score_then"]).abs().max() == 0
    assert joined["prev_rank"].to_list() == joined["rank_then"].to_list()
    counts = dict(index.group_by("tier").len().iter_rows())
    tiers = table(database, "marts.tier_summary", year)
    assert {tier: n for tier, n in tiers.select("tier", "prev_n_cities").iter_rows() if n} == counts
    summary = table(database, "marts.yoy_summary", year).filter(pl.col("unit_type") == "city")
    assert summary["returning_prev_mean"][0] == pytest.approx(joined["score_then"].mean(), abs=1e-9)
