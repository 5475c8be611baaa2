"""Transcription tests for data/published/2020 and the loader dei_pipeline.published.

The first part proves that the transcribed tables (in particular the ranking blocks the PDF extraction
printed in a permuted order, see data/published/2020/README.md) reproduce every summary figure the
white paper states about them. The second part checks the recorded contradictions against the data.
The last part checks the loader's error messages on broken copies.
"""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest

from dei_pipeline.published import (
    Published,
    PublishedError,
    contradiction,
    has_published,
    load_published,
    statement_value,
)
from dei_pipeline.scalars import number

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
EDITION = 2020
STATED_TIER_COUNTS = {"tier1": 6, "new_tier1": 29, "tier2": 69, "tier3": 26, "tier4": 18}
CONTRADICTION_CITIES = {"丽水", "吉林", "六安", "达州"}


@pytest.fixture(scope="module")
def published() -> Published:
    loaded = load_published(DATA_DIR, EDITION)
    assert loaded is not None
    return loaded


@pytest.fixture(scope="module")
def tiers() -> pl.DataFrame:
    return pl.read_csv(DATA_DIR / "method" / "tiers.csv").sort("tier_order")


def classify(score: float, tiers: pl.DataFrame) -> str:
    """Tier of a score by tiers.csv: the first tier (best first) whose lower bound the one-decimal score meets."""
    shown = round(score, 1)
    for code, bound, inclusive in tiers.select("tier_code", "lower_bound", "lower_inclusive").iter_rows():
        if shown > bound or (inclusive and shown == bound):
            return code
    raise AssertionError(f"score {score} below every tier")


def threshold_tiers(published: Published, tiers: pl.DataFrame) -> dict[str, str]:
    return {
        name: classify(score, tiers)
        for name, score in published.city_ranking.select("name_zh", "score").iter_rows()
    }


def appendix_tiers(published: Published) -> dict[str, str]:
    return dict(published.tier_lists.select("name_zh", "tier_code").iter_rows())


def level1_weights() -> dict[str, float]:
    framework = pl.read_csv(
        DATA_DIR / "frameworks" / "city_2020.csv", schema_overrides={"parent_code": pl.String}
    )
    top = framework.filter(pl.col("parent_code").is_null())
    return dict(top.select("code", "weight").iter_rows())


# ---------------------------------------------------------------- city ranking


def test_ranks_are_1_to_148_and_scores_never_increase(published: Published) -> None:
    ranking = published.city_ranking.sort("rank")
    assert ranking["rank"].to_list() == list(range(1, 149))
    assert ranking["name_zh"].n_unique() == 148 == statement_value(published, "n_cities")
    scores = ranking["score"].to_list()
    assert all(a >= b for a, b in pairwise(scores))


def test_city_mean_and_max(published: Published) -> None:
    scores = published.city_ranking["score"]
    assert round(number(scores.mean()), 1) == statement_value(published, "city_mean") == 57.3
    top = published.city_ranking.sort("rank").row(0, named=True)
    assert top["score"] == scores.max() == statement_value(published, "city_max") == 90.5
    assert top["name_zh"] == published.statements["city_max"]["subject"] == "上海"


@pytest.mark.parametrize(
    ("rank", "name", "score"),
    [
        # block 31-60, printed rank order 31..37, 43..50, 38..42, 51..60
        (37, "嘉兴", 64.7),
        (38, "呼和浩特", 64.6),
        (42, "兰州", 64.4),
        (43, "扬州", 64.2),
        (50, "中山", 62.0),
        (51, "盐城", 62.0),
        # block 91-110, printed 91, 93..100, 92, 101..110
        (91, "秦皇岛", 52.8),
        (92, "许昌", 52.6),
        (93, "常德", 52.6),
        (100, "齐齐哈尔", 51.4),
        (101, "马鞍山", 51.2),
        # block 131-148, printed 132..137, 143..148, 138..142, 131
        (131, "六安", 39.8),
        (132, "亳州", 39.7),
        (137, "聊城", 38.2),
        (138, "淮北", 38.0),
        (142, "眉山", 36.7),
        (143, "衢州", 36.5),
        (148, "雅安", 35.7),
    ],
)
def test_reconstructed_rows(published: Published, rank: int, name: str, score: float) -> None:
    row = published.city_ranking.filter(pl.col("rank") == rank).row(0, named=True)
    assert (row["name_zh"], row["score"]) == (name, score)


def test_appendix_lists_confirm_the_reconstructed_order(published: Published) -> None:
    """The appendix prints each tier in ranking order; apart from the four contradiction cities the
    printed order must follow the reconstructed ranks (an independent witness of the permutation)."""
    rank = dict(published.city_ranking.select("name_zh", "rank").iter_rows())
    for (code,), group in published.tier_lists.sort("position").group_by("tier_code", maintain_order=True):
        ranks = [rank[n] for n in group["name_zh"].to_list() if n not in CONTRADICTION_CITIES]
        assert ranks == sorted(ranks), code
        if code not in (
            "tier3",
            "tier4",
        ):  # the tiers untouched by the contradiction are contiguous rank runs
            assert ranks == list(range(ranks[0], ranks[0] + len(ranks))), code


def test_tier_counts_by_threshold(published: Published, tiers: pl.DataFrame) -> None:
    by_threshold = threshold_tiers(published, tiers)
    counts = {code: list(by_threshold.values()).count(code) for code in STATED_TIER_COUNTS}
    assert counts == STATED_TIER_COUNTS
    published_counts = dict(published.tier_counts.select("tier_code", "count").iter_rows())
    assert published_counts == STATED_TIER_COUNTS
    assert sum(published_counts.values()) == 148
    assert dict(published.tier_counts.select("tier_code", "name_zh").iter_rows()) == dict(
        tiers.select("tier_code", "name_zh").iter_rows()
    )


def test_no_score_on_a_tier_boundary(published: Published, tiers: pl.DataFrame) -> None:
    bounds = set(tiers["lower_bound"].to_list()) - {0}
    assert not set(published.city_ranking["score"].round(1).to_list()) & bounds


def test_published_ties_get_distinct_ranks(published: Published) -> None:
    groups = published.city_ranking.group_by("score").len().filter(pl.col("len") > 1)
    assert groups.height == 18
    assert "18 pairs or" in contradiction(published, "published_ties_ranked_distinctly")["summary"]


# ---------------------------------------------------------------- tier lists


def test_tier_lists_sizes_and_names(published: Published) -> None:
    sizes = dict(published.tier_lists.group_by("tier_code").len().iter_rows())
    assert sizes == STATED_TIER_COUNTS
    names = published.tier_lists["name_zh"].to_list()
    assert set(names) == set(published.city_ranking["name_zh"].to_list())
    assert len(names) == len(set(names)) == 148


def test_tier_contradiction_matches_the_data(published: Published, tiers: pl.DataFrame) -> None:
    by_threshold = threshold_tiers(published, tiers)
    in_appendix = appendix_tiers(published)
    differing = {
        (name, by_threshold[name], in_appendix[name])
        for name in by_threshold
        if by_threshold[name] != in_appendix[name]
    }
    recorded = contradiction(published, "tier_lists_vs_thresholds")
    assert {
        (c["name_zh"], c["tier_by_threshold"], c["tier_in_appendix"]) for c in recorded["cities"]
    } == differing
    assert {name for name, _, _ in differing} == CONTRADICTION_CITIES
    ranking = {n: (r, s) for r, n, s in published.city_ranking.iter_rows()}
    for city in recorded["cities"]:
        assert ranking[city["name_zh"]] == (city["rank"], city["score"])


# ---------------------------------------------------------------- districts and counties


def test_district_mean_and_max(published: Published) -> None:
    table = published.district_ranking
    assert table.height == 50 == statement_value(published, "n_districts")
    assert round(number(table["score"].mean()), 1) == statement_value(published, "district_mean") == 69.3
    top = table.sort("rank").row(0, named=True)
    assert top["score"] == table["score"].max() == statement_value(published, "district_max") == 85.8
    assert top["name_zh"] == published.statements["district_max"]["subject"] == "深圳市南山区"


def test_county_mean_and_max(published: Published) -> None:
    table = published.county_ranking
    assert table.height == 50 == statement_value(published, "n_counties")
    assert round(number(table["score"].mean()), 1) == statement_value(published, "county_mean") == 59.7
    top = table.sort("rank").row(0, named=True)
    assert top["score"] == table["score"].max() == statement_value(published, "county_max") == 72.3
    assert top["name_zh"] == published.statements["county_max"]["subject"] == "江阴市"


@pytest.mark.parametrize("name", ["district_ranking", "county_ranking"])
def test_county_level_scores_never_increase(published: Published, name: str) -> None:
    table = getattr(published, name).sort("rank")
    assert table["rank"].to_list() == list(range(1, 51))
    scores = table["score"].to_list()
    assert all(a >= b for a, b in pairwise(scores))


def test_county_units_by_region(published: Published) -> None:
    units = pl.concat([published.district_ranking, published.county_ranking])
    by_province = dict(units.group_by("province_zh").len().iter_rows())
    assert by_province["江苏"] + by_province["浙江"] + by_province["安徽"] == statement_value(
        published, "county_units_yangtze_delta"
    )
    assert by_province["山东"] == statement_value(published, "county_units_shandong_peninsula")
    assert by_province["广东"] == statement_value(published, "county_units_greater_bay")
    fujian_coast = units.filter(
        (pl.col("province_zh") == "福建") & ~pl.col("name_zh").str.starts_with("龙岩市")
    )
    assert fujian_coast.height == statement_value(published, "county_units_fujian_coast")


def test_district_claim_contradiction_matches_the_data(published: Published) -> None:
    cities = published.city_ranking.select(
        pl.col("name_zh").alias("city"), pl.col("score").alias("city_score")
    )
    districts = published.district_ranking.with_columns(city=pl.col("name_zh").str.extract(r"^(.+?)市"))
    joined = districts.join(cities, on="city", how="left")
    recorded = contradiction(published, "district_above_city_claim")
    below = joined.filter(pl.col("score") < pl.col("city_score"))["name_zh"].to_list()
    assert set(recorded["districts_below_city"]) == set(below)
    assert len(below) == 19
    assert set(recorded["districts_without_ranked_city"]) == set(
        joined.filter(pl.col("city_score").is_null())["name_zh"]
    )


# ---------------------------------------------------------------- averages, regions, industries


def test_level1_averages_reproduce_the_city_mean(published: Published) -> None:
    weights = level1_weights()
    averages = dict(published.level1_averages.select("node_code", "average").iter_rows())
    assert set(averages) == set(weights)
    assert sum(weights.values()) == pytest.approx(1.0)
    combined = sum(weights[code] * averages[code] for code in weights)
    assert abs(combined - statement_value(published, "city_mean")) <= 0.05


def test_industry_nodes_exist_in_the_framework(published: Published) -> None:
    framework = pl.read_csv(
        DATA_DIR / "frameworks" / "city_2020.csv", schema_overrides={"parent_code": pl.String}
    )
    names = dict(framework.select("code", "name_zh").iter_rows())
    parents = dict(framework.select("code", "parent_code").iter_rows())
    for code, name in published.industry_averages.select("node_code", "name_zh").iter_rows():
        assert code in names
        assert parents[code] in ("industry_sectors", "industry_digital")
        assert name == names[code]
    sectors = {c for c, p in parents.items() if p == "industry_sectors"}
    assert sectors <= set(published.industry_averages["node_code"].to_list())
    assert set(published.industry_examples["node_code"].to_list()) <= set(
        published.industry_averages["node_code"].to_list()
    )
    assert set(published.industry_examples["name_zh"].to_list()) <= set(
        published.city_ranking["name_zh"].to_list()
    )


def test_industry_text_claims(published: Published) -> None:
    """金融、制造业及能源 lead, 农业、医疗健康 lag; every Top-10 average exceeds the overall average."""
    sectors = published.industry_averages.filter(pl.col("node_code").str.starts_with("industry_sectors_"))
    assert sectors.height == 8
    ordered = sectors.sort("average", descending=True)["name_zh"].to_list()
    assert set(ordered[:3]) == {"金融", "制造业", "能源"}
    assert set(ordered[-2:]) == {"农业", "医疗健康"}
    assert (published.industry_averages["top10_average"] > published.industry_averages["average"]).all()


def test_regions(published: Published) -> None:
    regions = published.regions
    assert dict(regions.select("region_code", "n_members").iter_rows()) == {
        "jingjinji": 13,
        "yangtze_delta": 41,
        "greater_bay": 11,
        "chengyu": 16,
    }
    assert regions.height == statement_value(published, "n_key_regions")
    # 均远高于全国城市平均得分
    assert (regions["gdp_weighted_score"] > statement_value(published, "city_mean")).all()


# ---------------------------------------------------------------- statements


def test_implied_previous_tier_counts(published: Published) -> None:
    for count, growth_id, implied_id in [
        (STATED_TIER_COUNTS["new_tier1"], "new_tier1_growth_pct", "new_tier1_count_prev_implied"),
        (STATED_TIER_COUNTS["tier2"], "tier2_growth_pct", "tier2_count_prev_implied"),
    ]:
        growth = statement_value(published, growth_id)
        candidates = [n for n in range(1, count + 1) if round(100 * (count - n) / n, 1) == growth]
        assert candidates == [statement_value(published, implied_id)]
        assert published.statements[implied_id]["derived"] is True


def test_implied_returning_figures(published: Published) -> None:
    returning = statement_value(published, "returning_cities_implied")
    assert returning == statement_value(published, "n_cities") - statement_value(published, "new_cities")
    total = number(published.city_ranking["score"].sum())
    new_mean = (total - returning * statement_value(published, "returning_mean")) / statement_value(
        published, "new_cities"
    )
    assert round(new_mean, 1) == statement_value(published, "new_cities_mean_implied")


def test_statements_are_well_formed(published: Published) -> None:
    expected = {
        "city_mean",
        "city_max",
        "district_mean",
        "county_mean",
        "new_cities",
        "returning_mean_prev",
        "returning_mean",
        "new_tier1_growth_pct",
        "tier2_growth_pct",
        "new_tier1_count_prev_implied",
        "tier2_count_prev_implied",
        "big_data_bureau_share_pct",
        "gov_cloud_share_pct",
        "xueliang_share_pct",
        "industry_digitalisation_stage_cities",
        "epidemic_peak_days_tier1",
        "epidemic_peak_days_tier4",
        "epidemic_high_period_days_tier1",
    }
    assert expected <= set(published.statements)
    for item in published.statements.values():
        assert item["quote"].strip()
        assert ("derivation" in item) == item["derived"]


# ---------------------------------------------------------------- loader


def test_missing_edition() -> None:
    assert has_published(DATA_DIR, EDITION)
    assert not has_published(DATA_DIR, 2019)
    assert load_published(DATA_DIR, 2019) is None


def test_statement_value_unknown_id(published: Published) -> None:
    with pytest.raises(KeyError, match="no statement with id 'nope'"):
        statement_value(published, "nope")


@pytest.fixture()
def broken_copy(tmp_path: Path) -> Path:
    """A copy of data/ with only the 2020 published folder, to be broken by each test."""
    target = tmp_path / "data" / "published" / str(EDITION)
    shutil.copytree(DATA_DIR / "published" / str(EDITION), target)
    return tmp_path / "data"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _folder(data_dir: Path) -> Path:
    return data_dir / "published" / str(EDITION)


def test_error_missing_column(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "city_ranking.csv", "rank,name_zh,score", "rank,name_zh,points")
    with pytest.raises(PublishedError) as info:
        load_published(broken_copy, EDITION)
    err = info.value
    assert (err.file.name, err.line, err.column) == ("city_ranking.csv", 1, "score")
    assert "missing column" in err.rule
    assert "city_ranking.csv line 1, column score: missing column" in str(err)


def test_error_non_numeric_score(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "city_ranking.csv", "3,北京,89.4", "3,北京,89,4")
    with pytest.raises(PublishedError, match=r"city_ranking.csv line 4: value .* has 4 fields, expected 3"):
        load_published(broken_copy, EDITION)


def test_error_non_numeric_score_value(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "district_ranking.csv", "深圳市南山区,85.8", "深圳市南山区,8S.8")
    with pytest.raises(PublishedError) as info:
        load_published(broken_copy, EDITION)
    err = info.value
    assert (err.file.name, err.line, err.column, err.value, err.rule) == (
        "district_ranking.csv",
        2,
        "score",
        "8S.8",
        "is not a number",
    )
    assert str(err).endswith("district_ranking.csv line 2, column score: value '8S.8' is not a number")


def test_error_score_out_of_range(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "county_ranking.csv", "江阴市,72.3", "江阴市,723")
    with pytest.raises(
        PublishedError, match=r"county_ranking.csv line 2, column score: value '723' is outside \[0, 100\]"
    ):
        load_published(broken_copy, EDITION)


def test_error_duplicate_rank(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "city_ranking.csv", "2,深圳,90.2", "1,深圳,90.2")
    with pytest.raises(PublishedError) as info:
        load_published(broken_copy, EDITION)
    err = info.value
    assert (err.file.name, err.line, err.column, err.value) == ("city_ranking.csv", 3, "rank", 1)
    assert "duplicate rank (first on line 2)" in str(err)


def test_error_duplicate_name(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "city_ranking.csv", "148,雅安,35.7", "148,舟山,35.7")
    with pytest.raises(
        PublishedError,
        match=r"line 149, column name_zh: value '舟山' duplicate name_zh \(first on line 148\)",
    ):
        load_published(broken_copy, EDITION)


def test_error_rank_gap(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "city_ranking.csv", "148,雅安,35.7", "149,雅安,35.7")
    with pytest.raises(PublishedError, match=r"column rank: value 149 ranks must run 1..148 without gaps"):
        load_published(broken_copy, EDITION)


def test_error_missing_file(broken_copy: Path) -> None:
    (_folder(broken_copy) / "regions.csv").unlink()
    with pytest.raises(PublishedError, match=r"regions.csv: file is missing"):
        load_published(broken_copy, EDITION)


def test_error_unknown_tier_code(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "tier_lists.csv", "tier1,上海,1", "tier0,上海,1")
    with pytest.raises(
        PublishedError, match=r"tier_lists.csv line 2, column tier_code: value 'tier0' is not a tier_code"
    ):
        load_published(broken_copy, EDITION)


def test_error_statement_value_not_numeric(broken_copy: Path) -> None:
    path = _folder(broken_copy) / "statements.yaml"
    _edit(path, "- id: city_mean\n  value: 57.3", "- id: city_mean\n  value: 57.3 points")
    line = path.read_text(encoding="utf-8").splitlines().index("  value: 57.3 points") + 1
    with pytest.raises(PublishedError) as info:
        load_published(broken_copy, EDITION)
    err = info.value
    assert (err.file.name, err.line, err.column, err.value) == (
        "statements.yaml",
        line,
        "value",
        "57.3 points",
    )


def test_error_statement_duplicate_id(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "statements.yaml", "- id: city_max\n", "- id: city_mean\n")
    with pytest.raises(
        PublishedError, match=r"statements.yaml line \d+, column id: value 'city_mean' duplicate id"
    ):
        load_published(broken_copy, EDITION)


def test_error_derived_without_derivation(broken_copy: Path) -> None:
    path = _folder(broken_copy) / "statements.yaml"
    _edit(path, "  derivation: 148 - 35 = 113", "  comment: 148 - 35 = 113")
    with pytest.raises(
        PublishedError, match=r"statements.yaml line \d+, column derivation: missing or empty"
    ):
        load_published(broken_copy, EDITION)


def test_error_contradiction_without_treatment(broken_copy: Path) -> None:
    _edit(
        _folder(broken_copy) / "contradictions.yaml",
        "  pipeline_treatment: Use tiers.csv",
        "  treatment: Use tiers.csv",
    )
    with pytest.raises(
        PublishedError, match=r"contradictions.yaml line \d+, column pipeline_treatment: missing or empty"
    ):
        load_published(broken_copy, EDITION)


def test_error_tier_list_position(broken_copy: Path) -> None:
    _edit(_folder(broken_copy) / "tier_lists.csv", "tier1,深圳,2", "tier1,深圳,7")
    with pytest.raises(
        PublishedError, match=r"tier_lists.csv line 3, column position: value 7 expected position 2"
    ):
        load_published(broken_copy, EDITION)
