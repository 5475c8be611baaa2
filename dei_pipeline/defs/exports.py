"""The publication: a check that the editions in the warehouse agree with each other, then the marts as
Parquet and as the BI serving snapshot. None of the three is partitioned: each covers every edition,
and publishes only what is consistent. While a consistency check fails, the exports do not run, and
BI keeps the last consistent publication."""

from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from dei_pipeline.config import data_provenance_note, default_serving_path
from dei_pipeline.consistency import (
    analysis_against_index,
    comparisons_against_index,
    tier_counts_against_index,
)
from dei_pipeline.defs.assets import PARTITIONED, table_metadata
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.warehouse import editions_in, export_parquet, publish_serving_snapshot, read_table

EXPORTS_GROUP = "exports"


def publish_when(upstream: Sequence[dg.AssetsDefinition | str]) -> dg.AutomationCondition:
    """Publish once every mart it covers is up to date and the editions agree. A partitioned mart whose
    own condition requests it in the same tick (e.g. the comparisons or analysis of an edition whose
    index just changed) runs in a run of its own: wait for it rather than publish before it and be
    refused by the consistency checks. (will_be_requested() does not see requests that cannot share
    the run; the unpartitioned dimensions and exports can, and do.)"""
    same_run = dg.AssetSelection.assets(
        *[dep for dep in upstream if isinstance(dep, dg.AssetsDefinition) and dep.partitions_def is None]
    )
    return (
        dg.AutomationCondition.eager()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
        & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.eager()).ignore(
            same_run | dg.AssetSelection.groups(EXPORTS_GROUP)
        )
    ).with_label("eager, once no partitioned mart it covers is due")


CONSISTENCY_CHECKS: dict[str, str] = {
    "comparisons_match_index": "city_yoy and county_yoy compare each edition with the previous edition with data, "
    "and their scores, ranks and tiers, now and then, are those of the index",
    "tier_counts_match_index": "tier_summary's counts, now and in the previous edition, are those of city_index",
    "analysis_matches_index": "rank_uncertainty's nominal scores and ranks are those of the index",
}
SHOWN_DISAGREEMENTS = 20


def _index(city_index: pl.DataFrame, county_index: pl.DataFrame) -> pl.DataFrame:
    """Both indexes as one frame keyed by unit type."""
    columns = ["survey_year", "unit_code", "score", "rank"]
    return pl.concat(
        [
            city_index.select(*columns, pl.lit("city").alias("unit_type")),
            county_index.select(*columns, pl.lit("county").alias("unit_type")),
        ]
    )


def edition_disagreements(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Each consistency check's disagreements over every edition in the warehouse."""
    city_index = read_table(con, "marts.city_index")
    county_index = read_table(con, "marts.county_index")
    return {
        "comparisons_match_index": pl.concat(
            [
                comparisons_against_index(
                    "marts.city_yoy", read_table(con, "marts.city_yoy"), city_index, ("score", "rank", "tier")
                ),
                comparisons_against_index(
                    "marts.county_yoy", read_table(con, "marts.county_yoy"), county_index
                ),
            ]
        ),
        "tier_counts_match_index": tier_counts_against_index(
            read_table(con, "marts.tier_summary"), city_index
        ),
        "analysis_matches_index": analysis_against_index(
            read_table(con, "marts.rank_uncertainty"), _index(city_index, county_index)
        ),
    }


def _table(rows: pl.DataFrame) -> dg.TableMetadataValue:
    """The first disagreements (their number is the check's ``disagreements``)."""
    return table_metadata(
        rows.head(SHOWN_DISAGREEMENTS).rename({"survey_year": "edition", "unit_code": "unit"})
    )


def describe_disagreements(check_name: str, rows: pl.DataFrame) -> str:
    """One line that names what disagrees, for the check's description and the run's failure."""
    first = rows.row(0, named=True)
    unit = f" unit {first['unit_code']}" if first["unit_code"] else ""
    editions = ", ".join(map(str, sorted(rows["survey_year"].unique().to_list())))
    return (
        f"{check_name}: {rows.height} disagreement(s) in edition(s) {editions}; first: {first['mart']} "
        f"{first['survey_year']}{unit} {first['item']} is {first['found']}, the index says {first['expected']}"
    )


def edition_consistency_asset(upstream: Sequence[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The consistency checks over every edition, downstream of every mart they read: blocking, so that
    a failure stops the exports of the same run and holds back the automated publication."""
    spec = dg.AssetSpec(
        "edition_consistency",
        group_name=EXPORTS_GROUP,
        kinds={"polars", "duckdb"},
        deps=list(upstream),
        automation_condition=publish_when(upstream),
        description="Whether the editions in the warehouse agree with each other: every comparison, tier count and "
        "analysis figure restates the index of its own and of the previous edition. Its checks block the "
        "exports while they fail.",
    )
    checks = [
        dg.AssetCheckSpec(name, asset="edition_consistency", blocking=True, description=text)
        for name, text in CONSISTENCY_CHECKS.items()
    ]

    @dg.multi_asset(specs=[spec], check_specs=checks, pool=PARTITIONED["pool"])
    def edition_consistency(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with warehouse.connection(read_only=True) as con:
            editions = editions_in(con, "marts.subindex_scores")
            found = edition_disagreements(con)
        yield dg.MaterializeResult(
            metadata={
                "editions": ", ".join(map(str, editions)),
                "disagreements": sum(rows.height for rows in found.values()),
            }
        )
        for check_name, rows in found.items():
            if rows.height:
                context.log.error(describe_disagreements(check_name, rows))
            yield dg.AssetCheckResult(
                check_name=check_name,
                passed=rows.height == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                description=describe_disagreements(check_name, rows) if rows.height else None,
                metadata={"disagreements": rows.height, "first_disagreements": _table(rows)},
            )

    return edition_consistency


def _exported(path: Path, rows_per_mart: dict[str, int], editions: Sequence[int]) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows_per_mart": dg.MetadataValue.json(rows_per_mart),
            "dagster/row_count": sum(rows_per_mart.values()),
            "editions": ", ".join(map(str, editions)),
        }
    )


def mart_parquet_asset(upstream: Sequence[dg.AssetsDefinition | str]) -> dg.AssetsDefinition:
    """The Parquet export, downstream of every mart it writes and of the consistency checks."""

    @dg.asset(
        name="mart_parquet",
        group_name=EXPORTS_GROUP,
        kinds={"parquet", "duckdb"},
        deps=list(upstream),
        automation_condition=publish_when(upstream),
        pool=PARTITIONED["pool"],
    )
    def mart_parquet(warehouse: WarehouseResource) -> dg.MaterializeResult:
        """The BI marts of every edition as Parquet, one file per mart and edition
        (`data/warehouse/parquet/<mart>/<mart>_<YYYY>.parquet`), for tools that read Parquet rather than
        DuckDB (Spark, Trino, pandas)."""
        out_dir = warehouse.warehouse_file.parent / "parquet"
        with warehouse.connection() as con:
            editions = editions_in(con, "marts.subindex_scores")
            counts = export_parquet(con, out_dir, editions)
        return _exported(out_dir, counts, editions)

    return mart_parquet


def serving_snapshot_asset(upstream: Sequence[dg.AssetsDefinition | str]) -> dg.AssetsDefinition:
    """The BI snapshot, downstream of every mart and of the consistency checks: a failed run or a
    failing check never reaches it, and BI keeps the previous snapshot."""

    @dg.asset(
        name="serving_snapshot",
        group_name=EXPORTS_GROUP,
        kinds={"duckdb"},
        deps=list(upstream),
        automation_condition=publish_when(upstream),
        pool=PARTITIONED["pool"],
    )
    def serving_snapshot(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """The marts of every edition, copied to data/warehouse/dei_serving.duckdb (DEI_SERVING overrides)
        and put in place with an atomic rename. BI tools connect to this file read-only; a run never
        waits for them and they never see a half-published state."""
        serving = default_serving_path(warehouse.warehouse_file)
        with warehouse.connection() as con:
            editions = editions_in(con, "marts.subindex_scores")
            counts = publish_serving_snapshot(
                con,
                serving,
                context.run.run_id,
                data_provenance_note(warehouse.data_path),
                context.run.job_name,
            )
        return _exported(serving, counts, editions)

    return serving_snapshot
