"""The unit registry (``data/registry/``): cities, counties, key regions, city GDP, code changes.

``load_registry(data_dir)`` reads the six CSV files under ``data_dir / "registry"``, validates them and
returns a frozen :class:`Registry`. A broken rule raises :class:`RegistryError` whose message names the
file, the 1-based line (the header is line 1), the column, the value and the rule, e.g.
``data/registry/cities.csv line 7, column unit_code: value '32050' is not a 6-digit GB/T 2260 code``.
Line numbers assume one record per physical line, which the loader checks.

``Registry.version`` is the first 12 hex digits of the SHA-256 of the six CSV files' bytes, concatenated
in sorted file-name order (the README is documentation and is not part of the version).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REGISTRY_SUBDIR = "registry"
VINTAGES: tuple[str, ...] = ("first_published", "revised")
COUNTY_KINDS: tuple[str, ...] = ("district", "county")

COLUMNS: dict[str, tuple[str, ...]] = {
    "cities.csv": (
        "unit_code",
        "name_zh",
        "full_name_zh",
        "name_en",
        "province_code",
        "province_zh",
        "province_full_zh",
    ),
    "counties.csv": (
        "unit_code",
        "name_zh",
        "short_name_zh",
        "name_en",
        "kind",
        "city_code",
        "city_name_zh",
        "province_code",
        "province_zh",
    ),
    "regions.csv": ("region_code", "name_zh", "name_en", "n_members_published"),
    "region_members.csv": ("region_code", "member_name_zh", "unit_code"),
    "city_gdp.csv": ("unit_code", "year", "vintage", "gdp_100m_yuan", "source"),
    "code_changes.csv": (
        "unit_type",
        "unit_code",
        "name_zh",
        "current_code",
        "current_name_zh",
        "change_year",
        "note",
    ),
}
REGISTRY_FILES: tuple[str, ...] = tuple(sorted(COLUMNS))

_CODE6 = r"^\d{6}$"
_LINE = "_line"


class RegistryError(ValueError):
    """A registry file breaks a rule; the message names file, line, column, value and rule."""


@dataclass(frozen=True)
class Registry:
    """The validated registry. Every code column is ``pl.String``; files keep their row order."""

    cities: pl.DataFrame
    counties: pl.DataFrame
    regions: pl.DataFrame
    region_members: pl.DataFrame
    city_gdp: pl.DataFrame
    code_changes: pl.DataFrame
    version: str


# ---------------------------------------------------------------- reading


def registry_version(contents: dict[str, bytes]) -> str:
    """sha256 (first 12 hex digits) of the files' bytes concatenated in sorted file-name order."""
    digest = hashlib.sha256()
    for name in sorted(contents):
        digest.update(contents[name])
    return digest.hexdigest()[:12]


def _read_raw(label: str, content: bytes) -> pl.DataFrame:
    """All columns as strings (empty field -> null) plus ``_line``, the 1-based line in the file."""
    try:
        frame = pl.read_csv(io.BytesIO(content), infer_schema=False)
    except Exception as exc:  # polars raises several error types for malformed CSV
        raise RegistryError(f"{label}: not a readable CSV file ({exc})") from exc
    text = content.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    n_lines = len(text.split("\n")) if text else 0
    if n_lines != frame.height + 1:
        raise RegistryError(
            f"{label}: {n_lines} lines for {frame.height} records; every record must be on one line, without blank lines"
        )
    return frame.with_row_index(_LINE, offset=2)


def _error(label: str, line: int, column: str, value: object, rule: str) -> RegistryError:
    shown = "" if value is None else str(value)
    return RegistryError(f"{label} line {line}, column {column}: value {shown!r} {rule}")


# ---------------------------------------------------------------- rules


def _require_columns(frame: pl.DataFrame, label: str, required: tuple[str, ...]) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise _error(label, 1, missing[0], None, "is missing: the header lacks this required column")


def _first_bad(frame: pl.DataFrame, label: str, column: str, bad: pl.Expr, rule: str) -> None:
    """Raise for the first row where ``bad`` is true."""
    hit = frame.filter(bad.fill_null(False)).head(1)
    if hit.height:
        row = hit.row(0, named=True)
        raise _error(label, row[_LINE], column, row[column], rule)


def _check_code(frame: pl.DataFrame, label: str, column: str, *, optional: bool = False) -> None:
    value = pl.col(column)
    bad = ~value.fill_null("").str.contains(_CODE6)
    if optional:
        bad = value.is_not_null() & bad
    _first_bad(frame, label, column, bad, "is not a 6-digit GB/T 2260 code")


def _check_not_empty(frame: pl.DataFrame, label: str, column: str) -> None:
    _first_bad(frame, label, column, pl.col(column).is_null(), "is empty: a value is required")


def _check_unique(frame: pl.DataFrame, label: str, columns: tuple[str, ...]) -> None:
    """Rows whose key columns are all filled must not repeat a key (empty keys are checked elsewhere)."""
    key = pl.concat_str([pl.col(c) for c in columns], separator=",")
    keyed = frame.with_columns(key.alias("_key")).drop_nulls("_key")
    dup = keyed.filter(~pl.col("_key").is_first_distinct()).head(1)
    if dup.height:
        row = dup.row(0, named=True)
        first = keyed.filter(pl.col("_key") == row["_key"])[_LINE][0]
        name = ",".join(columns)
        raise _error(
            label,
            row[_LINE],
            name,
            row["_key"],
            f"is a duplicate of line {first} ({name} must be unique in the file)",
        )


def _check_in(
    frame: pl.DataFrame, label: str, column: str, allowed: list[str], rule: str, *, optional: bool = False
) -> None:
    value = pl.col(column)
    bad = ~value.is_in(allowed).fill_null(False)
    if optional:
        bad = value.is_not_null() & bad
    _first_bad(frame, label, column, bad, rule)


def _check_int(frame: pl.DataFrame, label: str, column: str, pattern: str, rule: str) -> None:
    _first_bad(frame, label, column, ~pl.col(column).fill_null("").str.contains(pattern), rule)


# ---------------------------------------------------------------- per file


def _validate_cities(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    _check_code(frame, label, "unit_code")
    _first_bad(
        frame,
        label,
        "unit_code",
        ~pl.col("unit_code").str.ends_with("00"),
        "is not a prefecture-level code (must end in 00)",
    )
    for column in ("name_zh", "full_name_zh", "name_en", "province_zh", "province_full_zh"):
        _check_not_empty(frame, label, column)
    _check_int(frame, label, "province_code", r"^\d{2}$", "is not a 2-digit province code")
    _first_bad(
        frame,
        label,
        "province_code",
        pl.col("province_code") != pl.col("unit_code").str.slice(0, 2),
        "does not match the first two digits of unit_code",
    )
    _check_unique(frame, label, ("unit_code",))
    _check_unique(frame, label, ("name_zh",))
    return frame


def _validate_counties(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    _check_code(frame, label, "unit_code")
    _check_code(frame, label, "city_code", optional=True)
    for column in ("name_zh", "short_name_zh", "name_en", "province_zh"):
        _check_not_empty(frame, label, column)
    _check_in(
        frame, label, "kind", list(COUNTY_KINDS), f"is not a county kind (one of {', '.join(COUNTY_KINDS)})"
    )
    _check_int(frame, label, "province_code", r"^\d{2}$", "is not a 2-digit province code")
    _check_unique(frame, label, ("unit_code",))
    _check_unique(frame, label, ("name_zh",))
    return frame


def _validate_regions(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    for column in ("region_code", "name_zh", "name_en"):
        _check_not_empty(frame, label, column)
    _check_int(frame, label, "n_members_published", r"^[1-9]\d*$", "is not a positive whole number")
    _check_unique(frame, label, ("region_code",))
    _check_unique(frame, label, ("name_zh",))
    return frame.with_columns(pl.col("n_members_published").cast(pl.Int64))


def _validate_region_members(
    frame: pl.DataFrame, label: str, regions: pl.DataFrame, cities: pl.DataFrame
) -> pl.DataFrame:
    _check_in(
        frame, label, "region_code", regions["region_code"].to_list(), "is not a region_code of regions.csv"
    )
    _check_not_empty(frame, label, "member_name_zh")
    _check_code(frame, label, "unit_code", optional=True)
    _check_in(
        frame,
        label,
        "unit_code",
        cities["unit_code"].to_list(),
        "is not the unit_code of a city in cities.csv",
        optional=True,
    )
    named = frame.join(
        cities.select(pl.col("name_zh").alias("member_name_zh"), pl.col("unit_code").alias("_city_code")),
        on="member_name_zh",
        how="left",
        maintain_order="left",
    )
    _first_bad(
        named,
        label,
        "unit_code",
        pl.col("_city_code").is_not_null() & (pl.col("unit_code") != pl.col("_city_code")).fill_null(True),
        "is not the unit_code of the city that member_name_zh names in cities.csv",
    )
    _check_unique(frame, label, ("region_code", "member_name_zh"))
    _check_unique(frame, label, ("region_code", "unit_code"))
    return frame


def _check_member_counts(regions: pl.DataFrame, members: pl.DataFrame, label: str) -> None:
    counts = members.group_by("region_code").agg(pl.len().alias("n_listed"))
    joined = regions.join(counts, on="region_code", how="left").with_columns(pl.col("n_listed").fill_null(0))
    bad = joined.filter(pl.col("n_listed") != pl.col("n_members_published")).head(1)
    if bad.height:
        row = bad.row(0, named=True)
        raise _error(
            label,
            row[_LINE],
            "n_members_published",
            row["n_members_published"],
            f"does not match the {row['n_listed']} member(s) listed in region_members.csv",
        )


def _validate_city_gdp(frame: pl.DataFrame, label: str, cities: pl.DataFrame) -> pl.DataFrame:
    _check_code(frame, label, "unit_code")
    _check_in(
        frame,
        label,
        "unit_code",
        cities["unit_code"].to_list(),
        "is not the unit_code of a city in cities.csv",
    )
    _check_int(frame, label, "year", r"^\d{4}$", "is not a 4-digit year")
    _check_in(frame, label, "vintage", list(VINTAGES), f"is not a GDP vintage (one of {', '.join(VINTAGES)})")
    gdp = pl.col("gdp_100m_yuan").cast(pl.Float64, strict=False)
    _first_bad(
        frame,
        label,
        "gdp_100m_yuan",
        gdp.is_null() | gdp.is_nan() | gdp.is_infinite() | (gdp <= 0),
        "is not a GDP figure > 0 (100 million yuan)",
    )
    _check_unique(frame, label, ("unit_code", "year", "vintage"))
    return frame.with_columns(pl.col("year").cast(pl.Int64), gdp.alias("gdp_100m_yuan"))


def _validate_code_changes(
    frame: pl.DataFrame, label: str, cities: pl.DataFrame, counties: pl.DataFrame
) -> pl.DataFrame:
    _check_in(frame, label, "unit_type", ["city", "county"], "is not a unit type (one of city, county)")
    _check_code(frame, label, "unit_code")
    _check_code(frame, label, "current_code", optional=True)
    known = pl.concat(
        [
            cities.select(pl.lit("city").alias("unit_type"), "unit_code", "name_zh"),
            counties.select(pl.lit("county").alias("unit_type"), "unit_code", "name_zh"),
        ]
    ).with_columns(pl.lit(True).alias("_known"))
    joined = frame.join(known, on=["unit_type", "unit_code", "name_zh"], how="left", maintain_order="left")
    _first_bad(
        joined,
        label,
        "unit_code",
        pl.col("_known").is_null(),
        "is not a unit of its unit_type with this name_zh in cities.csv/counties.csv",
    )
    _check_int(frame, label, "change_year", r"^\d{4}$", "is not a 4-digit year")
    _check_unique(frame, label, ("unit_code",))
    return frame.with_columns(pl.col("change_year").cast(pl.Int64))


# ---------------------------------------------------------------- public API


def load_registry(data_dir: Path) -> Registry:
    """Read and validate ``data_dir / "registry" / *.csv`` (``data_dir`` is the project's ``data/``)."""
    folder = Path(data_dir) / REGISTRY_SUBDIR
    contents: dict[str, bytes] = {}
    frames: dict[str, pl.DataFrame] = {}
    labels: dict[str, str] = {}
    for name in REGISTRY_FILES:
        path = folder / name
        labels[name] = str(path)
        if not path.is_file():
            raise RegistryError(f"{path}: registry file is missing")
        contents[name] = path.read_bytes()
        frames[name] = _read_raw(labels[name], contents[name])
        _require_columns(frames[name], labels[name], COLUMNS[name])

    cities = _validate_cities(frames["cities.csv"], labels["cities.csv"])
    counties = _validate_counties(frames["counties.csv"], labels["counties.csv"])
    regions = _validate_regions(frames["regions.csv"], labels["regions.csv"])
    members = _validate_region_members(
        frames["region_members.csv"], labels["region_members.csv"], regions, cities
    )
    _check_member_counts(regions, members, labels["regions.csv"])
    city_gdp = _validate_city_gdp(frames["city_gdp.csv"], labels["city_gdp.csv"], cities)
    changes = _validate_code_changes(frames["code_changes.csv"], labels["code_changes.csv"], cities, counties)

    def final(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.select(COLUMNS[name])

    return Registry(
        cities=final(cities, "cities.csv"),
        counties=final(counties, "counties.csv"),
        regions=final(regions, "regions.csv"),
        region_members=final(members, "region_members.csv"),
        city_gdp=final(city_gdp, "city_gdp.csv"),
        code_changes=final(changes, "code_changes.csv"),
        version=registry_version(contents),
    )


def gdp_for_year(registry: Registry, year: int, vintage: str) -> pl.DataFrame:
    """``unit_code, gdp_100m_yuan`` of the cities that have GDP for ``year`` in ``vintage``.

    Not every city has every year in every vintage (first_published lacks 2017-2018 for Inner Mongolia
    and Jiangxi); callers that need all cities must check. Raises ValueError for an unknown vintage or a
    year with no GDP at all in that vintage.
    """
    if vintage not in VINTAGES:
        raise ValueError(f"unknown GDP vintage {vintage!r}; expected one of {', '.join(VINTAGES)}")
    rows = (
        registry.city_gdp.filter((pl.col("year") == year) & (pl.col("vintage") == vintage))
        .select("unit_code", "gdp_100m_yuan")
        .sort("unit_code")
    )
    if rows.is_empty():
        years = sorted(registry.city_gdp.filter(pl.col("vintage") == vintage)["year"].unique().to_list())
        raise ValueError(f"no {vintage} GDP for {year}; available years: {years}")
    return rows


def units(registry: Registry) -> pl.DataFrame:
    """One row per unit: unit_type ('city' | 'county'), unit_code, name_zh, name_en, province_zh, kind
    ('city' for cities, else 'district' | 'county')."""
    columns = ["unit_type", "unit_code", "name_zh", "name_en", "province_zh", "kind"]
    cities = registry.cities.with_columns(pl.lit("city").alias("unit_type"), pl.lit("city").alias("kind"))
    counties = registry.counties.with_columns(pl.lit("county").alias("unit_type"))
    return pl.concat([cities.select(columns), counties.select(columns)])
