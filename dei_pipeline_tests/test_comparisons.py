"""Year-over-year comparison: statuses, changes, cohorts and tier counts, by hand."""

import polars as pl
import pytest

from dei_pipeline.comparisons import cohort_summary, previous_editions, tier_summary, unit_changes
from dei_pipeline.config import REPO_ROOT
from dei_pipeline.tiers import load_tiers

HISTORY = pl.DataFrame(
    {
        "survey_year": [2017, 2019, 2019, 2019, 2020, 2020, 2020],
        "unit_code": ["a", "a", "b", "c", "a", "b", "d"],
        "score": [40.0, 50.0, 60.0, 70.0, 55.0, 58.0, 41.0],
        "rank": [1, 3, 2, 1, 2, 1, 3],
        "tier": ["tier3", "tier2", "tier2", "new_tier1", "tier2", "tier2", "tier3"],
    },
    schema_overrides={"survey_year": pl.Int32, "rank": pl.Int32},
)


def test_previous_edition_is_the_latest_earlier_one_with_data() -> None:
    # There is no 2018 edition: 2019 is compared with 2017.
    assert dict(previous_editions([2020, 2017, 2019]).iter_rows()) == {2017: None, 2019: 2017, 2020: 2019}
    assert (
        previous_editions([]).height == 0
    )  # a unit type no edition has (the early editions score no county)


def test_unit_statuses_and_changes() -> None:
    prev = previous_editions([2017, 2019, 2020])
    changes = unit_changes(
        HISTORY.filter(pl.col("survey_year") == 2020), HISTORY, prev, ["score", "rank", "tier"]
    )
    by_unit = {r["unit_code"]: r for r in changes.iter_rows(named=True)}
    assert by_unit["a"]["status"] == "returning"
    assert by_unit["a"]["score_change"] == pytest.approx(5.0)
    assert by_unit["a"]["rank_change"] == 1  # 3rd -> 2nd: moved up one
    assert (by_unit["a"]["tier"], by_unit["a"]["prev_tier"]) == ("tier2", "tier2")
    assert by_unit["d"]["status"] == "new" and by_unit["d"]["prev_score"] is None
    assert (
        by_unit["c"]["status"] == "dropped"
        and by_unit["c"]["score"] is None
        and by_unit["c"]["prev_score"] == 70.0
    )
    assert set(by_unit) == {"a", "b", "c", "d"}


def test_cohort_summary_returning_averages() -> None:
    prev = previous_editions([2017, 2019, 2020])
    changes = unit_changes(
        HISTORY.filter(pl.col("survey_year") == 2020), HISTORY, prev, ["score", "rank", "tier"]
    )
    row = cohort_summary(changes, "city").row(0, named=True)
    assert (row["n_units"], row["n_new"], row["n_returning"], row["n_dropped"], row["prev_year"]) == (
        3,
        1,
        2,
        1,
        2019,
    )
    assert row["returning_mean"] == pytest.approx((55 + 58) / 2)
    assert row["returning_prev_mean"] == pytest.approx((50 + 60) / 2)


def test_cohort_ranks_compare_the_same_units_by_hand() -> None:
    # 2019: c 1st, b 2nd, a 3rd; 2020: b 1st, a 2nd, d 3rd (new); c dropped. Within the cohort {a, b}
    # a was 2nd and is 2nd: published, it "rose" one place only because c left.
    prev = previous_editions([2017, 2019, 2020])
    changes = unit_changes(
        HISTORY.filter(pl.col("survey_year") == 2020), HISTORY, prev, ["score", "rank", "tier"]
    )
    by_unit = {r["unit_code"]: r for r in changes.iter_rows(named=True)}
    assert (
        by_unit["a"]["rank_change"],
        by_unit["a"]["prev_cohort_rank"],
        by_unit["a"]["cohort_rank"],
        by_unit["a"]["cohort_rank_change"],
    ) == (1, 2, 2, 0)
    assert (by_unit["b"]["rank_change"], by_unit["b"]["cohort_rank_change"]) == (1, 0)
    assert by_unit["d"]["cohort_rank"] is None and by_unit["c"]["cohort_rank"] is None


def test_cohort_ranks_within_the_kind_and_with_ties() -> None:
    history = pl.DataFrame(
        {
            "survey_year": [2019] * 4 + [2020] * 4,
            "unit_code": ["a", "b", "c", "x"] * 2,
            "kind": ["county", "county", "county", "district"] * 2,
            "score": [50.0, 50.0, 40.0, 10.0, 60.0, 55.0, 55.0, 20.0],
            "rank": [1, 1, 3, 1, 1, 2, 2, 1],  # ties share the best rank, within the kind
        },
        schema_overrides={"survey_year": pl.Int32, "rank": pl.Int32},
    )
    prev = previous_editions([2019, 2020])
    changes = unit_changes(
        history.filter(pl.col("survey_year") == 2020), history, prev, ["score", "rank", "kind"]
    )
    ranks = {r["unit_code"]: (r["prev_cohort_rank"], r["cohort_rank"]) for r in changes.iter_rows(named=True)}
    assert ranks == {"a": (1, 1), "b": (1, 2), "c": (3, 2), "x": (1, 1)}


def test_cohort_means_average_the_same_units_on_both_sides() -> None:
    # b returns but is unscored now: counting its 20 before only would give 60 - (50 + 20) / 2 = 25.
    history = pl.DataFrame(
        {
            "survey_year": [2019, 2019, 2020, 2020],
            "unit_code": ["a", "b", "a", "b"],
            "score": [50.0, 20.0, 60.0, None],
            "rank": [1, 2, 1, None],
        },
        schema_overrides={"survey_year": pl.Int32, "rank": pl.Int32},
    )
    changes = unit_changes(
        history.filter(pl.col("survey_year") == 2020),
        history,
        previous_editions([2019, 2020]),
        ["score", "rank"],
    )
    row = cohort_summary(changes, "city").row(0, named=True)
    assert (row["n_returning"], row["n_cohort"]) == (2, 1)
    assert (row["returning_prev_mean"], row["returning_mean"], row["returning_mean_change"]) == pytest.approx(
        (50.0, 60.0, 10.0)
    )


def test_tier_summary_change_pct() -> None:
    prev = previous_editions([2017, 2019, 2020])
    summary = tier_summary(
        HISTORY.filter(pl.col("survey_year") == 2020), HISTORY, prev, load_tiers(REPO_ROOT / "data")
    )
    rows = {r["tier"]: r for r in summary.iter_rows(named=True)}
    assert (rows["tier2"]["n_cities"], rows["tier2"]["prev_n_cities"]) == (2, 2)
    assert rows["tier2"]["change_pct"] == pytest.approx(0.0)
    assert (rows["new_tier1"]["n_cities"], rows["new_tier1"]["change_pct"]) == (0, pytest.approx(-100.0))
    assert rows["tier3"]["prev_n_cities"] == 0 and rows["tier3"]["change_pct"] is None
