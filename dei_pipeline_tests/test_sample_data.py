"""The committed SYNTHETIC sample (data/raw/) reproduces the published 2020 figures and is reproducible."""

from __future__ import annotations

import re
import shutil
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from dei_pipeline.aggregation import aggregate_tiers, composite_scores
from dei_pipeline.config import REPO_ROOT
from dei_pipeline.frameworks import resolve_framework
from dei_pipeline.scalars import number
from dei_pipeline.synthetic.sample import (
    CITY_EDITIONS,
    COUNTY_EDITIONS,
    MEASUREMENT_DECIMALS,
    MEASUREMENT_EDITIONS,
    TOP_N,
    write_sample_data,
)
from dei_pipeline.tiers import load_tiers, tier_expr
from dei_pipeline_tests.sample_scores import raw_path, scored_cells, wide_scores

DATA = REPO_ROOT / "data"
PUBLISHED = DATA / "published" / "2020"
INPUT_DIRS = ("frameworks", "registry", "published", "method")
FILES = {"city": "cities.csv", "county": "counties.csv"}
REGISTRY = {"city": "cities.csv", "county": "counties.csv"}


@cache
def wide(unit_type: str, edition: int) -> pl.DataFrame:
    """The edition's leaf scores, one column per leaf: as written, or made from the measurements by
    the scoring stage (with the framework's methods and the settings' thresholds)."""
    return wide_scores(unit_type, edition)


@cache
def leaf_codes(unit_type: str, edition: int) -> list[str]:
    return resolve_framework(DATA, unit_type, edition).leaf_codes


@cache
def composites(unit_type: str, edition: int) -> pl.DataFrame:
    """unit_code, unit_name, score: the composite aggregated from the written leaf scores."""
    table = wide(unit_type, edition)
    long = table.unpivot(
        index=["unit_code"],
        on=leaf_codes(unit_type, edition),
        variable_name="indicator_code",
        value_name="score",
    )
    scores = composite_scores(aggregate_tiers(long, resolve_framework(DATA, unit_type, edition).nodes))
    return table.select("unit_code", "unit_name").join(scores, on="unit_code")


@cache
def published_scores(unit_type: str) -> pl.DataFrame:
    files = ["city_ranking.csv"] if unit_type == "city" else ["district_ranking.csv", "county_ranking.csv"]
    return pl.concat(
        [pl.read_csv(PUBLISHED / f).select("name_zh", pl.col("score").alias("published")) for f in files]
    )


@cache
def statements() -> dict[str, float]:
    return {
        item["id"]: item["value"]
        for item in yaml.safe_load((PUBLISHED / "statements.yaml").read_text(encoding="utf-8"))
    }


def tier_counts(scores: pl.Series) -> dict[str, int]:
    tiers = load_tiers(DATA)
    coded = pl.DataFrame({"score": scores}).select(tier_expr(pl.col("score"), tiers, 1).alias("tier"))
    return dict(coded["tier"].value_counts().iter_rows())


def editions() -> list[tuple[str, int]]:
    return [("city", e) for e in CITY_EDITIONS] + [("county", e) for e in COUNTY_EDITIONS]


# --- files ------------------------------------------------------------------------------------------


def test_regenerating_reproduces_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    for name in INPUT_DIRS:
        shutil.copytree(DATA / name, tmp_path / name)
    written = write_sample_data(tmp_path, seed=2020)
    committed = sorted(
        p.relative_to(DATA / "raw").as_posix()
        for p in (DATA / "raw").rglob("*")
        if p.suffix in (".csv", ".yaml")
    )
    assert sorted(p.relative_to(tmp_path / "raw").as_posix() for p in written) == committed
    for path in written:
        assert path.read_bytes() == (DATA / "raw" / path.relative_to(tmp_path / "raw")).read_bytes(), (
            path.name
        )


@pytest.mark.parametrize(("unit_type", "edition"), editions())
def test_files_are_plain_csv_in_framework_order(unit_type: str, edition: int) -> None:
    text = raw_path(unit_type, edition).read_bytes().decode("utf-8")
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == ",".join(["unit_code", "unit_name", *leaf_codes(unit_type, edition)])
    measured = (unit_type, edition) in MEASUREMENT_EDITIONS
    cell = re.compile(rf"^(\d+\.\d{{{MEASUREMENT_DECIMALS}}})?$" if measured else r"^\d{1,3}\.\d{2}$")
    assert all(cell.match(value) for line in lines[1:] for value in line.split(",")[2:])
    table = wide(unit_type, edition)
    assert table["unit_code"].to_list() == sorted(table["unit_code"].to_list())
    assert table["unit_code"].str.contains(r"^\d{6}$").all()
    registry = pl.read_csv(DATA / "registry" / REGISTRY[unit_type], infer_schema=False).select(
        "unit_code", "name_zh"
    )
    named = table.join(registry, on="unit_code", how="left")
    assert (named["unit_name"] == named["name_zh"]).all()
    values = table.select(leaf_codes(unit_type, edition)).to_numpy()
    assert values.min() >= 0 and values.max() <= 100


def test_manifest_flags_the_data_as_synthetic() -> None:
    manifest = yaml.safe_load((DATA / "raw" / "manifest.yaml").read_text(encoding="utf-8"))
    assert manifest["synthetic"] is True and manifest["seed"] == 2020
    listed = {(f["unit_type"], e["edition"]): f["units"] for e in manifest["editions"] for f in e["files"]}
    assert listed == {key: wide(*key).height for key in editions()}


# --- 2020 calibration ---------------------------------------------------------------------------------


@pytest.mark.parametrize("unit_type", ["city", "county"])
def test_2020_composites_round_to_every_published_score(unit_type: str) -> None:
    joined = composites(unit_type, 2020).join(
        published_scores(unit_type), left_on="unit_name", right_on="name_zh"
    )
    assert joined.height == published_scores(unit_type).height
    assert (joined["score"].round(1) == joined["published"]).all()
    error = (joined["score"] - joined["published"]).abs()
    if (unit_type, 2020) in MEASUREMENT_EDITIONS:
        # An imputed cell (a peer median or mean, not the calibrated value) moves its unit's composite
        # by up to 0.0033, far inside the published precision (0.05); the other units stay within 0.001.
        imputed = scored_cells(unit_type, 2020).filter(pl.col("imputed"))["unit_code"]
        assert number(error.filter(joined["unit_code"].is_in(imputed.implode())).max()) < 0.005
        error = error.filter(~joined["unit_code"].is_in(imputed.implode()))
    assert number(error.max()) < 0.001


def test_2020_level1_averages_within_005() -> None:
    table = wide("city", 2020)
    long = table.unpivot(
        index=["unit_code"], on=leaf_codes("city", 2020), variable_name="indicator_code", value_name="score"
    )
    tree = aggregate_tiers(long, resolve_framework(DATA, "city", 2020).nodes)
    averages = tree.filter(pl.col("level") == 1).group_by("node_code").agg(pl.col("score").mean())
    joined = pl.read_csv(PUBLISHED / "level1_averages.csv").join(averages, on="node_code")
    assert joined.height == 4
    assert number((joined["score"] - joined["average"]).abs().max()) < 0.05


def test_2020_industry_averages_within_005_and_top10_within_05() -> None:
    table = wide("city", 2020)
    for row in pl.read_csv(PUBLISHED / "industry_averages.csv").iter_rows(named=True):
        column = table[row["node_code"]].to_numpy()
        assert abs(column.mean() - row["average"]) < 0.05, row["node_code"]
        assert abs(np.sort(column)[-TOP_N:].mean() - row["top10_average"]) < 0.5, row["node_code"]


def test_2020_named_examples_round_to_the_printed_integer() -> None:
    table = wide("city", 2020)
    for row in pl.read_csv(PUBLISHED / "industry_examples.csv").iter_rows(named=True):
        value = table.filter(pl.col("unit_name") == row["name_zh"])[row["node_code"]].item()
        assert round(value) == row["score"], (row["name_zh"], row["node_code"], value)


def test_indicators_are_correlated_like_index_data() -> None:
    values = wide("city", 2020).select(leaf_codes("city", 2020)).to_numpy()
    corr = np.corrcoef(values.T)
    mean_pairwise = corr[np.triu_indices_from(corr, 1)].mean()
    assert 0.3 < mean_pairwise < 0.95
    assert (
        values.mean(axis=0).std() > 5
    )  # indicator levels differ (digital industries low, infrastructure high)


# --- earlier editions ---------------------------------------------------------------------------------


def test_2019_cities_are_the_returning_cohort_with_the_published_means_and_implied_tiers() -> None:
    s = statements()
    now, before = composites("city", 2020), composites("city", 2019)
    assert set(before["unit_code"]) < set(now["unit_code"])
    assert now.height - before.height == s["new_cities"]
    returning = now.filter(pl.col("unit_code").is_in(before["unit_code"].to_list()))
    assert round(number(returning["score"].mean()), 1) == s["returning_mean"]
    assert round(number(before["score"].mean()), 1) == s["returning_mean_prev"]
    counts = tier_counts(before["score"])
    assert counts["new_tier1"] == s["new_tier1_count_prev_implied"]
    assert counts["tier2"] == s["tier2_count_prev_implied"]
    assert counts.get("tier4", 0) < tier_counts(now["score"])["tier4"]
    tier1_2020 = now.filter(pl.col("score").round(1) >= 65)["unit_code"].to_list()
    assert set(tier1_2020) <= set(before["unit_code"])  # every 一线 and 新一线 city returned


def test_earlier_city_editions_are_smaller_lower_and_have_dropped_and_returning_cities() -> None:
    codes = {e: set(composites("city", e)["unit_code"]) for e in CITY_EDITIONS}
    assert [len(codes[e]) for e in CITY_EDITIONS] == [40, 100, 113, 148]
    means = [number(composites("city", e)["score"].mean()) for e in CITY_EDITIONS]
    assert means[0] < means[1] < means[2]
    assert (
        codes[2018] - codes[2019] and (codes[2018] - codes[2019]) <= codes[2020]
    )  # dropped in 2019, back in 2020
    assert codes[2017] - codes[2018] and (codes[2017] - codes[2018]) <= codes[2019]
    for earlier, later in pairwise(CITY_EDITIONS):
        pair = composites("city", earlier).join(composites("city", later), on="unit_code", suffix="_later")
        rise = pair["score_later"] - pair["score"]
        assert number(rise.mean()) > 2 and number((rise > 0).mean()) > 0.9  # paths rise, with noise


def test_county_scores_rose_clearly_from_2019() -> None:
    pair = composites("county", 2019).join(composites("county", 2020), on="unit_code", suffix="_2020")
    assert pair.height == 100
    assert number((pair["score_2020"] - pair["score"]).mean()) > 2


@pytest.mark.parametrize(("unit_type", "edition"), editions())
def test_every_edition_aggregates_to_one_decimal_composites(unit_type: str, edition: int) -> None:
    # Earlier editions' composites are invented on the published one-decimal grid; leaves hit them too.
    scores = composites(unit_type, edition)["score"]
    # Measurements: the three units with an imputed cell are off the grid by up to 0.0033 (see above).
    limit = 0.005 if (unit_type, edition) in MEASUREMENT_EDITIONS else 0.001
    assert number((scores - scores.round(1)).abs().max()) < limit


# --- the 2020 cities as measurements --------------------------------------------------------------


def test_2020_city_measurements_normalise_back_to_two_decimal_scores() -> None:
    """Goalpost normalisation inverts the generator's affine (log-affine) image of the calibrated
    scores: every measured cell comes back on the 2-decimal grid (4-decimal measurements)."""
    cells = scored_cells("city", 2020)
    measured = cells.filter(~pl.col("imputed"))
    assert measured.height == 148 * 46 - 3
    off_grid = (measured["score"] - measured["score"].round(2)).abs().max()
    assert number(off_grid) < 2e-3
    assert (cells["status"] == "scored").all()


def test_2020_city_measurements_show_each_rule_at_work() -> None:
    cells = scored_cells("city", 2020)
    # Lower is better: fewer security incidents and fewer days to start a business score higher.
    lower = cells.filter(pl.col("normalisation_rule").str.ends_with("lower is better"))
    assert sorted(lower["indicator_code"].unique()) == [
        "infra_network_security",
        "service_build_business_env",
    ]
    # The JRC rule: 深圳's driving-industry revenue, 6 x the goalpost (1800 CNY bn), is winsorised to the
    # next value, 北京's 300 at the goalpost, so it still scores 100.
    treated = cells.filter(pl.col("treated"))
    assert treated.select(
        "unit_code", "indicator_code", "measurement", "treated_value", "treatment_rule", "score"
    ).rows() == [("440300", "industry_digital_driving", 1800.0, 300.0, "winsorised_high", 100.0)]
    # One blank cell per imputing indicator, imputed by its rule.
    imputed = cells.filter(pl.col("imputed")).sort("indicator_code")
    assert imputed["indicator_code"].to_list() == [
        "governance_build_emergency",
        "infra_data_open",
        "service_build_civil_affairs",
    ]
    assert imputed["measurement"].is_null().all()
    assert [rule.split(" (")[0] for rule in imputed["imputation_rule"]] == [
        "group_median: province=13",
        "group_median: province=13",
        "group_mean: all",
    ]
