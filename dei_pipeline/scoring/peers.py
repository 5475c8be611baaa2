"""The peer groups of the imputation rules (``peer_group`` in a framework's method columns): a unit's
province and county kind from the registry, and the city tier of the latest earlier edition."""

from __future__ import annotations

import polars as pl


def peer_groups(
    cities: pl.DataFrame, counties: pl.DataFrame, city_tiers: pl.DataFrame, year: int
) -> pl.DataFrame:
    """Each unit's peer groups in edition ``year`` (survey_year, unit_type, unit_code, province,
    county_kind, tier): province and county kind from the registry's ``cities`` and ``counties``, and
    the city tier of the latest earlier edition in ``city_tiers`` (survey_year, unit_code, tier; a
    tier is a result of the scores being made, so the edition's own tier cannot be a peer group of
    its imputation)."""
    units_frame = pl.concat(
        [
            cities.select(
                pl.lit("city").alias("unit_type"),
                "unit_code",
                pl.col("province_code").alias("province"),
                pl.lit(None, pl.String).alias("county_kind"),
            ),
            counties.select(
                pl.lit("county").alias("unit_type"),
                "unit_code",
                pl.col("province_code").alias("province"),
                pl.col("kind").alias("county_kind"),
            ),
        ]
    )
    tiers = (
        city_tiers.filter(pl.col("survey_year") < year)
        .sort("survey_year")
        .group_by("unit_code")
        .agg(pl.col("tier").last())
        .with_columns(pl.lit("city").alias("unit_type"))
    )
    return units_frame.select(pl.lit(year, pl.Int32).alias("survey_year"), pl.all()).join(
        tiers, on=["unit_type", "unit_code"], how="left"
    )
