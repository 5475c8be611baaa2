"""The dimension marts (marts.dim_*): units, tiers, key regions and their members, indicators. Each
asset reads the reference files and what it needs of the warehouse, calls a function of
dimensions.py and replaces its table: the edition-independent dimensions whole, the others for the
step's editions."""

from collections.abc import Callable, Sequence

import dagster as dg
import duckdb
import polars as pl

from dei_pipeline import dimensions
from dei_pipeline.defs.assets import (
    PARTITIONED,
    REGISTRY,
    SETTINGS,
    city_index,
    code_version,
    county_index,
    framework,
    mart_asset,
    table_asset_metadata,
    written,
)
from dei_pipeline.defs.partitions import partition_editions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.dimensions import (
    indicator_dimension,
    region_dimension,
    region_member_dimension,
    tier_dimension,
    unit_dimension,
)
from dei_pipeline.warehouse import TABLES, read_table, replace_editions

DIMENSIONS_GROUP = "dimensions"
# (warehouse, open connection, the step's editions) -> the dimension's rows
Build = Callable[[WarehouseResource, duckdb.DuckDBPyConnection, list[int]], pl.DataFrame]


def _scored_units(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """(unit_code, survey_year) of every unit with a composite, over all editions in the warehouse."""
    return pl.concat(
        [
            read_table(con, table).select("unit_code", "survey_year")
            for table in ("marts.city_index", "marts.county_index")
        ]
    )


def dimension_asset(
    table_name: str, deps: Sequence[dg.AssetsDefinition | dg.SourceAsset], build: Build, description: str
) -> dg.AssetsDefinition:
    """A dimension with ``survey_year`` is an edition asset, replaced edition by edition; one without is
    not partitioned: it is rewritten whole, from every edition it reads."""
    name = table_name.split(".", 1)[1]
    if "survey_year" in TABLES[table_name].column_names:

        @mart_asset(
            table_name,
            DIMENSIONS_GROUP,
            uses=[dimensions],
            name=name,
            kinds={"polars", "duckdb"},
            deps=list(deps),
            description=description,
        )
        def per_edition(
            context: dg.AssetExecutionContext, warehouse: WarehouseResource
        ) -> dg.MaterializeResult:
            editions = partition_editions(context)
            with warehouse.connection() as con:
                rows = build(warehouse, con, editions)
                replace_editions(con, table_name, rows, editions)
            return written(table_name, rows, editions)

        return per_edition

    @dg.asset(
        name=name,
        group_name=DIMENSIONS_GROUP,
        kinds={"polars", "duckdb"},
        deps=list(deps),
        description=description,
        metadata=table_asset_metadata(table_name),
        code_version=code_version(build, [dimensions]),
        automation_condition=dg.AutomationCondition.eager(),
        pool=PARTITIONED["pool"],
    )
    def whole(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connection() as con:
            rows = build(warehouse, con, [])
            replace_editions(con, table_name, rows, None)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows.height, "dagster/table_name": table_name}
        )

    return whole


def _units(warehouse: WarehouseResource, con: duckdb.DuckDBPyConnection, editions: list[int]) -> pl.DataFrame:
    return unit_dimension(warehouse.registry(), _scored_units(con))


def _region_members(
    warehouse: WarehouseResource, con: duckdb.DuckDBPyConnection, editions: list[int]
) -> pl.DataFrame:
    return region_member_dimension(
        warehouse.registry(),
        read_table(con, "marts.city_index", editions).select("survey_year", "unit_code"),
        editions,
    )


DIMENSION_ASSETS: list[dg.AssetsDefinition] = [
    dimension_asset(
        "marts.dim_unit",
        [city_index, county_index, REGISTRY],
        _units,
        "Every unit of data/registry/ with names, province, prefecture, kind, the editions it was scored in "
        "(over all editions in the warehouse) and later code changes; rewritten whole.",
    ),
    dimension_asset(
        "marts.dim_tier",
        [SETTINGS],
        lambda warehouse, con, editions: tier_dimension(warehouse.tiers()),
        "The tiers of data/method/tiers.csv with names and both bounds; rewritten whole.",
    ),
    dimension_asset(
        "marts.dim_region",
        [REGISTRY],
        lambda warehouse, con, editions: region_dimension(warehouse.registry()),
        "The key regions of data/registry/regions.csv; rewritten whole.",
    ),
    dimension_asset(
        "marts.dim_region_member",
        [city_index, REGISTRY],
        _region_members,
        "Each edition's members of each key region (data/registry/region_members.csv) and whether each was scored.",
    ),
    dimension_asset(
        "marts.dim_indicator",
        [framework],
        lambda warehouse, con, editions: indicator_dimension(read_table(con, "marts.framework", editions)),
        "Each edition's indicator tree (marts.framework) with the composite as its root.",
    ),
]
