"""What a rerun of some editions must bring up to date, from the asset graph's own dependencies: the
selected editions of a job's assets and, in the later editions that read them (the next edition with
data for a comparison, every later one for a history), the assets downstream of those reads. The
command line runs exactly this; in the UI the automation does the same."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from dei_pipeline.defs.partitions import EditionReads, Editions, contiguous_blocks, edition_reads


@dataclass(frozen=True)
class Step:
    """One run: ``job_name`` over a block of neighbouring editions, for all of its assets (``assets``
    None) or for the named ones."""

    job_name: str
    editions: tuple[str, ...]
    assets: tuple[dg.AssetKey, ...] | None


def _edition_deps(defs: dg.Definitions) -> dict[dg.AssetKey, dict[dg.AssetKey, EditionReads | None]]:
    """For every asset, its parents and which editions of each it reads."""
    return {
        spec.key: {dep.asset_key: edition_reads(dep) for dep in spec.deps}
        for spec in defs.resolve_all_asset_specs()
    }


def stale_after(
    defs: dg.Definitions, keys: set[dg.AssetKey], selected: Sequence[int], editions: Editions
) -> dict[int, set[dg.AssetKey]]:
    """Per edition, the assets among ``keys`` that a rerun of ``keys`` for ``selected`` editions
    changes: their own editions and, following the dependencies and their edition mappings, the later
    editions that read them."""
    children: dict[dg.AssetKey, list[tuple[dg.AssetKey, EditionReads | None]]] = defaultdict(list)
    for child, parents in _edition_deps(defs).items():
        for parent, reads in parents.items():
            children[parent].append((child, reads))
    reached = {(key, year) for key in keys for year in selected}
    queue = deque(reached)
    while queue:
        key, year = queue.popleft()
        for child, reads in children[key]:
            if child not in keys:
                continue
            for reader in editions.readers_of(year, reads) if reads else [year]:
                if (child, reader) not in reached:
                    reached.add((child, reader))
                    queue.append((child, reader))
    by_edition: dict[int, set[dg.AssetKey]] = defaultdict(set)
    for key, year in reached:
        by_edition[year].add(key)
    return dict(by_edition)


def rerun_steps(
    defs: dg.Definitions,
    job_names: Sequence[str],
    selected: Sequence[int],
    editions: Editions,
    propagate: bool = True,
) -> list[Step]:
    """The runs that bring ``job_names`` up to date after a change of the ``selected`` editions: for
    each job, whole-job runs over blocks of the selected editions, then (``propagate``) runs of the
    assets that the later editions must refresh, edition blocks with the same assets together."""
    keys_of = {
        job_name: set(defs.resolve_job_def(job_name).asset_layer.executable_asset_keys)
        for job_name in job_names
    }
    every_key = set().union(*keys_of.values())
    # Across the jobs: a changed index makes the later editions' analysis stale too.
    stale_in_all = (
        stale_after(defs, every_key, selected, editions)
        if propagate
        else {year: every_key for year in selected}
    )
    steps: list[Step] = []
    for job_name, keys in keys_of.items():
        stale = {year: found & keys for year, found in stale_in_all.items() if found & keys}
        full = [str(year) for year in editions.years if stale.get(year) == keys]
        steps += [Step(job_name, tuple(block), None) for block in contiguous_blocks(full, editions.keys)]
        partial: dict[tuple[dg.AssetKey, ...], list[str]] = defaultdict(list)
        for year in editions.years:
            if year in stale and stale[year] != keys:
                partial[tuple(sorted(stale[year], key=lambda key: key.to_user_string()))].append(str(year))
        for assets, years in partial.items():
            steps += [
                Step(job_name, tuple(block), assets) for block in contiguous_blocks(years, editions.keys)
            ]
    return steps
