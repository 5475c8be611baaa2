"""Every survey edition is a partition. Editions are discovered from ``data/raw/<YYYY>/`` folders,
so a new edition needs no code change: the sensor (or the CLI) registers its key."""

from __future__ import annotations

import dagster as dg

from dei_pipeline.ingest import validate_edition_key

survey_year_partitions = dg.DynamicPartitionsDefinition(name="survey_year")


def partition_editions(context: dg.AssetExecutionContext) -> list[int]:
    """The editions of this step: one, or all of a single-run backfill; each key validated."""
    return sorted(validate_edition_key(key) for key in context.partition_keys)


def register_editions(instance: dg.DagsterInstance, editions: list[int]) -> list[str]:
    """Add missing edition keys to the instance, in year order; returns the keys added."""
    existing = set(instance.get_dynamic_partitions(survey_year_partitions.name))
    new_keys = [str(year) for year in sorted(editions) if str(year) not in existing]
    if new_keys:
        instance.add_dynamic_partitions(survey_year_partitions.name, new_keys)
    return new_keys
