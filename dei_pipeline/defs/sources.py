"""What the pipeline reads from the data directory, as observed source assets: an edition's raw files
(per edition) and the reference files (frameworks, registry, city GDP, method settings, published
figures). Each observation records a content fingerprint as the data version, so that Dagster marks
what reads a changed file stale (fixing a GDP figure makes region_rollup stale, and what reads it).

They are observed by the raw-files sensor on every tick, by ``dei materialize`` before it runs, and
from the UI ("Observe sources")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from dei_pipeline.defs.partitions import DEFAULT_EDITIONS, Editions
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.fingerprints import REFERENCE_INPUTS, edition_fingerprint, reference_fingerprint

SOURCES_GROUP = "sources"
DATA_VERSION_TAG = "dagster/data_version"
RAW_FILES = dg.AssetKey("raw_files")


def raw_files_source(editions: Editions) -> dg.SourceAsset:
    """The raw files of each of these editions, observed edition by edition."""

    @dg.observable_source_asset(
        key=RAW_FILES,
        group_name=SOURCES_GROUP,
        partitions_def=editions.partitions_def,
        description="An edition's raw files under `data/raw/<edition>/` (`cities.*`, `counties.*`); data version: their content fingerprint.",
    )
    def raw_files(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition(
            {
                key: dg.DataVersion(edition_fingerprint(warehouse.data_path, int(key)))
                for key in context.partition_keys
            }
        )

    return raw_files


def _reference_source(name: str, paths: tuple[str, ...]) -> dg.SourceAsset:
    @dg.observable_source_asset(
        name=name,
        group_name=SOURCES_GROUP,
        description=f"Reference files data/{', data/'.join(paths)}; data version: their content fingerprint.",
    )
    def reference(warehouse: WarehouseResource) -> dg.DataVersion:
        return dg.DataVersion(reference_fingerprint(warehouse.data_path, name))

    return reference


raw_files = raw_files_source(DEFAULT_EDITIONS)
REFERENCE_SOURCES: dict[str, dg.SourceAsset] = {
    name: _reference_source(name, paths) for name, paths in REFERENCE_INPUTS.items()
}


def current_versions(
    warehouse: WarehouseResource, editions: Iterable[int], raw: Mapping[str, str] | None = None
) -> dict[tuple[dg.AssetKey, str | None], str]:
    """The data version every source would be observed with now, by (asset key, edition or None);
    ``raw``: the editions' raw-file fingerprints when the caller has them already."""
    versions: dict[tuple[dg.AssetKey, str | None], str] = {
        (RAW_FILES, str(year)): raw[str(year)]
        if raw and str(year) in raw
        else edition_fingerprint(warehouse.data_path, year)
        for year in editions
    }
    for name in REFERENCE_INPUTS:
        versions[(dg.AssetKey(name), None)] = reference_fingerprint(warehouse.data_path, name)
    return versions


def observations(
    versions: Mapping[tuple[dg.AssetKey, str | None], str],
    last_observed: Mapping[tuple[dg.AssetKey, str | None], str],
) -> list[dg.AssetObservation]:
    """An observation for every source whose data version differs from the last one observed."""
    return [
        dg.AssetObservation(asset_key=key, partition=partition, tags={DATA_VERSION_TAG: version})
        for (key, partition), version in versions.items()
        if last_observed.get((key, partition)) != version
    ]


def last_observed_versions(
    instance: dg.DagsterInstance, keys: Iterable[tuple[dg.AssetKey, str | None]]
) -> dict[tuple[dg.AssetKey, str | None], str]:
    """The data version of each source's latest observation in the instance (absent when never observed)."""
    found: dict[tuple[dg.AssetKey, str | None], str] = {}
    for key, partition in keys:
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
            limit=1,
        ).records
        if records and records[0].asset_observation is not None:
            version = records[0].asset_observation.tags.get(DATA_VERSION_TAG)
            if version is not None:
                found[(key, partition)] = version
    return found


def observe_sources(
    instance: dg.DagsterInstance, warehouse: WarehouseResource, editions: Iterable[int]
) -> int:
    """Record an observation of every source that changed since its last one; returns how many."""
    versions = current_versions(warehouse, editions)
    events = observations(versions, last_observed_versions(instance, versions))
    for event in events:
        instance.report_runless_asset_event(event)
    return len(events)
