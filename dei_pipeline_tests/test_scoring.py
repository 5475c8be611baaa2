"""Measurements to scores (dei_pipeline/scoring/): every normalisation and its direction, goalposts
across editions, the JRC winsorisation rule, each imputation rule and the coverage threshold, with
figures derived by hand."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from dei_pipeline.frameworks import FrameworkError, load_framework
from dei_pipeline.scoring.method import METHOD_SCHEMA
from dei_pipeline.scoring.stage import ScoringRule, score_measurements, summarise
from dei_pipeline.scoring.statistics import kurtosis, skewness
from dei_pipeline.scoring.treatment import TreatmentRule


def method(**overrides: object) -> dict:
    base = {
        "indicator_code": "x",
        "unit": None,
        "direction": "higher",
        "normalisation": "minmax",
        "goal_low": None,
        "goal_high": None,
        "target": None,
        "log": False,
        "treatment": "none",
        "imputation": "none",
        "peer_group": None,
    }
    return {**base, **overrides}


def methods(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=METHOD_SCHEMA).with_columns(pl.lit("city").alias("unit_type"))


def cells(
    values: list[float | None], year: int = 2020, code: str = "x", units: list[str] | None = None
) -> pl.DataFrame:
    units = units or [f"{i:06d}" for i in range(len(values))]
    return pl.DataFrame(
        {
            "survey_year": [year] * len(values),
            "unit_type": ["city"] * len(values),
            "unit_code": units,
            "indicator_code": [code] * len(values),
            "measurement": values,
        },
        schema={
            "survey_year": pl.Int32,
            "unit_type": pl.String,
            "unit_code": pl.String,
            "indicator_code": pl.String,
            "measurement": pl.Float64,
        },
    )


def scores(
    values: list[float | None], rule: ScoringRule | None = None, **overrides: object
) -> list[float | None]:
    out = score_measurements(cells(values), methods(method(**overrides)), rule=rule)
    return [None if s is None else round(s, 6) for s in out["score"]]


# --- normalisation ---------------------------------------------------------------------------------


def test_minmax_and_its_direction() -> None:
    # min 2, max 10: (x - 2) / 8
    assert scores([2, 4, 6, 10]) == [0.0, 25.0, 50.0, 100.0]
    assert scores([2, 4, 6, 10], direction="lower") == [100.0, 75.0, 50.0, 0.0]


def test_goalposts_cap_and_direction() -> None:
    # goalposts [0, 20]: 5 -> 25, 25 above the top goalpost -> 100, -4 below the bottom -> 0
    assert scores([5, 25, -4], normalisation="goalposts", goal_low=0.0, goal_high=20.0) == [25.0, 100.0, 0.0]
    assert scores(
        [5, 25, -4], normalisation="goalposts", goal_low=0.0, goal_high=20.0, direction="lower"
    ) == [
        75.0,
        0.0,
        100.0,
    ]


def test_goalposts_mean_the_same_in_two_editions_and_minmax_does_not() -> None:
    # The unit measuring 10 in 2020 (others 0 and 20) and in 2021 (others 5 and 40): goalposts [0, 40]
    # give 25 both years; min-max gives 50 in 2020 and (10 - 5) / 35 = 14.285714 in 2021.
    two = pl.concat([cells([0, 10, 20], 2020), cells([5, 10, 40], 2021)])
    goal = score_measurements(two, methods(method(normalisation="goalposts", goal_low=0.0, goal_high=40.0)))
    minmax = score_measurements(two, methods(method()))
    middle = pl.col("unit_code") == "000001"
    assert goal.filter(middle)["score"].to_list() == [25.0, 25.0]
    assert [round(s, 6) for s in minmax.filter(middle)["score"]] == [50.0, 14.285714]


def test_goalposts_on_a_log_scale() -> None:
    # [1, 100] on a log scale: 10 is half way (ln 10 / ln 100), 1000 is capped at 100
    assert scores([10, 1000, 1], normalisation="goalposts", goal_low=1.0, goal_high=100.0, log=True) == [
        50.0,
        100.0,
        0.0,
    ]


def test_zscore_clipped_and_rescaled() -> None:
    # 1..5: mean 3, sd sqrt(2.5) = 1.581139; 5 -> z = 1.264911 -> 50 + 50 z / 3 = 71.081851
    assert scores([1, 2, 3, 4, 5], normalisation="zscore") == [
        28.918149,
        39.459074,
        50.0,
        60.540926,
        71.081851,
    ]
    # clip 1: z of 5 (1.26) is clipped to 1 -> 100; z of 4 (0.632456) -> (1 + 0.632456) / 2 = 81.6228
    clipped = scores([1, 2, 3, 4, 5], ScoringRule(zscore_clip=1.0), normalisation="zscore")
    assert clipped[3:] == [81.622777, 100.0]
    assert scores([1, 2, 3, 4, 5], normalisation="zscore", direction="lower")[4] == 28.918149


def test_percentile_rank_with_ties() -> None:
    # average ranks 1, 4, 2.5, 2.5 -> (r - 1) / 3
    assert scores([10, 30, 20, 20], normalisation="rank") == [0.0, 100.0, 50.0, 50.0]
    assert scores([10, 30, 20, 20], normalisation="rank", direction="lower") == [100.0, 0.0, 50.0, 50.0]


def test_distance_to_target() -> None:
    # target 8, min 2: (x - 2) / 6, capped at 1
    assert scores([2, 5, 8, 11], normalisation="target", target=8.0) == [0.0, 50.0, 100.0, 100.0]
    # lower is better, target 4, max 10: (10 - x) / 6
    assert scores([1, 4, 7, 10], normalisation="target", target=4.0, direction="lower") == [
        100.0,
        100.0,
        50.0,
        0.0,
    ]


# --- outlier treatment ------------------------------------------------------------------------------


def test_skewness_and_kurtosis_as_coinr() -> None:
    # x = 1, 2, 3, 10: deviations -3, -2, -1, 6; m2 = 50, m3 = 180, m4 = 1394 (sums)
    # G1 = sqrt(4) 180 / 50^1.5 * sqrt(4 * 3) / 2 = 1.763632
    # r = 4 * 1394 / 2500 = 2.2304; G2 = ((5)(r - 3) + 6)(3) / ((2)(1)) = 3.228
    frame = pl.DataFrame({"v": [1.0, 2.0, 3.0, 10.0]})
    g1, g2 = frame.select(skewness(pl.col("v")).alias("s"), kurtosis(pl.col("v")).alias("k")).row(0)
    assert g1 == pytest.approx(1.763632, abs=1e-6)
    assert g2 == pytest.approx(3.228, abs=1e-9)


def test_winsorisation_by_the_jrc_rule() -> None:
    # COINr's example: 1..10, 30, 100 is skewed (3.0632) and heavy-tailed (9.7414); 100 is set to the
    # next value, 30, after which the column passes (skewness 1.7120 < 2): one point winsorised.
    values = [*range(1, 11), 30, 100]
    frame = score_measurements(cells(values), methods(method(treatment="winsorise")))
    assert frame["treated_value"].to_list() == [*range(1, 11), 30, 30]
    assert frame["treatment_rule"].to_list() == [None] * 11 + ["winsorised_high"]
    # min-max after treatment: 30 -> 100, 10 -> (10 - 1) / 29
    assert frame["score"][9] == pytest.approx(900 / 29)
    summary = summarise(frame, methods(method(treatment="winsorise")))
    row = summary.row(0, named=True)
    assert row["n_winsorised"] == 1 and row["outliers_before"]
    assert row["skewness_before"] == pytest.approx(3.0632, abs=1e-4)
    assert row["kurtosis_before"] == pytest.approx(9.7414, abs=1e-4)
    assert row["skewness_after"] == pytest.approx(1.7120, abs=1e-4)
    assert row["kurtosis_after"] == pytest.approx(1.8158, abs=1e-4)
    # No treatment configured: untouched.
    assert score_measurements(cells(values), methods(method()))["treated"].sum() == 0


def test_winsorisation_limit_then_log_fallback() -> None:
    # With at most one point, 2000 goes to 1000 and the column (1..20, 1000, 1000) still fails (skewness
    # 3.0566, kurtosis 8.0766), so the untreated values are log-transformed (log_CT):
    # log(x - 1 + 0.01 * 1999).
    values = [*range(1, 21), 1000, 2000]
    rule = ScoringRule(treatment=TreatmentRule(max_points=1))
    frame = score_measurements(cells(values), methods(method(treatment="winsorise")), rule=rule)
    assert set(frame["treatment_rule"]) == {"log"}
    assert frame["treated_value"][0] == pytest.approx(math.log(19.99))
    assert frame["treated_value"][21] == pytest.approx(math.log(1999 + 19.99))
    # ... and with the fallback off, the winsorised values stay.
    off = ScoringRule(treatment=TreatmentRule(max_points=1, log_fallback=False))
    kept = score_measurements(cells(values), methods(method(treatment="winsorise")), rule=off)
    assert kept["treated_value"].to_list()[-2:] == [1000.0, 1000.0]


def test_a_log_fallback_turns_goalposts_into_minmax() -> None:
    values = [*range(1, 21), 1000, 2000]
    rule = ScoringRule(treatment=TreatmentRule(max_points=1))
    frame = score_measurements(
        cells(values),
        methods(method(treatment="winsorise", normalisation="goalposts", goal_low=0.0, goal_high=500.0)),
        rule=rule,
    )
    assert frame["score"][0] == 0.0 and frame["score"][21] == 100.0
    assert frame["normalisation_rule"][0] == "minmax (instead of goalposts: log fallback), higher is better"


# --- imputation and coverage --------------------------------------------------------------------------


def peers(provinces: list[str], year: int = 2020) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "survey_year": [year] * len(provinces),
            "unit_type": ["city"] * len(provinces),
            "unit_code": [f"{i:06d}" for i in range(len(provinces))],
            "province": provinces,
        },
        schema={
            "survey_year": pl.Int32,
            "unit_type": pl.String,
            "unit_code": pl.String,
            "province": pl.String,
        },
    )


@pytest.mark.parametrize(
    ("imputation", "peer_group", "expected", "rule"),
    [
        # province 11 has 10, 20, 60 besides the blank: mean 30, median 20; all: mean of 10, 20, 60, 100 = 47.5
        ("group_mean", "province", 30.0, "group_mean: province=11 (3 peers)"),
        ("group_median", "province", 20.0, "group_median: province=11 (3 peers)"),
        ("group_mean", "all", 47.5, "group_mean: all (4 peers)"),
        ("group_median", "all", 40.0, "group_median: all (4 peers)"),
    ],
)
def test_peer_group_imputation(imputation: str, peer_group: str, expected: float, rule: str) -> None:
    frame = score_measurements(
        cells([10, 20, 60, None, 100]),
        methods(method(imputation=imputation, peer_group=peer_group)),
        peers(["11", "11", "11", "11", "12"]),
    )
    blank = frame.row(3, named=True)
    assert blank["imputed"] and blank["imputed_value"] == expected and blank["imputation_rule"] == rule
    assert blank["score"] == pytest.approx((expected - 10) / 90 * 100)
    assert frame["imputed"].sum() == 1


def test_previous_edition_carries_the_last_observation_forward() -> None:
    # Unit 0: 7 in 2019, blank in 2020 -> 7 (edition 2019). Unit 1: 5 in 2018, blank in 2019 and 2020 -> 5 (2018).
    history = pl.concat([cells([3.0, 5.0], 2018), cells([7.0, None], 2019)])
    frame = score_measurements(
        cells([None, None, 1.0, 9.0], 2020),
        methods(method(imputation="previous")),
        history=history,
    )
    assert frame["imputed_value"].to_list() == [7.0, 5.0, 1.0, 9.0]
    assert frame["imputation_rule"].to_list()[:2] == ["previous: edition 2019", "previous: edition 2018"]
    # min-max over 1, 5, 7, 9: 7 -> 75
    assert frame["score"][0] == 75.0


def test_no_imputation_leaves_the_cell_missing() -> None:
    frame = score_measurements(cells([1.0, None, 3.0]), methods(method()))
    assert frame["status"].to_list() == ["scored", "missing", "scored"]
    assert frame["score"][1] is None


def test_a_unit_below_the_coverage_threshold_is_not_scored() -> None:
    # Unit 0 has 1 of 3 indicators (0.33 < 0.5): not scored, and its value feeds no peer statistic.
    # Unit 1 has 2 of 3 (0.67): its blank 'y' is imputed from the scored units only (unit 2: 30).
    rows = pl.concat(
        [
            cells([100.0, 10.0, 20.0], code="x"),
            cells([None, None, 30.0], code="y"),
            cells([None, 5.0, 6.0], code="z"),
        ]
    )
    all_methods = methods(
        method(indicator_code="x"),
        method(
            indicator_code="y",
            imputation="group_mean",
            peer_group="all",
            normalisation="goalposts",
            goal_low=0.0,
            goal_high=60.0,
        ),
        method(indicator_code="z"),
    )
    frame = score_measurements(rows, all_methods, rule=ScoringRule(min_unit_coverage=0.5)).sort("unit_code")
    unit0 = frame.filter(pl.col("unit_code") == "000000")
    assert set(unit0["status"]) == {"unit_below_coverage"} and unit0["score"].is_null().all()
    assert unit0["unit_coverage"][0] == pytest.approx(1 / 3)
    y1 = frame.filter((pl.col("unit_code") == "000001") & (pl.col("indicator_code") == "y")).row(
        0, named=True
    )
    assert y1["imputed_value"] == 30.0 and y1["status"] == "scored"
    # min-max of x over the scored units 10 and 20 only (unit 0's 100 is left out of the statistics).
    x = frame.filter(pl.col("indicator_code") == "x")
    assert x["score"].to_list() == [None, 0.0, 100.0]


# --- the method columns of a framework file ------------------------------------------------------------


FRAMEWORK = (
    "code,parent_code,name_zh,name_en,weight,unit,direction,normalisation,goal_low,goal_high,target,log,"
    "treatment,imputation,peer_group\n"
    "a,,甲,A,1,,,,,,,,,,\n"
    "a_x,a,乙,X,0.5,%,higher,goalposts,0,100,,,none,none,\n"
    "a_y,a,丙,Y,0.5,days,lower,{normalisation},,,,,winsorise,group_median,province\n"
)


def test_method_columns_are_read(tmp_path: Path) -> None:
    path = tmp_path / "city_2020.csv"
    path.write_text(FRAMEWORK.format(normalisation="rank"), encoding="utf-8")
    fw = load_framework(path)
    assert fw.methods is not None
    assert fw.methods.select(
        "indicator_code", "direction", "normalisation", "goal_high", "peer_group"
    ).rows() == [
        ("a_x", "higher", "goalposts", 100.0, None),
        ("a_y", "lower", "rank", None, "province"),
    ]


def test_a_bad_method_cell_is_named(tmp_path: Path) -> None:
    path = tmp_path / "city_2020.csv"
    path.write_text(FRAMEWORK.format(normalisation="maxmin"), encoding="utf-8")
    with pytest.raises(
        FrameworkError,
        match=r"line 4, node 'a_y', column normalisation: value 'maxmin' breaks rule: one of minmax, goalposts",
    ):
        load_framework(path)


def test_a_framework_without_method_columns_has_no_methods(tmp_path: Path) -> None:
    path = tmp_path / "city_2020.csv"
    path.write_text("code,parent_code,name_zh,name_en,weight\na,,甲,A,1\n", encoding="utf-8")
    assert load_framework(path).methods is None


# --- validation of measurement files -------------------------------------------------------------------


def test_measurements_of_any_sign_and_size_or_blank_pass_and_text_is_named() -> None:
    from dei_pipeline.ingest import RAW_SCHEMA
    from dei_pipeline.validation import IndicatorValidationError, Reference, validate_cells

    values = ["-12.5", "1e6", "", "abc", "nan"]
    raw = pl.DataFrame(
        {
            "survey_year": [2020] * 5,
            "unit_type": ["city"] * 5,
            "source_file": ["raw/2020/cities_measurements.csv"] * 5,
            "content_hash": ["h"] * 5,
            "line_number": [2, 3, 4, 5, 6],
            "unit_code": ["110000", "120000", "130100", "130200", "130300"],
            "unit_name": ["北京", "天津", "石家庄", "唐山", "秦皇岛"],
            "indicator_code": ["x"] * 5,
            "raw_value": values,
            "value_kind": ["measurement"] * 5,
        }
    ).cast(RAW_SCHEMA)
    names = raw.select("unit_type", "unit_code", pl.col("unit_name").alias("name_zh"))
    reference = Reference({"city": ["x"]}, names)
    valid = validate_cells(raw.head(3), reference, value_kind="measurement")
    assert valid["score"].to_list() == [-12.5, 1e6, None]
    with pytest.raises(IndicatorValidationError) as caught:
        validate_cells(raw, reference, value_kind="measurement")
    assert caught.value.failures.select("line_number", "column_name", "value").rows() == [
        (5, "x", "abc"),
        (6, "x", "nan"),
    ]
    assert (
        "raw/2020/cities_measurements.csv line 5, column x: value 'abc' breaks rule: measurement is a number or blank"
        in str(caught.value)
    )
    assert "not text, NaN or infinite) (unit 130200 唐山)" in str(caught.value)
    assert "raw/2020/cities_measurements.csv line 6" in str(caught.value)
    # The same cells as scores: blank, negative and 1e6 break the score rules.
    with pytest.raises(IndicatorValidationError) as as_scores:
        validate_cells(raw.head(3), reference)
    assert as_scores.value.failures.height == 3


# --- peer groups and the method checks of measured indicators -------------------------------------------


def test_peer_groups_take_the_tier_of_the_latest_earlier_edition() -> None:
    from dei_pipeline.scoring.peers import peer_groups

    cities = pl.DataFrame({"unit_code": ["110000", "120000"], "province_code": ["11", "12"]})
    counties = pl.DataFrame({"unit_code": ["130209"], "province_code": ["13"], "kind": ["district"]})
    tiers = pl.DataFrame(
        {
            "survey_year": [2018, 2019, 2018],
            "unit_code": ["110000", "110000", "120000"],
            "tier": ["tier2", "tier1", "tier3"],
        },
        schema={"survey_year": pl.Int32, "unit_code": pl.String, "tier": pl.String},
    )
    peers = peer_groups(cities, counties, tiers, 2020).sort("unit_code")
    assert peers.select("unit_code", "province", "county_kind", "tier").rows() == [
        ("110000", "11", None, "tier1"),  # 2019, the latest before 2020
        ("120000", "12", None, "tier3"),  # not in 2019: its 2018 tier
        ("130209", "13", "district", None),
    ]


def test_a_measured_indicator_without_a_method_or_with_a_non_positive_log_value_is_named() -> None:
    from types import SimpleNamespace
    from typing import cast

    from dei_pipeline.frameworks import Framework
    from dei_pipeline.validation import measurement_method_failures

    valid = pl.DataFrame(
        {
            "unit_type": ["city", "city"],
            "indicator_code": ["a_x", "a_y"],
            "score": [0.0, 3.0],
            "source_file": ["raw/2020/cities_measurements.csv"] * 2,
            "line_number": [2, 2],
            "unit_code": ["110000", "110000"],
        }
    )
    fw = SimpleNamespace(
        methods=methods(
            method(indicator_code="a_x", normalisation="goalposts", goal_low=1.0, goal_high=10.0, log=True),
            method(indicator_code="a_y", normalisation=None),
        ).drop("unit_type"),
        leaf_codes=["a_x", "a_y"],
        source_file=Path("city_2020.csv"),
    )
    error = measurement_method_failures(valid, {"city": cast(Framework, fw)}, 2020)
    assert error is not None
    assert error.failures.select("line_number", "column_name", "value").rows() == [
        (1, "a_y", ""),
        (2, "a_x", "0.0"),
    ]
    assert (
        "column a_x: value '0.0' breaks rule: measurement is > 0 (the indicator is normalised on a log scale)"
        in str(error)
    )
