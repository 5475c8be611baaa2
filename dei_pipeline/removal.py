"""The guard against mass removal of units from an edition.

To the pipeline, a raw file deleted, renamed or cut short by mistake looks like an edition with fewer
units, and a run would replace the edition's rows with the smaller set: 148 cities become 0, and the
BI snapshot publishes an empty edition. So a run that would remove from the warehouse every unit of
a type (cities, county units) of an edition that has them, or more than ``removal.max_share`` of them
(``data/method/settings.yaml``), is refused with what would be lost, unless the run is confirmed:
``dei materialize --confirm-removal``, or the run tag ``dei/confirm_removal=true`` on a launch from the
Dagster UI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from dei_pipeline.ingest import QUARANTINE_SCHEMA, UNIT_TYPE_BY_STEM

# The run tag that confirms a removal; `dei materialize --confirm-removal` sets it.
CONFIRM_REMOVAL_TAG = "dei/confirm_removal"
UNIT_KEYS = ["survey_year", "unit_type", "unit_code"]
PLURAL: dict[str, str] = {"city": "cities", "county": "county units"}
STEM_OF: dict[str, str] = {unit_type: stem for stem, unit_type in UNIT_TYPE_BY_STEM.items()}
MAX_UNITS_NAMED = 10


class MassRemovalError(ValueError):
    """A run that would remove too many of an edition's units. Not a cell problem: nothing to quarantine."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.failures = pl.DataFrame(schema=QUARANTINE_SCHEMA)


def removal_confirmed(tags: Mapping[str, str]) -> bool:
    """Whether the run's tags confirm a removal (``dei/confirm_removal`` set to true)."""
    return tags.get(CONFIRM_REMOVAL_TAG, "").strip().lower() in ("true", "yes", "1")


def mass_removals(
    present: pl.DataFrame,
    incoming: Mapping[int, pl.DataFrame],
    max_share: float,
    names: Callable[[], pl.DataFrame] | None = None,
) -> dict[int, MassRemovalError]:
    """The editions of ``incoming`` whose new rows would remove too many units from the warehouse.

    ``present``: the units in the warehouse (survey_year, unit_type, unit_code); ``incoming``: each
    edition's new rows (with unit_type, unit_code and source_file); ``names``: gives unit_type,
    unit_code and name_zh of known units, to name the units lost (called only then: loading the
    registry costs time at national scale). An edition is refused when a unit type would lose all its
    units, or more than ``max_share`` of them."""
    refused: dict[int, MassRemovalError] = {}
    for year, rows in sorted(incoming.items()):
        before = (
            present.filter(pl.col("survey_year") == year)
            .select(UNIT_KEYS)
            .cast({"survey_year": pl.Int32})
            .unique()
        )
        after = rows.select(pl.lit(year, pl.Int32).alias("survey_year"), "unit_type", "unit_code").unique()
        lost = before.join(after, on=UNIT_KEYS, how="anti")
        problems = []
        for (unit_type,), lost_units in lost.sort("unit_type", "unit_code").group_by(
            "unit_type", maintain_order=True
        ):
            total = before.filter(pl.col("unit_type") == unit_type).height
            if lost_units.height == total or lost_units.height > max_share * total:
                problems.append(
                    _what_is_lost(year, str(unit_type), lost_units, total, rows, max_share, names)
                )
        if problems:
            refused[year] = MassRemovalError(
                "\n".join(problems)
                + f"\nIf this is intended, confirm it: `dei materialize --years {year} --confirm-removal`, "
                f"or launch the run from the Dagster UI with the tag {CONFIRM_REMOVAL_TAG}=true."
            )
    return refused


def _what_is_lost(
    year: int,
    unit_type: str,
    lost: pl.DataFrame,
    total: int,
    rows: pl.DataFrame,
    max_share: float,
    names: Callable[[], pl.DataFrame] | None,
) -> str:
    plural = PLURAL.get(unit_type, f"{unit_type} units")
    files = (
        sorted(rows.filter(pl.col("unit_type") == unit_type)["source_file"].unique())
        if "source_file" in rows.columns
        else []
    )
    if lost.height == total:
        how_many = f"all {total} {plural}"
        # Why, as far as the run can tell: no file at all, or a file without any of them.
        why = (
            f"no raw file of {plural} was read: raw/{year}/{STEM_OF.get(unit_type, unit_type)}.csv (or .parquet, .xlsx) is missing"
            if not files
            else f"none of them is in {', '.join(files)}"
        )
    else:
        how_many = f"{lost.height} of the {total} {plural} ({lost.height / total:.0%})"
        why = (
            f"{' and '.join(files) or 'the raw files'} now hold(s) only {total - lost.height} of them; no more than {max_share:.0%} "
            "may go without confirmation: removal.max_share in data/method/settings.yaml"
        )
    if names is not None:
        lost = lost.join(
            names().select("unit_type", "unit_code", "name_zh"), on=["unit_type", "unit_code"], how="left"
        )
    named = [
        f"{row['unit_code']} {row.get('name_zh') or ''}".strip()
        for row in lost.head(MAX_UNITS_NAMED).iter_rows(named=True)
    ]
    more = f", … and {lost.height - MAX_UNITS_NAMED} more" if lost.height > MAX_UNITS_NAMED else ""
    return (
        f"this run would remove {how_many} of edition {year} from the warehouse and the BI snapshot ({why}). "
        f"Units that would be lost: {', '.join(named)}{more}."
    )
