"""Content fingerprints of what the pipeline reads: an edition's raw files and each set of reference
files. They are the data versions of the observed source assets (Dagster's staleness) and what the
raw-files sensor compares with what the warehouse ingested."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from dei_pipeline.ingest import IngestError, edition_files, list_editions

# The reference inputs besides the raw files, each a set of paths relative to the data directory; a
# folder stands for every file below it.
REFERENCE_INPUTS: dict[str, tuple[str, ...]] = {
    "frameworks": ("frameworks",),
    "registry": (
        "registry/cities.csv",
        "registry/counties.csv",
        "registry/code_changes.csv",
        "registry/regions.csv",
        "registry/region_members.csv",
    ),
    "city_gdp": ("registry/city_gdp.csv",),
    "method_settings": ("method",),
    "published_figures": ("published",),
}


def fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """One hash over (relative path, SHA-256) pairs: it changes when any file does, is added or goes."""
    digest = hashlib.sha256()
    for relative_path, content_hash in sorted(pairs):
        digest.update(f"{relative_path}:{content_hash};".encode())
    return digest.hexdigest()[:16]


def _file_hashes(data_dir: Path, paths: Iterable[Path]) -> list[tuple[str, str]]:
    return [
        (
            path.relative_to(data_dir).as_posix(),
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "not a file",
        )
        for path in paths
    ]


def edition_fingerprint(data_dir: Path, year: int) -> str:
    """The fingerprint of an edition's raw files, as ingestion reads them. A folder that ingestion
    refuses still gets one (over everything in it), so that fixing it is noticed as a change."""
    try:
        return fingerprint(
            (raw_file.relative_path, raw_file.content_hash) for raw_file in edition_files(data_dir, year)
        )
    except IngestError as error:
        folder = data_dir / "raw" / f"{year:04d}"
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
        return fingerprint([*_file_hashes(data_dir, entries), ("refused", str(error))])


def edition_fingerprints(data_dir: Path) -> dict[str, str]:
    """The fingerprint of every edition's raw files as they are now under data/raw/."""
    return {str(year): edition_fingerprint(data_dir, year) for year in list_editions(data_dir)}


def reference_fingerprint(data_dir: Path, name: str) -> str:
    """The fingerprint of one set of reference files (REFERENCE_INPUTS)."""
    paths: list[Path] = []
    for relative in REFERENCE_INPUTS[name]:
        path = data_dir / relative
        paths.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return fingerprint(_file_hashes(data_dir, (p for p in paths if p.exists())))
