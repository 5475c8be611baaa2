"""Every survey edition is a partition, and editions depend on each other.

The partitions are the edition folders found under ``data/raw/<YYYY>/`` when the definitions are
loaded, ordered by year: an edition added later for an earlier year takes its place in time, and a gap
year (no folder) is simply not a partition. An asset that reads another edition declares it on the
dependency, with :func:`previous_edition` (this edition and the previous one with data: comparisons,
attribution) or :func:`edition_history` (this edition and every earlier one: the report's tier history).
:func:`bind_editions` turns these declarations into exact partition mappings for the editions at hand,
so that Dagster's lineage, staleness and automation know that ``city_yoy`` 2020 reads ``city_index`` 2019.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import dagster as dg

from dei_pipeline.config import default_data_dir
from dei_pipeline.ingest import list_editions, validate_edition_key

EditionReads = Literal["previous", "history"]
PARTITION_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
# Dependency metadata that says which other editions an asset reads (absent: only its own edition).
EDITION_READS_KEY = "dei/edition_reads"
EDITION_READS_TEXT: dict[str, str] = {
    "previous": "this edition and the previous edition with data",
    "history": "this edition and every earlier one",
}


@dataclass(frozen=True)
class Editions:
    """The survey editions of one data directory, in year order."""

    years: tuple[int, ...]

    @classmethod
    def of(cls, years: Iterable[int]) -> Editions:
        return cls(tuple(sorted(set(years))))

    @property
    def keys(self) -> list[str]:
        return [str(year) for year in self.years]

    @cached_property
    def partitions_def(self) -> dg.StaticPartitionsDefinition:
        return dg.StaticPartitionsDefinition(self.keys)

    def readers_of(self, year: int, reads: EditionReads) -> list[int]:
        """The editions whose figures read ``year`` through a dependency of this kind, itself included."""
        later = [other for other in self.years if other > year]
        if reads == "previous":
            return [year, *later[:1]]
        return [year, *later]

    def mapping(self, reads: EditionReads) -> dg.StaticPartitionMapping:
        """Upstream edition -> the downstream editions that read it."""
        return dg.StaticPartitionMapping(
            {str(year): {str(y) for y in self.readers_of(year, reads)} for year in self.years}
        )


def editions_of_data_dir() -> Editions:
    """The editions of the data directory of the environment ($DEI_DATA_DIR or the repository's data/)."""
    return Editions.of(list_editions(default_data_dir()))


# The editions the module-level asset definitions are declared with; build_definitions binds the
# assets to the editions of its own data directory.
DEFAULT_EDITIONS = editions_of_data_dir()


def _edition_dep(asset: dg.AssetsDefinition | str, reads: EditionReads) -> dg.AssetDep:
    return dg.AssetDep(
        asset, partition_mapping=DEFAULT_EDITIONS.mapping(reads), metadata={EDITION_READS_KEY: reads}
    )


def previous_edition(asset: dg.AssetsDefinition | str) -> dg.AssetDep:
    """A dependency on ``asset`` in this edition and in the previous edition with data."""
    return _edition_dep(asset, "previous")


def edition_history(asset: dg.AssetsDefinition | str) -> dg.AssetDep:
    """A dependency on ``asset`` in this edition and in every earlier one."""
    return _edition_dep(asset, "history")


def edition_reads(dep: dg.AssetDep) -> EditionReads | None:
    reads = (dep.metadata or {}).get(EDITION_READS_KEY)
    return reads if reads in EDITION_READS_TEXT else None


def bind_editions(assets: Sequence[dg.AssetsDefinition], editions: Editions) -> list[dg.AssetsDefinition]:
    """The partitioned assets bound to ``editions``: their partitions and their cross-edition mappings."""

    def bind(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.partitions_def is None:
            return spec
        deps = [
            dg.AssetDep(dep.asset_key, partition_mapping=editions.mapping(reads), metadata=dep.metadata)
            if (reads := edition_reads(dep))
            else dep
            for dep in spec.deps
        ]
        return spec.replace_attributes(partitions_def=editions.partitions_def, deps=deps)

    return [asset.map_asset_specs(bind) for asset in assets]


def contiguous_blocks(selected: Sequence[str], partition_order: Sequence[str]) -> list[list[str]]:
    """Split the selected editions into runs of neighbouring partition keys, so that each block is one
    single-run backfill (a Dagster partition range)."""
    wanted = set(selected)
    blocks: list[list[str]] = []
    current: list[str] = []
    for key in partition_order:
        if key in wanted:
            current.append(key)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def range_tags(block: Sequence[str]) -> dict[str, str]:
    """The tags of a single-run backfill over a block of editions (none for one edition or none)."""
    return {} if len(block) <= 1 else dict(zip(PARTITION_RANGE_TAGS, (block[0], block[-1]), strict=True))


def partition_editions(context: dg.AssetExecutionContext) -> list[int]:
    """The editions of this step: one, or all of a single-run backfill; each key validated."""
    return sorted(validate_edition_key(key) for key in context.partition_keys)
