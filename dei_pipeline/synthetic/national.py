"""SYNTHETIC national-scale data set: every prefecture city and county unit, 20 editions.

A statistics office that adopts the method scores every prefecture-level city (about 340) and every
county-level unit (about 2,850) every year, and recomputes the whole history when the method changes.
``write_national_data(out_dir)`` (``dei sample-data --scale national --out DIR``) writes a complete
data directory of that size, in the format of the repository's ``data/``, for benchmarks and scale
tests; it is not committed. Everything in it is usable by ``dei materialize --years all --data-dir DIR``:

- ``frameworks/``: the 2020 indicator systems, copied (every edition uses them).
- ``method/``: the method settings and tiers, copied.
- ``registry/``: the units of the administrative-divisions list (``data/reference/admin_divisions/``,
  GB/T 2260 after 2020): 337 cities (333 prefecture-level divisions and the four municipalities) and
  2,850 county-level units (districts, county-level cities, counties, banners, special and forest
  districts; development zones and the 三沙 island groups are not county-level divisions and are left
  out). The white paper's units keep their registry names (``data/registry/``); the others get names
  by the registry's rules and a placeholder English name. The four key regions are copied. City GDP
  covers every year an edition needs (``gdp.year_offset``) in both vintages: real where
  ``data/registry/city_gdp.csv`` has the figure, otherwise SYNTHETIC (``source`` starts with
  ``SYNTHETIC``). ``code_changes.csv`` is empty: the list's codes are all current.
- ``raw/<edition>/{cities,counties}.csv`` for 2001-2020 and ``raw/manifest.yaml`` (``synthetic: true``).
  Indicator scores come from the sample's factor model (``dei_pipeline.synthetic.sample``): score =
  ``100 * sigmoid(a_j + s_j * (o_ut + eta_ujt))`` with the sample's indicator priors and noise, a unit
  factor ``o_ut`` that rises over the editions with a random walk around the trend, and each unit's
  indicator profile carried from edition to edition with a little yearly noise. Nothing is calibrated
  to published figures, and there is no ``published/`` folder.

Deterministic: each random draw comes from ``numpy.random.default_rng([seed, stream, ...])`` with a
fixed stream per purpose, and a unit's trajectory is drawn for all 20 editions before any is written,
so any subset of editions is the same as in the full set.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from dei_pipeline.config import REPO_ROOT, load_settings
from dei_pipeline.frameworks import framework_files, resolve_framework
from dei_pipeline.registry import COLUMNS as REGISTRY_COLUMNS
from dei_pipeline.registry import VINTAGES
from dei_pipeline.synthetic.sample import (
    UNIT_FILES,
    YEAR_NOISE_SD,
    factor_noise,
    leaf_layout,
    leaf_priors,
    model_scores,
    scores_csv,
)

NATIONAL_EDITIONS: tuple[int, ...] = tuple(range(2001, 2021))
FRAMEWORK_EDITION = 2020  # the only published indicator systems; every edition uses them
REPO_DATA_DIR = REPO_ROOT / "data"
ADMIN_DIVISIONS_DIR = REPO_DATA_DIR / "reference" / "admin_divisions"
COPIED_REGISTRY_FILES: tuple[str, ...] = ("regions.csv", "region_members.csv")

# --- which rows of the administrative-divisions list are units ----------------------------------
MUNICIPALITY_MARKER = "市辖区"  # cities.csv row of a municipality's districts (北京 1101, ...)
DIRECT_COUNTY_MARKER = "直辖县级行政区划"  # cities.csv row grouping counties run by the province itself
DEVELOPMENT_ZONE_DIGIT = "7"  # 5th code digit of development and industrial zones (130171, ...)
COUNTY_LEVEL_SUFFIXES = "区县市旗"  # a county-level division's name ends in one of these
NON_DISTRICT_AREAS: tuple[str, ...] = ("林区", "特区")  # 神农架林区, 六枝特区: county-level, not 市辖区

# --- factor model of the editions (our choices; the sample's priors and noise are reused) --------
UNIT_FACTOR: dict[str, tuple[float, float]] = {"city": (0.0, 0.6), "county": (-0.35, 0.6)}  # mean, sd in 2020
TREND_PER_EDITION = 0.045  # logit units a typical unit gains per edition (scores rise over the years)
DRIFT_SD = 0.06  # a unit's yearly deviation from the trend (random walk)

# --- synthetic GDP (our choices: orders of magnitude of prefecture GDP, not statistics) ----------
GDP_MEDIAN_LAST_YEAR = 1500.0  # 100 million yuan, median prefecture city in the last GDP year
GDP_LEVEL_SD = 0.6  # log units, spread of city GDP beyond what the digital-economy factor explains
GDP_FACTOR_LOADING = 0.6  # log GDP per unit of the city's factor (richer cities score higher)
NOMINAL_GROWTH: tuple[tuple[int, float], ...] = (
    (2011, 0.14),
    (2016, 0.09),
    (10_000, 0.07),
)  # (before year, mean)
GROWTH_SD = 0.03
GROWTH_RANGE = (-0.05, 0.30)

STREAMS: dict[str, int] = {
    "unit_factor": 11,
    "drift": 12,
    "profile": 13,
    "year_noise": 14,
    "gdp_level": 15,
    "gdp_growth": 16,
}
UNIT_TYPE_INDEX: dict[str, int] = {"city": 1, "county": 2}


def _rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[stream], *extra])


# ======================================================================================================
# Registry
# ======================================================================================================


@dataclass(frozen=True)
class AdminDivisions:
    provinces: pl.DataFrame  # code, name
    cities: pl.DataFrame  # code, name, provinceCode
    areas: pl.DataFrame  # code, name, cityCode, provinceCode


def load_admin_divisions(folder: Path = ADMIN_DIVISIONS_DIR) -> AdminDivisions:
    def read(name: str) -> pl.DataFrame:
        return pl.read_csv(folder / name, infer_schema=False)

    return AdminDivisions(read("provinces.csv"), read("cities.csv"), read("areas.csv"))


def _province_names(admin: AdminDivisions, registry_cities: pl.DataFrame) -> pl.DataFrame:
    """province_code, province_full_zh (from the list), province_zh (the short form the registry uses)."""
    short = registry_cities.select("province_code", "province_zh").unique()
    provinces = admin.provinces.select(
        pl.col("code").alias("province_code"), pl.col("name").alias("province_full_zh")
    )
    named = provinces.join(short, on="province_code", how="left")
    unnamed = named.filter(pl.col("province_zh").is_null())["province_full_zh"].to_list()
    if unnamed:
        raise ValueError(f"no short province name in data/registry/cities.csv for {unnamed}")
    return named


def _parent_cities(admin: AdminDivisions, provinces: pl.DataFrame) -> pl.DataFrame:
    """Every cities.csv row with the 6-digit code of the city it stands for (null for the counties a
    province runs itself) and that city's full name: a municipality's rows (市辖区, and 重庆's 县) all
    stand for the municipality, ``<province>0000``."""
    municipal_provinces = admin.cities.filter(pl.col("name") == MUNICIPALITY_MARKER)["provinceCode"].to_list()
    municipal = pl.col("provinceCode").is_in(municipal_provinces)
    direct = pl.col("name").str.ends_with(DIRECT_COUNTY_MARKER)
    return admin.cities.join(provinces, left_on="provinceCode", right_on="province_code", how="left").select(
        pl.col("code").alias("city4"),
        pl.when(direct)
        .then(None)
        .when(municipal)
        .then(pl.col("provinceCode") + "0000")
        .otherwise(pl.col("code") + "00")
        .alias("unit_code"),
        pl.when(municipal).then(pl.col("province_full_zh")).otherwise(pl.col("name")).alias("full_name_zh"),
        pl.col("provinceCode").alias("province_code"),
    )


def national_cities(admin: AdminDivisions, registry_cities: pl.DataFrame) -> pl.DataFrame:
    """cities.csv of the national registry: one row per prefecture city and municipality."""
    provinces = _province_names(admin, registry_cities)
    derived = (
        _parent_cities(admin, provinces)
        .drop_nulls("unit_code")
        .unique("unit_code", keep="first", maintain_order=True)
        .join(provinces, on="province_code", how="left")
        .with_columns(
            pl.col("full_name_zh").str.strip_suffix("市").alias("name_zh"),
            pl.format("City {}", pl.col("unit_code")).alias("name_en"),
        )
    )
    known = registry_cities.select(
        "unit_code", *[pl.col(c).alias(f"known_{c}") for c in ("name_zh", "full_name_zh", "name_en")]
    )
    return (
        derived.join(known, on="unit_code", how="left")
        .with_columns([pl.coalesce(f"known_{c}", c).alias(c) for c in ("name_zh", "full_name_zh", "name_en")])
        .select(REGISTRY_COLUMNS["cities.csv"])
        .sort("unit_code")
    )


def national_counties(
    admin: AdminDivisions,
    registry_cities: pl.DataFrame,
    registry_counties: pl.DataFrame,
    cities: pl.DataFrame,
) -> pl.DataFrame:
    """counties.csv of the national registry: every county-level division of the list.

    Names follow the registry: a district carries its city's full name (深圳市南山区), a county-level
    unit its own name (江阴市), prefixed with its city's (or province's) full name where two share it.
    """
    provinces = _province_names(admin, registry_cities)
    parents = _parent_cities(admin, provinces).join(
        cities.select("unit_code", pl.col("name_zh").alias("city_name_zh")), on="unit_code", how="left"
    )
    name = pl.col("short_name_zh")
    is_district = name.str.ends_with("区") & ~pl.any_horizontal(
        [name.str.ends_with(s) for s in NON_DISTRICT_AREAS]
    )
    county_level = (pl.col("unit_code").str.slice(4, 1) != DEVELOPMENT_ZONE_DIGIT) & name.str.contains(
        f"[{COUNTY_LEVEL_SUFFIXES}]$"
    )
    prefix = pl.coalesce("parent_full_name_zh", "province_full_zh")
    derived = (
        admin.areas.rename({"code": "unit_code", "name": "short_name_zh"})
        .filter(county_level)
        .join(
            parents.select(
                "city4",
                pl.col("unit_code").alias("city_code"),
                "city_name_zh",
                pl.col("full_name_zh").alias("parent_full_name_zh"),
            ),
            left_on="cityCode",
            right_on="city4",
            how="left",
        )
        .join(provinces, left_on="provinceCode", right_on="province_code", how="left")
        .with_columns(
            pl.col("provinceCode").alias("province_code"),
            pl.when(is_district).then(pl.lit("district")).otherwise(pl.lit("county")).alias("kind"),
        )
        .with_columns(
            pl.when(pl.col("kind") == "district").then(prefix + name).otherwise(name).alias("name_zh")
        )
        .with_columns(
            pl.when(pl.col("name_zh").is_duplicated())
            .then(prefix + name)
            .otherwise(pl.col("name_zh"))
            .alias("name_zh")
        )
        .with_columns(pl.format("County unit {}", pl.col("unit_code")).alias("name_en"))
    )
    known = registry_counties.select(
        "unit_code", *[pl.col(c).alias(f"known_{c}") for c in ("name_zh", "short_name_zh", "name_en")]
    )
    counties = (
        derived.join(known, on="unit_code", how="left")
        .with_columns(
            [pl.coalesce(f"known_{c}", c).alias(c) for c in ("name_zh", "short_name_zh", "name_en")]
        )
        .select(REGISTRY_COLUMNS["counties.csv"])
        .sort("unit_code")
    )
    clashes = counties.filter(pl.col("name_zh").is_duplicated())["name_zh"].unique().to_list()
    if clashes:
        raise ValueError(f"county names not unique after prefixing: {sorted(clashes)}")
    return counties


def gdp_years(editions: Sequence[int], year_offset: int, real: pl.DataFrame) -> list[int]:
    """The GDP years the editions weight by (edition + offset), and the years with real figures."""
    return sorted({edition + year_offset for edition in editions} | set(real["year"].to_list()))


def growth_means(years: np.ndarray) -> np.ndarray:
    """Mean nominal growth into each year (log units), by period."""
    bounds = np.array([bound for bound, _ in NOMINAL_GROWTH])
    means = np.array([mean for _, mean in NOMINAL_GROWTH])
    return np.log1p(means[np.searchsorted(bounds, years, side="right")])


def synthetic_log_gdp(unit_factor: np.ndarray, years: Sequence[int], seed: int) -> np.ndarray:
    """(cities, years) log GDP: a level in the last year tied to the city's factor, and a noisy growth
    path back from it."""
    n, years_arr = len(unit_factor), np.asarray(years)
    standardized = (unit_factor - unit_factor.mean()) / unit_factor.std()
    last = (
        np.log(GDP_MEDIAN_LAST_YEAR)
        + GDP_FACTOR_LOADING * standardized
        + _rng(seed, "gdp_level").normal(0.0, GDP_LEVEL_SD, n)
    )
    growth = growth_means(years_arr[1:])[None, :] + _rng(seed, "gdp_growth").normal(
        0.0, GROWTH_SD, (n, len(years_arr) - 1)
    )
    growth = np.clip(growth, *np.log1p(GROWTH_RANGE))
    # log GDP of year y = last - growth into every later year
    back = np.concatenate([np.cumsum(growth[:, ::-1], axis=1)[:, ::-1], np.zeros((n, 1))], axis=1)
    return last[:, None] - back


def national_gdp(
    cities: pl.DataFrame, unit_factor: np.ndarray, real: pl.DataFrame, years: Sequence[int], seed: int
) -> pl.DataFrame:
    """city_gdp.csv rows for every city, year and vintage: real figures where the registry has them;
    otherwise the synthetic path, scaled through the city's nearest real figure of the same vintage
    when it has one."""
    log_gdp = synthetic_log_gdp(unit_factor, years, seed)
    synthetic = pl.DataFrame(
        {
            "unit_code": np.repeat(cities["unit_code"].to_numpy(), len(years)),
            "year": np.tile(np.asarray(years, dtype=np.int64), cities.height),
            "log_gdp": log_gdp.ravel(),
        }
    ).join(pl.DataFrame({"vintage": list(VINTAGES)}), how="cross")
    real = real.select("unit_code", pl.col("year").cast(pl.Int64), "vintage", "gdp_100m_yuan", "source")
    anchors = real.join(synthetic, on=["unit_code", "year", "vintage"]).select(
        "unit_code",
        "vintage",
        pl.col("year").alias("anchor_year"),
        (pl.col("gdp_100m_yuan").log() - pl.col("log_gdp")).alias("anchor_shift"),
    )
    nearest = (
        synthetic.join(real, on=["unit_code", "year", "vintage"], how="anti")
        .join(anchors, on=["unit_code", "vintage"], how="left")
        .sort(
            "unit_code",
            "year",
            "vintage",
            (pl.col("anchor_year") - pl.col("year")).abs(),
            "anchor_year",
            nulls_last=True,
        )
        .unique(["unit_code", "year", "vintage"], keep="first", maintain_order=True)
    )
    invented = nearest.select(
        "unit_code",
        "year",
        "vintage",
        (pl.col("log_gdp") + pl.col("anchor_shift").fill_null(0.0)).exp().round(2).alias("gdp_100m_yuan"),
        pl.when(pl.col("anchor_year").is_null())
        .then(
            pl.lit(
                f"SYNTHETIC (dei_pipeline.synthetic.national, seed {seed}): invented level and growth path, not a statistic"
            )
        )
        .otherwise(
            pl.format(
                f"SYNTHETIC (dei_pipeline.synthetic.national, seed {seed}): the real {{}} figure of {{}} moved along an invented growth path",
                pl.col("vintage"),
                pl.col("anchor_year"),
            )
        )
        .alias("source"),
    )
    return (
        pl.concat([real.filter(pl.col("unit_code").is_in(cities["unit_code"].implode())), invented])
        .sort("unit_code", "year", "vintage")
        .select(REGISTRY_COLUMNS["city_gdp.csv"])
    )


# ======================================================================================================
# Indicator scores
# ======================================================================================================


def unit_factor_paths(n_units: int, unit_type: str, editions: Sequence[int], seed: int) -> np.ndarray:
    """(units, editions) latent factor: its value in the last edition, and a random walk around a
    rising trend back from it."""
    mean, sd = UNIT_FACTOR[unit_type]
    stream = UNIT_TYPE_INDEX[unit_type]
    last = _rng(seed, "unit_factor", stream).normal(mean, sd, n_units)
    steps = TREND_PER_EDITION + _rng(seed, "drift", stream).normal(
        0.0, DRIFT_SD, (n_units, len(editions) - 1)
    )
    back = np.concatenate([np.cumsum(steps[:, ::-1], axis=1)[:, ::-1], np.zeros((n_units, 1))], axis=1)
    return last[:, None] - back


def edition_hundredths(
    layout_codes: Sequence[str], profile: np.ndarray, factor: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(units, leaves) scores in hundredths of one edition from the sample's factor model."""
    level, loading = leaf_priors(layout_codes)
    eta = profile + rng.normal(0.0, YEAR_NOISE_SD, size=profile.shape)
    scores = model_scores(level, loading, factor, eta, np.full(profile.shape, np.nan))
    return np.rint(scores * 100).astype(np.int64)


# ======================================================================================================
# Writing
# ======================================================================================================


def _write_bytes(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _write_csv(path: Path, frame: pl.DataFrame, float_precision: int | None = None) -> Path:
    return _write_bytes(
        path, frame.write_csv(line_terminator="\n", float_precision=float_precision).encode("utf-8")
    )


def _copy_tree_files(source: Path, target: Path, pattern: str = "*") -> list[Path]:
    return [
        _write_bytes(target / path.name, path.read_bytes())
        for path in sorted(source.glob(pattern))
        if path.is_file()
    ]


def manifest_text(seed: int, registry_counts: dict[str, int | str], entries: list[dict]) -> str:
    header = (
        "# SYNTHETIC national-scale data set written by dei_pipeline.synthetic.national.write_national_data\n"
        "# (`dei sample-data --scale national --out DIR`). Every indicator score is invented, and so is every\n"
        "# city_gdp.csv row whose source starts with SYNTHETIC. For benchmarks and scale tests only.\n"
    )
    body = {
        "synthetic": True,
        "generator": "dei_pipeline.synthetic.national.write_national_data",
        "seed": seed,
        "calibrated_to": None,
        "units_from": "data/reference/admin_divisions (github.com/modood/Administrative-divisions-of-China dist/*.csv @ 57a0aa9)",
        "registry": registry_counts,
        "editions": entries,
    }
    return header + yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=120)


def write_national_data(
    out_dir: Path,
    seed: int = 2020,
    *,
    editions: Sequence[int] = NATIONAL_EDITIONS,
    source_dir: Path = REPO_DATA_DIR,
) -> list[Path]:
    """Write the SYNTHETIC national data directory (see the module docstring) to ``out_dir``; returns the
    written paths. ``editions`` (default 2001-2020) may be a subset: each edition's files are the same as
    in the full set. ``source_dir`` is the data directory whose frameworks, method and registry are used."""
    out_dir, editions = Path(out_dir), sorted(editions)
    if out_dir.resolve() == Path(source_dir).resolve() or (out_dir / "published").exists():
        raise ValueError(
            f"{out_dir}: refusing to write the synthetic national data set over a data directory with published figures"
        )
    written: list[Path] = []
    for edition_dir in (out_dir / "raw").glob("[0-9][0-9][0-9][0-9]"):
        shutil.rmtree(edition_dir)  # a rerun with fewer editions leaves none of the old ones behind
    for unit_type in UNIT_FILES:
        written.append(
            _write_bytes(
                out_dir / "frameworks" / f"{unit_type}_{FRAMEWORK_EDITION}.csv",
                framework_files(source_dir, unit_type)[FRAMEWORK_EDITION].read_bytes(),
            )
        )
    written += _copy_tree_files(source_dir / "method", out_dir / "method")

    source_registry = source_dir / "registry"
    registry_cities = pl.read_csv(source_registry / "cities.csv", infer_schema=False)
    registry_counties = pl.read_csv(source_registry / "counties.csv", infer_schema=False)
    admin = load_admin_divisions()
    units = {"city": national_cities(admin, registry_cities)}
    units["county"] = national_counties(admin, registry_cities, registry_counties, units["city"])

    all_editions = sorted(set(NATIONAL_EDITIONS) | set(editions))
    factors = {ut: unit_factor_paths(frame.height, ut, all_editions, seed) for ut, frame in units.items()}
    real_gdp = pl.read_csv(source_registry / "city_gdp.csv", infer_schema=False).with_columns(
        pl.col("year").cast(pl.Int64), pl.col("gdp_100m_yuan").cast(pl.Float64)
    )
    years = gdp_years(all_editions, load_settings(out_dir).gdp_year_offset, real_gdp)
    gdp = national_gdp(units["city"], factors["city"][:, -1], real_gdp, years, seed)

    registry_dir = out_dir / "registry"
    written.append(_write_csv(registry_dir / "cities.csv", units["city"]))
    written.append(_write_csv(registry_dir / "counties.csv", units["county"]))
    written += [
        _write_bytes(registry_dir / name, (source_registry / name).read_bytes())
        for name in COPIED_REGISTRY_FILES
    ]
    written.append(_write_csv(registry_dir / "city_gdp.csv", gdp, float_precision=2))
    written.append(
        _write_csv(
            registry_dir / "code_changes.csv",
            pl.DataFrame(schema={c: pl.String for c in REGISTRY_COLUMNS["code_changes.csv"]}),
        )
    )

    entries: dict[int, list[dict]] = {edition: [] for edition in editions}
    for unit_type, frame in units.items():
        framework = resolve_framework(out_dir, unit_type, FRAMEWORK_EDITION)
        layout = leaf_layout(framework)
        profile = factor_noise(_rng(seed, "profile", UNIT_TYPE_INDEX[unit_type]), frame.height, layout)
        for edition in editions:
            factor = factors[unit_type][:, all_editions.index(edition)]
            rng = _rng(seed, "year_noise", UNIT_TYPE_INDEX[unit_type], edition)
            text = scores_csv(frame, layout, edition_hundredths(layout.codes, profile, factor, rng))
            path = _write_bytes(out_dir / "raw" / str(edition) / UNIT_FILES[unit_type], text.encode("utf-8"))
            written.append(path)
            entries[edition].append(
                {
                    "path": path.relative_to(out_dir / "raw").as_posix(),
                    "unit_type": unit_type,
                    "units": frame.height,
                    "indicators": len(layout.codes),
                    "framework": framework.source_file.name,
                    "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                }
            )
    registry_counts: dict[str, int | str] = {
        "cities": units["city"].height,
        "county_units": units["county"].height,
        "gdp_rows": gdp.height,
        "gdp_rows_synthetic": gdp.filter(pl.col("source").str.starts_with("SYNTHETIC")).height,
        "gdp_years": f"{years[0]}-{years[-1]}",
    }
    manifest = manifest_text(seed, registry_counts, [{"edition": e, "files": entries[e]} for e in editions])
    written.append(_write_bytes(out_dir / "raw" / "manifest.yaml", manifest.encode("utf-8")))
    return written
