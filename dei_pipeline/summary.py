"""The run summary printed by ``dei materialize``: top ten, tier counts, regions, reconciliation."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dei_pipeline.config import data_provenance_note
from dei_pipeline.scalars import number_or_none
from dei_pipeline.terminal import frame_table
from dei_pipeline.warehouse import open_warehouse, read_table


def _table(frame: pl.DataFrame) -> str:
    return frame_table(frame, markdown=True)


def edition_summary(warehouse: Path, survey_year: int, data_dir: Path | None = None) -> str:
    """A human-readable summary of one edition as stored in the warehouse, headed by the data's
    provenance note when ``data_dir``'s raw data are declared synthetic."""
    with open_warehouse(warehouse, read_only=True) as con:
        cities = read_table(con, "marts.city_index", [survey_year])
        tiers = read_table(con, "marts.tier_summary", [survey_year])
        regions = read_table(con, "marts.region_rollup", [survey_year])
        yoy = read_table(con, "marts.yoy_summary", [survey_year])
        recon = read_table(con, "marts.reconciliation", [survey_year])
    note = data_provenance_note(data_dir) if data_dir is not None else None
    parts = [f"!! {note}"] if note else []
    parts += [
        f"== Edition {survey_year}: {cities.height} cities, mean score {number_or_none(cities['score'].mean()) or float('nan'):.1f} =="
    ]
    parts.append(
        "Top ten:\n"
        + _table(cities.sort("rank").head(10).select("rank", "name_zh", "name_en", "score", "tier"))
    )
    parts.append(
        "Tiers:\n" + _table(tiers.select("tier", "n_cities", "prev_n_cities", pl.col("change_pct").round(1)))
    )
    if regions.height:
        parts.append(
            "Regions (GDP-weighted):\n"
            + _table(
                regions.select(
                    "region",
                    "n_members",
                    "n_scored",
                    "gdp_year",
                    "gdp_vintage",
                    "gdp_weighted_score",
                    "mean_score",
                )
            )
        )
    city_yoy = yoy.filter(pl.col("unit_type") == "city")
    if city_yoy.height and city_yoy["prev_year"][0] is not None:
        row = city_yoy.row(0, named=True)
        parts.append(
            f"Against {row['prev_year']}: {row['n_new']} new, {row['n_returning']} returning, {row['n_dropped']} dropped cities; "
            f"returning cities' mean {row['returning_prev_mean']:.1f} -> {row['returning_mean']:.1f}"
        )
    if recon.height:
        counts = (
            recon.group_by("category", "status")
            .len()
            .pivot("status", index="category", values="len")
            .fill_null(0)
        )
        statuses = sorted(
            column for column in counts.columns if column != "category"
        )  # the pivot's order is arbitrary
        parts.append(
            "Reconciliation with the published figures:\n"
            + _table(counts.select("category", *statuses).sort("category"))
        )
        bad = recon.filter(pl.col("status").is_in(["mismatch", "missing"]))
        if bad.height:
            parts.append(
                "Disagreements:\n"
                + _table(
                    bad.select("category", "item", "published", pl.col("computed").round(2), "status").head(
                        20
                    )
                )
            )
    else:
        parts.append("Reconciliation: no published figures for this edition.")
    return "\n\n".join(parts)
