"""The dimension frames against the reference files they come from: tier bounds that put every score in
the tier the index assigns, every registry unit with its kind and code change, one indicator tree per
edition with the composite at its root."""

from __future__ import annotations

import polars as pl

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.dimensions import (
    indicator_dimension,
    region_member_dimension,
    tier_dimension,
    unit_dimension,
)
from dei_pipeline.frameworks import load_framework
from dei_pipeline.registry import load_registry
from dei_pipeline.tiers import load_tiers, tier_expr
from dei_pipeline.warehouse import TABLES

DATA = REPO_ROOT / "data"


def test_tier_bounds_put_every_score_in_the_tier_the_index_assigns() -> None:
    tiers = load_tiers(DATA)
    dim = tier_dimension(tiers)
    assert dim.columns == TABLES["marts.dim_tier"].column_names
    assert dim["name_zh"].to_list() == ["一线", "新一线", "二线", "三线", "四线"]
    scores = pl.DataFrame(
        {"score": [x / 10 for x in range(1001)]}
    )  # every one-decimal score, the bounds included
    assigned = scores.with_columns(tier_expr(pl.col("score"), tiers, 1).alias("tier"))
    for tier in dim.iter_rows(named=True):
        above = (
            pl.col("score") >= tier["lower_bound"]
            if tier["lower_inclusive"]
            else pl.col("score") > tier["lower_bound"]
        )
        below = (
            pl.lit(True)
            if tier["upper_bound"] is None
            else (
                pl.col("score") <= tier["upper_bound"]
                if tier["upper_inclusive"]
                else pl.col("score") < tier["upper_bound"]
            )
        )
        by_bounds = assigned.filter(above & below)
        assert by_bounds.height > 0 and set(by_bounds["tier"]) == {tier["tier_code"]}, tier["tier_code"]
        assert by_bounds.height == assigned.filter(pl.col("tier") == tier["tier_code"]).height
    assert (
        dim.filter(pl.col("tier_code") == "new_tier1").row(0, named=True)["score_range"]
        == "65 <= score <= 85"
    )


def test_every_registry_unit_once_with_kind_editions_and_code_change() -> None:
    registry = load_registry(DATA)
    scored = pl.DataFrame({"unit_code": ["110000", "110000", "320684"], "survey_year": [2019, 2020, 2020]})
    units = unit_dimension(registry, scored)
    assert units.columns == TABLES["marts.dim_unit"].column_names
    assert units.height == 248 and units["unit_code"].n_unique() == 248
    assert units.group_by("kind").len().sort("kind").rows() == [
        ("city", 148),
        ("county", 50),
        ("district", 50),
    ]
    beijing = units.filter(pl.col("unit_code") == "110000").row(0, named=True)
    assert (
        beijing["editions_scored"],
        beijing["n_editions_scored"],
        beijing["first_edition"],
        beijing["last_edition"],
    ) == ("2019,2020", 2, 2019, 2020)
    assert (beijing["prefecture_code"], beijing["kind_zh"]) == ("110000", "地级及以上城市")
    haimen = units.filter(pl.col("unit_code") == "320684").row(0, named=True)
    assert (
        haimen["current_code"],
        haimen["current_name_zh"],
        haimen["code_change_year"],
        haimen["kind_en"],
    ) == ("320614", "南通市海门区", 2020, "county or county-level city")
    never = units.filter(pl.col("unit_code") == "120000").row(0, named=True)
    assert (never["editions_scored"], never["n_editions_scored"], never["first_edition"]) == ("", 0, None)


def test_region_members_per_edition_with_hong_kong_and_macao_unscored() -> None:
    registry = load_registry(DATA)
    members = region_member_dimension(
        registry, pl.DataFrame({"survey_year": [2020], "unit_code": ["440300"]}), [2019, 2020]
    )
    assert members.height == 2 * registry.region_members.height
    bay_2020 = members.filter((pl.col("survey_year") == 2020) & (pl.col("region_code") == "greater_bay"))
    assert bay_2020.filter(pl.col("unit_code").is_null())["member_name_zh"].sort().to_list() == [
        "澳门",
        "香港",
    ]
    assert bay_2020.filter(pl.col("is_scored"))["unit_code"].to_list() == ["440300"]
    assert members.filter(pl.col("survey_year") == 2019)["is_scored"].sum() == 0


def test_one_indicator_tree_per_edition_with_the_composite_at_the_root() -> None:
    fw = load_framework(DATA / "frameworks" / "city_2020.csv")
    framework = pl.concat(
        [
            fw.nodes.select(
                pl.lit(year, pl.Int32).alias("survey_year"),
                pl.lit("city").alias("unit_type"),
                pl.col("code").alias("node_code"),
                "parent_code",
                "level",
                "name_zh",
                "name_en",
                "weight",
                "effective_weight",
                pl.lit("city_2020.csv").alias("framework_file"),
            )
            for year in (2019, 2020)
        ]
    )
    tree = indicator_dimension(framework)
    assert tree.columns == TABLES["marts.dim_indicator"].column_names
    for year in (2019, 2020):
        edition = tree.filter(pl.col("survey_year") == year)
        assert edition.height == fw.nodes.height + 1
        root = edition.row(0, named=True)
        assert (
            root["node_code"],
            root["level"],
            root["parent_code"],
            root["name_zh"],
            root["effective_weight"],
        ) == ("composite", 0, None, "综合指数", 1.0)
        assert set(edition.filter(pl.col("level") == 1)["parent_code"]) == {"composite"}
        assert set(edition.filter(pl.col("is_leaf"))["node_code"]) == set(fw.leaf_codes)
        # Every parent is a node of the same tree.
        assert set(edition["parent_code"].drop_nulls()) <= set(edition["node_code"])
