"""SYNTHETIC sample data: indicator (level-3) scores invented to reproduce the published 2020 figures.

The 2020 white paper (中国城市数字经济指数白皮书) publishes composite scores, level-1 averages and a few
industry figures, but no indicator scores. To run and test the pipeline end to end the project ships a
synthetic sample written by this module into ``data/raw/<edition>/{cities,counties}.csv``; every number
in it is made up, only its aggregates are calibrated. ``data/raw/README.md`` states what is calibrated
and how closely; ``data/raw/manifest.yaml`` (written here) flags the files as synthetic.

How the 2020 edition is made (all published targets are read from ``data/published/2020/``):

1. Factor model. Score of unit u on leaf j = ``100 * sigmoid(a_j + s_j * (o_u + eta_uj))``: ``o_u`` is a
   latent unit factor (fitted to the unit's composite), ``a_j`` the indicator's level (infrastructure
   high, digital industries low), ``s_j`` its loading, ``eta_uj`` = level-1 factor noise + indicator noise.
   The logistic link keeps every score inside (0, 100) and gives skewed indicators (few cities high on
   digital industries) without special cases.
2. Logit-stage fit, alternating until it settles: unit factors to the published composites; the published
   industry indicators' (a_j, s_j) to their mean and Top-10 mean; a shift of the other indicators of each
   level-1 block to the level-1 average. Named example scores (潍坊 agriculture 83 ...) are pinned cells.
3. Exact stage: the smallest (least-squares) change that makes every linear target hold exactly -- unit
   composites, level-1 averages, indicator averages, Top-10 averages on a fixed Top-10 set -- within
   per-cell bounds ([0, 100]; pinned cells fixed; Top-10 cells above a threshold, the others below it).
   Solved by an active-set projection: project onto {A x = b} moving only cells not at a bound, clip,
   repeat.
4. Rounding to 2 decimals, then each unit's remaining composite residual is removed in 0.01 steps on its
   highest-weight unconstrained indicator, so every composite is within 0.0002 of its target.

Earlier editions (not published; our choices, see ``data/raw/README.md``): the 2019 city set is the 2020
set minus the published number of new cities, chosen so that the cohort means and the implied 2019 tier
counts of the statements come out; 2018 and 2017 are smaller sets with trajectories that rise over time;
counties get a 2019 edition somewhat below 2020. Their leaves keep each unit's 2020 indicator profile
(the fitted ``eta``) with a little yearly noise, re-fitted to the edition's composites by steps 2-4.

Deterministic: every random draw comes from ``numpy.random.default_rng([seed, stream])`` with a fixed
stream number per purpose, so the files are reproduced byte for byte.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from dei_pipeline.config import load_settings
from dei_pipeline.frameworks import Framework, resolve_framework

PUBLISHED_EDITION = 2020
CITY_EDITIONS: tuple[int, ...] = (2017, 2018, 2019, 2020)
COUNTY_EDITIONS: tuple[int, ...] = (2019, 2020)
UNIT_FILES: dict[str, str] = {"city": "cities.csv", "county": "counties.csv"}
MEASUREMENT_FILES: dict[str, str] = {"city": "cities_measurements.csv", "county": "counties_measurements.csv"}
# Editions and unit types written as measurements in natural units rather than scores: each measurement
# is the affine (or, for a log indicator, log-affine) image of the calibrated score between the
# indicator's goalposts in its framework file, so goalpost normalisation gives the score back.
MEASUREMENT_EDITIONS: frozenset[tuple[str, int]] = frozenset({("city", PUBLISHED_EDITION)})
MEASUREMENT_DECIMALS = 4
# Outliers: (indicator, unit) -> measurement as a multiple of goal_high. Only a unit at the top goalpost
# (score 100) can be an outlier without changing its score: winsorised to the next value, which is at
# the goalpost too, it still scores 100, so the calibrated scores are untouched. 深圳 and 北京 both score
# 100 in 驱动产业 (深圳's is a printed example); 深圳's revenue is put at six times the goalpost.
OUTLIERS: dict[tuple[str, str], float] = {("industry_digital_driving", "440300"): 6.0}
TOP_N = 10  # the paper's "Top10城市平均得分"

# --- factor model priors (our choices, not published) ----------------------------------------------
# (code prefix, logit offset, loading on the unit factor); the longest matching prefix wins. Offsets
# encode the paper's qualitative remarks; within a calibrated level-1 block only their differences
# matter, for counties (no sub-scores published) they set the indicator levels.
LEAF_PRIORS: tuple[tuple[str, float, float], ...] = (
    ("infra", 0.45, 0.85),  # infrastructure averages 68.3, well above the composite
    ("infra_network_city_cloud", 0.65, 0.85),  # 80%以上的城市建立了统一政务云
    ("infra_ops_structure", 0.85, 0.75),  # 超过90%的城市已成立大数据局
    ("infra_ops_mechanism", 0.15, 0.9),  # 数据运营机制有待完善
    ("infra_data_sharing", 0.3, 0.9),  # 数据共享交换存在壁垒
    ("infra_data_open", -0.1, 1.0),  # 数据开放程度不高
    ("service", 0.0, 1.0),
    ("service_build_health", 0.15, 1.0),  # 医疗、扶贫、营商环境和生活环境投入力度最大
    ("service_build_poverty", 0.15, 0.9),
    ("service_build_business_env", 0.3, 1.0),
    ("service_build_living_env", 0.25, 1.0),
    ("service_build_balance", -0.15, 1.0),
    ("service_outcome", -0.2, 1.1),
    ("governance", 0.0, 1.0),
    ("governance_build_police", 0.35, 0.85),  # 85%的城市已开展雪亮工程
    ("governance_build_emergency", -0.45, 1.1),  # 多数城市应急管理数字化水平偏低
    ("governance_build_natural_resources", -0.15, 1.0),
    ("service_governance", 0.0, 1.0),  # county framework
    ("service_governance_build_police", 0.35, 0.85),
    ("service_governance_build_emergency", -0.45, 1.1),
    ("industry", -0.35, 1.2),  # industry integration averages 48.5, below the composite
    ("industry_digital", -1.3, 1.6),  # digital industries concentrate in few places
    ("industry_sectors_local_specialty", -0.1, 1.1),  # county framework: 特色产业
    ("industry_sectors_agriculture", -0.5, 1.1),  # county framework: 乡村数字化薄弱
)
LEVEL1_NOISE_SD = 0.25  # logit units: a unit's strength in one level-1 block beyond its overall level
LEAF_NOISE_SD = 0.35  # indicator-specific noise
YEAR_NOISE_SD = 0.12  # year-to-year change of a unit's indicator profile

# --- exact-stage and rounding tolerances --------------------------------------------------------------
TOP_GAP = 0.05  # Top-10 cells stay >= threshold + gap, the others <= threshold - gap (survives rounding)
PROJECTION_TOL = 1e-9
FIT_ROUNDS = 10  # logit-stage alternations; the exact stage removes what is left

# --- earlier editions (our choices; the paper publishes none of this) ---------------------------------
PREV_TIER_COUNTS_FROM_STATEMENTS: dict[str, str] = {
    "new_tier1": "new_tier1_count_prev_implied",
    "tier2": "tier2_count_prev_implied",
}
PREV_TIER_COUNTS_CHOSEN: dict[str, int] = {
    "tier1": 5,  # 一线 "继续保持引领": five of the six 2020 一线 cities were already above 85
    "tier4": 15,  # 四线 "持续增多，但增速相对较慢": fewer than the 18 of 2020; 三线 takes the rest
}
NEW_CITY_KEY_NOISE = 7.0  # points of noise on the 2020 score when picking the 35 new cities
NEW_CITY_CHENGYU_BIAS = 6.0  # 成渝 small cities were added in the 2020 drive to cover the 4 regions
CHENGYU_REGION = "chengyu"
GROWTH_SD = 2.0  # points: spread of a city's yearly change around the edition's mean change
GROWTH_BEFORE: dict[int, float] = {2019: 4.0, 2018: 4.5}  # mean rise into edition y from y - 1
GROWTH_RANGE = (-1.5, 10.0)  # a city may slip a little, never collapse or jump
PREV_TRAJECTORY_SLACK = (12.0, 1.5)  # a 2019 score lies in [2020 - 12, 2020 + 1.5] unless its tier needs more
EDITION_SIZES: dict[int, int] = {2018: 100, 2017: 40}
GAP_CITIES = 2  # cities assessed, skipped one edition, assessed again (dropped-and-returning units)
# Points of noise on the score when choosing members: the early editions covered a mix of large and
# small cities (wide noise keeps edition means rising: 2017 < 2018 < 2019), always with the leaders.
EARLY_SELECTION_NOISE = {2018: 8.0, 2017: 20.0}
COUNTY_GROWTH = (4.0, 1.5, (0.5, 9.0))  # mean, sd, range of the 2019 -> 2020 rise (得分相比上年明显提高)
SCORE_FLOOR_CEILING = (15.0, 98.0)  # bounds for invented composites of earlier editions

STREAMS: dict[str, int] = {  # one independent random stream per purpose
    "city_noise": 1,
    "county_noise": 2,
    "new_cities": 3,
    "city_growth": 4,
    "membership": 5,
    "county_growth": 6,
    "year_noise": 7,
    "band_margin": 8,
}


def _rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[stream], *extra])


# ======================================================================================================
# Targets
# ======================================================================================================


@dataclass(frozen=True)
class Layout:
    """The leaves of a framework as arrays: effective weights and level-1 block of each leaf."""

    codes: tuple[str, ...]
    weights: np.ndarray  # (K,) effective weight in the composite
    group: np.ndarray  # (K,) index into group_codes
    group_codes: tuple[str, ...]

    @property
    def group_weights(self) -> np.ndarray:
        return np.bincount(self.group, weights=self.weights, minlength=len(self.group_codes))


@dataclass(frozen=True)
class ColumnTargets:
    """Published cross-unit targets of one edition's unit type (empty for counties)."""

    level1_means: dict[str, float]
    means: dict[str, float]  # leaf -> mean over units
    top_means: dict[str, float]  # leaf -> mean of the TOP_N highest units
    pins: np.ndarray  # (n, K) pinned cell values (named examples), NaN elsewhere


def leaf_layout(framework: Framework) -> Layout:
    nodes = framework.nodes
    parent = dict(zip(nodes["code"].to_list(), nodes["parent_code"].to_list(), strict=True))

    def level1_of(code: str) -> str:
        while parent[code] is not None:
            code = parent[code]
        return code

    leaves = nodes.filter(pl.col("is_leaf"))
    codes = tuple(leaves["code"].to_list())
    group_codes = tuple(framework.level_codes(1))
    group = np.array([group_codes.index(level1_of(code)) for code in codes])
    return Layout(codes, leaves["effective_weight"].to_numpy(), group, group_codes)


def load_units(data_dir: Path, unit_type: str) -> pl.DataFrame:
    """Registry units with their published 2020 score: unit_code, name_zh, score; sorted by unit_code."""
    edition_dir = data_dir / "published" / str(PUBLISHED_EDITION)
    if unit_type == "city":
        registry_file, rankings = "cities.csv", ["city_ranking.csv"]
    else:
        registry_file, rankings = "counties.csv", ["district_ranking.csv", "county_ranking.csv"]
    registry = pl.read_csv(data_dir / "registry" / registry_file, infer_schema=False).select(
        "unit_code", "name_zh"
    )
    published = pl.concat(
        [pl.read_csv(edition_dir / name, infer_schema=False).select("name_zh", "score") for name in rankings]
    ).with_columns(pl.col("score").cast(pl.Float64))
    units = registry.join(published, on="name_zh", how="left").sort("unit_code")
    missing = units.filter(pl.col("score").is_null())["name_zh"].to_list()
    unmatched = published.join(registry, on="name_zh", how="anti")["name_zh"].to_list()
    if missing or unmatched or units.height != registry.height:
        raise ValueError(
            f"{unit_type}: registry and published ranking disagree (no score: {missing}; not in registry: {unmatched})"
        )
    return units


def load_city_column_targets(data_dir: Path, units: pl.DataFrame, layout: Layout) -> ColumnTargets:
    edition_dir = data_dir / "published" / str(PUBLISHED_EDITION)
    level1 = pl.read_csv(edition_dir / "level1_averages.csv")
    industry = pl.read_csv(edition_dir / "industry_averages.csv")
    examples = pl.read_csv(edition_dir / "industry_examples.csv", columns=["name_zh", "node_code", "score"])
    unknown = set(industry["node_code"]) - set(layout.codes) | set(examples["node_code"]) - set(layout.codes)
    if unknown:
        raise ValueError(f"published industry figures name non-leaf codes {sorted(unknown)}")
    rows = examples.join(units.with_row_index("row").select("name_zh", "row"), on="name_zh", how="left")
    if rows["row"].null_count():
        raise ValueError(
            f"industry examples name units not in the registry: {rows.filter(pl.col('row').is_null())['name_zh'].to_list()}"
        )
    pins = np.full((units.height, len(layout.codes)), np.nan)
    columns = np.array([layout.codes.index(code) for code in rows["node_code"]], dtype=np.int64)
    pins[rows["row"].to_numpy(), columns] = rows["score"].cast(pl.Float64).to_numpy()
    return ColumnTargets(
        level1_means=dict(zip(level1["node_code"], level1["average"].cast(pl.Float64), strict=True)),
        means=dict(zip(industry["node_code"], industry["average"].cast(pl.Float64), strict=True)),
        top_means=dict(zip(industry["node_code"], industry["top10_average"].cast(pl.Float64), strict=True)),
        pins=pins,
    )


def load_statements(data_dir: Path) -> dict[str, float]:
    items = yaml.safe_load(
        (data_dir / "published" / str(PUBLISHED_EDITION) / "statements.yaml").read_text(encoding="utf-8")
    )
    return {str(item["id"]): float(item["value"]) for item in items}


@dataclass(frozen=True)
class TierBands:
    """Tiers highest first, each as the closed interval of displayed (rounded) scores it holds."""

    codes: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    step: float  # display resolution (0.1)

    def of(self, shown: np.ndarray) -> np.ndarray:
        """Tier index (0 = highest) of displayed scores."""
        return np.argmax(np.round(shown, 6)[:, None] >= self.low[None, :] - 1e-9, axis=1)


def load_tier_bands(data_dir: Path) -> TierBands:
    settings = load_settings(data_dir)
    step = 10.0**-settings.display_decimals
    tiers = pl.read_csv(data_dir / "method" / "tiers.csv").sort("lower_bound", descending=True)
    bound = tiers["lower_bound"].cast(pl.Float64).to_numpy()
    inclusive = tiers["lower_inclusive"].to_numpy().astype(bool)
    low = np.where(inclusive, bound, bound + step)
    high = np.concatenate([[settings.score_max], low[:-1] - step])
    return TierBands(tuple(tiers["tier_code"].to_list()), low, high, step)


def consistent_level1_targets(
    targets: np.ndarray, group_weights: np.ndarray, composite_mean: float
) -> np.ndarray:
    """Level-1 averages moved (least squares) so that their weighted sum equals the mean composite.

    Both are published rounded, so they disagree slightly (57.305 vs 57.3074); exact constraints need
    them consistent. The move is a few thousandths of a point, far inside the rounding.
    """
    gap = composite_mean - group_weights @ targets
    return targets + group_weights * gap / (group_weights @ group_weights)


# ======================================================================================================
# Factor model (logit stage)
# ======================================================================================================


def leaf_priors(codes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Prior logit offset and unit-factor loading of each leaf (longest matching prefix of LEAF_PRIORS)."""
    offsets, loadings = [], []
    for code in codes:
        matches = [row for row in LEAF_PRIORS if code == row[0] or code.startswith(row[0] + "_")]
        if not matches:
            raise ValueError(f"no LEAF_PRIORS entry covers indicator {code!r}")
        _, offset, loading = max(matches, key=lambda row: len(row[0]))
        offsets.append(offset)
        loadings.append(loading)
    return np.array(offsets), np.array(loadings)


def factor_noise(rng: np.random.Generator, n_units: int, layout: Layout) -> np.ndarray:
    """eta: a level-1 factor shared by the leaves of a block, plus leaf-specific noise."""
    block = rng.normal(0.0, LEVEL1_NOISE_SD, size=(n_units, len(layout.group_codes)))
    leaf = rng.normal(0.0, LEAF_NOISE_SD, size=(n_units, len(layout.codes)))
    return block[:, layout.group] + leaf


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def model_scores(
    a: np.ndarray, s: np.ndarray, o: np.ndarray, eta: np.ndarray, pins: np.ndarray
) -> np.ndarray:
    scores = 100.0 * _sigmoid(a + s * (o[:, None] + eta))
    return np.where(np.isnan(pins), scores, pins)


def _bisect(
    f: Callable[[np.ndarray], np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    target: np.ndarray,
    iterations: int = 50,
) -> np.ndarray:
    """Vectorised bisection for increasing f: the x in [lo, hi] with f(x) = target, element-wise."""
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = f(mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def fit_unit_factors(
    a: np.ndarray,
    s: np.ndarray,
    eta: np.ndarray,
    pins: np.ndarray,
    weights: np.ndarray,
    composites: np.ndarray,
) -> np.ndarray:
    """o_u such that the model's composite equals the target (the composite rises with o_u)."""
    n = len(composites)
    return _bisect(
        lambda o: model_scores(a, s, o, eta, pins) @ weights, np.full(n, -20.0), np.full(n, 20.0), composites
    )


def _top_mean(block: np.ndarray) -> np.ndarray:
    return np.sort(block, axis=0)[-TOP_N:].mean(axis=0)


def fit_published_columns(
    a: np.ndarray,
    s: np.ndarray,
    o: np.ndarray,
    eta: np.ndarray,
    pins: np.ndarray,
    columns: np.ndarray,
    means: np.ndarray,
    top_means: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(a_j, s_j) of the published columns so that their mean and Top-10 mean hit the targets.

    For a loading s the level a that gives the mean is found by bisection; the Top-10 mean then rises
    with s (a wider spread at the same mean), so s is found by an outer bisection.
    """
    eta_c, pins_c = eta[:, columns], pins[:, columns]

    def level_for(loading: np.ndarray) -> np.ndarray:
        return _bisect(
            lambda level: model_scores(level, loading, o, eta_c, pins_c).mean(axis=0),
            np.full(len(columns), -20.0),
            np.full(len(columns), 20.0),
            means,
            iterations=40,
        )

    loading = _bisect(
        lambda ld: _top_mean(model_scores(level_for(ld), ld, o, eta_c, pins_c)),
        np.full(len(columns), 0.05),
        np.full(len(columns), 8.0),
        top_means,
        iterations=30,
    )
    a, s = a.copy(), s.copy()
    a[columns], s[columns] = level_for(loading), loading
    return a, s


def fit_level1_shifts(
    a_prior: np.ndarray,
    s: np.ndarray,
    o: np.ndarray,
    eta: np.ndarray,
    pins: np.ndarray,
    layout: Layout,
    free: np.ndarray,
    targets: np.ndarray,
) -> np.ndarray:
    """Shift the free (unpublished) leaves of each level-1 block so that the block average hits its target."""
    share = layout.weights / layout.group_weights[layout.group]

    def block_means(shift: np.ndarray) -> np.ndarray:
        scores = model_scores(a_prior + shift[layout.group] * free, s, o, eta, pins)
        return np.bincount(layout.group, weights=scores.mean(axis=0) * share, minlength=len(targets))

    n_groups = len(layout.group_codes)
    shift = _bisect(block_means, np.full(n_groups, -10.0), np.full(n_groups, 10.0), targets)
    return a_prior + shift[layout.group] * free


# ======================================================================================================
# Exact stage
# ======================================================================================================


def constraint_system(
    layout: Layout,
    composites: np.ndarray,
    level1_means: np.ndarray | None = None,
    column_means: dict[int, float] | None = None,
    top_sets: dict[int, tuple[np.ndarray, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A and b of the linear targets on the flattened (unit-major) score matrix."""
    n, k = len(composites), len(layout.codes)
    rows = [np.kron(np.eye(n), layout.weights[None, :])]
    values = [composites]
    if level1_means is not None:
        share = layout.weights / layout.group_weights[layout.group]
        blocks = (layout.group[None, :] == np.arange(len(level1_means))[:, None]) * share[None, :]
        rows.append(np.tile(blocks, n) / n)
        values.append(level1_means)
    for j, mean in (column_means or {}).items():
        row = np.zeros((n, k))
        row[:, j] = 1.0 / n
        rows.append(row.reshape(1, -1))
        values.append(np.array([mean]))
    for j, (members, mean) in (top_sets or {}).items():
        row = np.zeros((n, k))
        row[members, j] = 1.0 / len(members)
        rows.append(row.reshape(1, -1))
        values.append(np.array([mean]))
    return np.vstack(rows), np.concatenate(values)


def project_exact(
    start: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    a_mat: np.ndarray,
    b: np.ndarray,
    max_iterations: int = 200,
) -> np.ndarray:
    """A point with A x = b and low <= x <= high, close (least squares) to ``start``.

    Active set: each round projects onto the affine set moving only the cells strictly inside their
    bounds, then clips; cells that hit a bound stay there. A pinned cell (low == high) never moves.
    """
    x = np.clip(start.ravel(), low.ravel(), high.ravel())
    low, high = low.ravel(), high.ravel()
    for _ in range(max_iterations):
        residual = b - a_mat @ x
        if np.abs(residual).max() < PROJECTION_TOL:
            return x.reshape(start.shape)
        free_rows = a_mat * ((x > low) & (x < high))
        multipliers = np.linalg.lstsq(free_rows @ free_rows.T, residual, rcond=None)[0]
        x = np.clip(x + free_rows.T @ multipliers, low, high)
    raise RuntimeError(f"exact calibration did not converge (max residual {np.abs(b - a_mat @ x).max():.2e})")


def top_sets_and_bounds(
    start: np.ndarray,
    pins: np.ndarray,
    columns: Sequence[int],
    top_means: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[np.ndarray, float]]]:
    """Fix each published column's Top-10 set from the logit-stage scores and bound the cells so it stays so.

    The threshold lies between the 10th and 11th value; pinned cells keep their value (they are already
    on the right side: the set is taken after pinning).
    """
    low, high = np.zeros_like(start), np.full_like(start, 100.0)
    top_sets: dict[int, tuple[np.ndarray, float]] = {}
    for j, mean in zip(columns, top_means, strict=True):
        order = np.argsort(-start[:, j], kind="stable")
        members = np.sort(order[:TOP_N])
        threshold = 0.5 * (start[order[TOP_N - 1], j] + start[order[TOP_N], j])
        in_top = np.isin(np.arange(start.shape[0]), members)
        low[:, j] = np.where(in_top, threshold + TOP_GAP, 0.0)
        high[:, j] = np.where(in_top, 100.0, threshold - TOP_GAP)
        top_sets[j] = (members, mean)
    pinned = ~np.isnan(pins)
    low[pinned], high[pinned] = pins[pinned], pins[pinned]
    return low, high, top_sets


def round_scores(
    x: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    weights: np.ndarray,
    composites: np.ndarray,
    adjustable: np.ndarray,
) -> np.ndarray:
    """Scores in hundredths (int64) whose composites are within half a step of the targets.

    Rounding moves a composite by up to 0.005; the residual is taken out on the unit's highest-weight
    adjustable leaf (one that no cross-unit target involves) in 0.01 steps, falling back to the next
    leaf when the step would leave the cell's bounds.
    """
    hundredths = np.rint(x * 100).astype(np.int64)
    low_q, high_q = np.ceil(low * 100 - 1e-6).astype(np.int64), np.floor(high * 100 + 1e-6).astype(np.int64)
    hundredths = np.clip(hundredths, low_q, high_q)
    done = np.zeros(len(composites), dtype=bool)
    for j in np.flatnonzero(adjustable)[np.argsort(-weights[adjustable], kind="stable")]:
        residual = composites - hundredths @ weights / 100
        candidate = hundredths[:, j] + np.rint(residual / (0.01 * weights[j])).astype(np.int64)
        fits = ~done & (candidate >= low_q[:, j]) & (candidate <= high_q[:, j])
        hundredths[fits, j] = candidate[fits]
        done |= fits
        if done.all():
            return hundredths
    raise RuntimeError(f"{(~done).sum()} units could not be brought to their composite after rounding")


# ======================================================================================================
# One edition of one unit type
# ======================================================================================================


@dataclass(frozen=True)
class Calibrated:
    hundredths: np.ndarray  # (n, K) scores * 100
    profile: np.ndarray  # (n, K) each cell's position relative to its unit factor (carried to other editions)
    level: np.ndarray  # (K,) a_j
    loading: np.ndarray  # (K,) s_j


def calibrate(
    layout: Layout,
    composites: np.ndarray,
    level: np.ndarray,
    loading: np.ndarray,
    eta: np.ndarray,
    targets: ColumnTargets | None = None,
) -> Calibrated:
    """Leaf scores of one edition that aggregate exactly to ``composites`` (and to ``targets`` if given)."""
    n, k = eta.shape
    pins = targets.pins if targets is not None else np.full((n, k), np.nan)
    published = [layout.codes.index(code) for code in targets.means] if targets else []
    free = ~np.isin(np.arange(k), published)
    level1 = None
    if targets is not None:
        raw_level1 = np.array([targets.level1_means[code] for code in layout.group_codes])
        level1 = consistent_level1_targets(raw_level1, layout.group_weights, float(composites.mean()))
    prior_level = level.copy()
    o = fit_unit_factors(level, loading, eta, pins, layout.weights, composites)
    if targets is not None and level1 is not None:
        for _ in range(FIT_ROUNDS):
            level, loading = fit_published_columns(
                level,
                loading,
                o,
                eta,
                pins,
                np.array(published),
                np.array([targets.means[layout.codes[j]] for j in published]),
                np.array([targets.top_means[layout.codes[j]] for j in published]),
            )
            level = fit_level1_shifts(
                np.where(free, prior_level, level), loading, o, eta, pins, layout, free, level1
            )
            o = fit_unit_factors(level, loading, eta, pins, layout.weights, composites)
    start = model_scores(level, loading, o, eta, pins)

    if targets is not None:
        top_means = [targets.top_means[layout.codes[j]] for j in published]
        low, high, top_sets = top_sets_and_bounds(start, pins, published, top_means)
        means = {j: targets.means[layout.codes[j]] for j in published}
    else:
        low, high, top_sets, means = np.zeros((n, k)), np.full((n, k), 100.0), {}, {}
    a_mat, b = constraint_system(layout, composites, level1, means, top_sets)
    exact = project_exact(start, low, high, a_mat, b)
    adjustable = free & np.isnan(pins).all(axis=0)
    hundredths = round_scores(exact, low, high, layout.weights, composites, adjustable)
    # The unit's indicator profile in model units, so later/earlier editions keep its strengths.
    share = np.clip(hundredths / 10000, 0.005, 0.995)
    profile = (_logit(share) - level) / loading - o[:, None]
    return Calibrated(hundredths, profile, level, loading)


# ======================================================================================================
# Earlier editions: memberships and composite trajectories
# ======================================================================================================


def choose_new_cities(
    scores: np.ndarray,
    tiers: np.ndarray,
    eligible_tier: int,
    chengyu: np.ndarray,
    n_new: int,
    returning_mean: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Boolean mask of the cities new in 2020 (the rest returned from 2019).

    Only cities below 新一线 can be new (the established leaders were surely assessed before); lower
    scores and the small 成渝 cities are likelier to be new. Then the single swap (new <-> returning)
    that brings the returning cohort's 2020 mean closest to the published mean is made, until it is
    within 0.01 of it.
    """
    key = scores + rng.normal(0.0, NEW_CITY_KEY_NOISE, size=len(scores)) - NEW_CITY_CHENGYU_BIAS * chengyu
    key = np.where(tiers >= eligible_tier, key, np.inf)
    new = np.zeros(len(scores), dtype=bool)
    new[np.argsort(key, kind="stable")[:n_new]] = True
    n_returning = len(scores) - n_new
    for _ in range(n_new):
        gap = returning_mean - scores[~new].mean()
        if abs(gap) <= 0.01:
            return new
        incoming = np.flatnonzero(new)  # joins the returning cohort
        outgoing = np.flatnonzero(~new & (tiers >= eligible_tier))
        after = gap - (scores[incoming][:, None] - scores[outgoing][None, :]) / n_returning
        best = np.unravel_index(np.argmin(np.abs(after)), after.shape)
        new[incoming[best[0]]], new[outgoing[best[1]]] = False, True
    raise RuntimeError("could not choose a returning cohort with the published mean")


def shift_into_boxes(keys: np.ndarray, low: np.ndarray, high: np.ndarray, target_mean: float) -> np.ndarray:
    """clip(keys + c, low, high) with the common shift c that gives the target mean."""

    def mean_after(shift: np.ndarray) -> np.ndarray:
        return np.clip(keys + shift[0], low, high).mean(keepdims=True)

    shift = _bisect(mean_after, np.array([-30.0]), np.array([30.0]), np.array([target_mean]), 60)
    return np.clip(keys + shift[0], low, high)


def round_keep_mean(
    values: np.ndarray, low: np.ndarray, high: np.ndarray, target_mean: float, step: float
) -> np.ndarray:
    """Round to the display step, then move the fewest units by one step so the mean stays on target."""
    shown = np.round(np.round(values / step) * step, 6)
    needed = int(np.rint((target_mean - shown.mean()) * len(shown) / step))
    room = (high - shown) if needed > 0 else (shown - low)
    movers = np.argsort(-room, kind="stable")[: abs(needed)]
    shown[movers] = np.round(shown[movers] + np.sign(needed) * step, 6)
    return shown


def previous_city_scores(
    scores: np.ndarray,
    counts: np.ndarray,
    bands: TierBands,
    target_mean: float,
    growth: float,
    rng_growth: np.random.Generator,
    rng_margin: np.random.Generator,
) -> np.ndarray:
    """2019 scores of the returning cities with the given tier counts and mean.

    Proposed 2019 score = 2020 score - a rise drawn around the cohort's published rise. Cities are
    ranked on it and the ranking cut into the tier counts; each city is then held inside its tier's
    band (a random margin keeps the ones pushed to a boundary apart) and near its 2020 score, and a
    common shift sets the mean.
    """
    rise = np.clip(rng_growth.normal(growth, GROWTH_SD, size=len(scores)), *GROWTH_RANGE)
    keys = scores - rise
    tier = np.repeat(np.arange(len(counts)), counts)[
        np.argsort(np.argsort(-keys, kind="stable"), kind="stable")
    ]
    margin = rng_margin.uniform(0.06, 0.5, size=len(scores))
    band_low, band_high = (
        bands.low[tier] - bands.step / 2 + margin,
        bands.high[tier] + bands.step / 2 - margin,
    )
    below, above = PREV_TRAJECTORY_SLACK
    low = np.minimum(np.maximum(band_low, scores - below), band_high)
    high = np.maximum(np.minimum(band_high, scores + above), band_low)
    previous = round_keep_mean(
        shift_into_boxes(keys, low, high, target_mean), low, high, target_mean, bands.step
    )
    if not (bands.of(previous) == tier).all():
        raise RuntimeError("2019 tier counts not met")
    return previous


def step_back(scores: np.ndarray, mean_rise: float, rng: np.random.Generator, step: float) -> np.ndarray:
    """Scores one edition earlier: each city's score minus a noisy rise, on the display grid."""
    rise = np.clip(rng.normal(mean_rise, GROWTH_SD, size=len(scores)), *GROWTH_RANGE)
    return np.round(np.clip(np.round((scores - rise) / step) * step, *SCORE_FLOOR_CEILING), 6)


def pick_members(candidates: np.ndarray, key: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` candidates with the highest key."""
    chosen = np.zeros(len(key), dtype=bool)
    order = np.argsort(-np.where(candidates, key, -np.inf), kind="stable")
    chosen[order[:count]] = True
    return chosen & candidates


@dataclass(frozen=True)
class CityHistory:
    members: dict[int, np.ndarray]  # edition -> mask over the 148 registry cities
    composites: dict[int, np.ndarray]  # edition -> (148,) score (NaN where not assessed)


def city_history(units: pl.DataFrame, data_dir: Path, seed: int) -> CityHistory:
    """Memberships and composites of the city editions before 2020 (see module docstring)."""
    statements = load_statements(data_dir)
    bands = load_tier_bands(data_dir)
    scores = units["score"].to_numpy()
    n = len(scores)
    tiers20 = bands.of(scores)
    members_cy = pl.read_csv(data_dir / "registry" / "region_members.csv", infer_schema=False)
    chengyu_codes = members_cy.filter(pl.col("region_code") == CHENGYU_REGION)["unit_code"]
    chengyu = units["unit_code"].is_in(chengyu_codes.to_list()).to_numpy().astype(float)

    new = choose_new_cities(
        scores,
        tiers20,
        bands.codes.index("tier2"),
        chengyu,
        int(statements["new_cities"]),
        statements["returning_mean"],
        _rng(seed, "new_cities"),
    )
    returning = ~new
    counts = {
        **PREV_TIER_COUNTS_CHOSEN,
        **{t: int(statements[s]) for t, s in PREV_TIER_COUNTS_FROM_STATEMENTS.items()},
    }
    rest = int(returning.sum()) - sum(counts.values())
    counts["tier3"] = rest
    growth = statements["returning_mean"] - statements["returning_mean_prev"]
    rng_growth = _rng(seed, "city_growth")
    s2019 = np.full(n, np.nan)
    s2019[returning] = previous_city_scores(
        scores[returning],
        np.array([counts[c] for c in bands.codes]),
        bands,
        statements["returning_mean_prev"],
        growth,
        rng_growth,
        _rng(seed, "band_margin"),
    )
    # Every city gets a latent score for every year so that a city skipped in one edition still has a
    # coherent path; only the member cities' scores are written.
    latent = {
        2020: scores,
        2019: np.where(returning, s2019, step_back(scores, growth, rng_growth, bands.step)),
    }
    for year in (2018, 2017):
        latent[year] = step_back(latent[year + 1], GROWTH_BEFORE[year + 1], rng_growth, bands.step)

    rng_members = _rng(seed, "membership")
    leaders = tiers20 == 0  # the 2020 一线 cities were assessed in every edition
    noise = {
        y: np.where(leaders, np.inf, rng_members.normal(0.0, EARLY_SELECTION_NOISE[y], size=n))
        for y in (2018, 2017)
    }
    # 2018: mostly the stronger 2019 cities, plus a few of the 2020 newcomers that were assessed in
    # 2018, skipped in 2019 and came back (dropped-and-returning units).
    gap2018 = pick_members(new, latent[2018] + noise[2018], GAP_CITIES)
    m2018 = gap2018 | pick_members(returning, latent[2018] + noise[2018], EDITION_SIZES[2018] - GAP_CITIES)
    gap2017 = pick_members(returning & ~m2018, latent[2017] + noise[2017], GAP_CITIES)
    m2017 = gap2017 | pick_members(
        m2018 & ~gap2018, latent[2017] + noise[2017], EDITION_SIZES[2017] - GAP_CITIES
    )
    members = {2020: np.ones(n, dtype=bool), 2019: returning, 2018: m2018, 2017: m2017}
    composites = {year: np.where(members[year], latent[year], np.nan) for year in CITY_EDITIONS}
    return CityHistory(members, composites)


def county_history(scores: np.ndarray, seed: int, step: float) -> dict[int, np.ndarray]:
    mean_rise, sd, bounds = COUNTY_GROWTH
    rise = np.clip(_rng(seed, "county_growth").normal(mean_rise, sd, size=len(scores)), *bounds)
    return {2020: scores, 2019: np.round(np.round((scores - rise) / step) * step, 6)}


# ======================================================================================================
# Writing
# ======================================================================================================


def scores_csv(units: pl.DataFrame, layout: Layout, hundredths: np.ndarray) -> str:
    """The raw file's text: header, then one row per unit (units sorted by unit_code), 2 decimals."""
    cells = np.char.mod("%.2f", hundredths / 100.0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["unit_code", "unit_name", *layout.codes])
    writer.writerows(
        [code, name, *row]
        for code, name, row in zip(units["unit_code"], units["name_zh"], cells.tolist(), strict=True)
    )
    return buffer.getvalue()


def measurements_from_scores(scores: np.ndarray, methods: pl.DataFrame, codes: Sequence[str]) -> np.ndarray:
    """(n, K) measurements whose goalpost normalisation is ``scores`` (n, K, 0-100): low + (high - low)
    * s / 100, reversed for 'lower is better', on the log scale for a log indicator."""
    method = {row["indicator_code"]: row for row in methods.iter_rows(named=True)}
    out = np.empty_like(scores, dtype=float)
    for k, code in enumerate(codes):
        m = method[code]
        if m["normalisation"] != "goalposts":
            raise ValueError(f"{code}: the sample's measurements need goalposts normalisation")
        low, high = m["goal_low"], m["goal_high"]
        if m["log"]:
            low, high = np.log(low), np.log(high)
        frac = scores[:, k] / 100.0
        value = high - (high - low) * frac if m["direction"] == "lower" else low + (high - low) * frac
        out[:, k] = np.exp(value) if m["log"] else value
    return out


def goalpost_scores(values: np.ndarray, m: dict) -> np.ndarray:
    """Goalpost normalisation of one indicator's measurements (the pipeline's rule, in numpy)."""
    low, high = m["goal_low"], m["goal_high"]
    if m["log"]:
        values, low, high = np.log(values), np.log(low), np.log(high)
    frac = (high - values) / (high - low) if m["direction"] == "lower" else (values - low) / (high - low)
    return 100.0 * np.clip(frac, 0.0, 1.0)


def blank_cells(
    measurements: np.ndarray, scores: np.ndarray, methods: pl.DataFrame, layout: Layout, provinces: np.ndarray
) -> list[tuple[int, int]]:
    """One blank (missing) cell per indicator whose method imputes: the unit whose imputed score (peer
    mean or median of the others' measurements, as the pipeline computes it) is closest to its
    calibrated score, weighted by the indicator's effective weight, so that the composites move by
    far less than their published precision."""
    cells = []
    for row in methods.filter(pl.col("imputation").is_in(["group_mean", "group_median"])).iter_rows(
        named=True
    ):
        k = layout.codes.index(row["indicator_code"])
        best: tuple[float, int] | None = None
        for r in range(measurements.shape[0]):
            peers = (
                np.ones(measurements.shape[0], dtype=bool)
                if row["peer_group"] == "all"
                else provinces == provinces[r]
            )
            peers[r] = False
            if not peers.any():
                continue
            values = measurements[peers, k]
            imputed = np.median(values) if row["imputation"] == "group_median" else values.mean()
            impact = layout.weights[k] * abs(goalpost_scores(np.array([imputed]), row)[0] - scores[r, k])
            if best is None or impact < best[0]:
                best = (impact, r)
        if best is not None:
            cells.append((best[1], k))
    return cells


def measurements_csv(
    units: pl.DataFrame, layout: Layout, hundredths: np.ndarray, methods: pl.DataFrame, provinces: np.ndarray
) -> str:
    """The measurement file's text: header, one row per unit, MEASUREMENT_DECIMALS decimals, outliers
    of OUTLIERS, and a blank cell per imputing indicator (see :func:`blank_cells`)."""
    scores = hundredths / 100.0
    values = np.round(measurements_from_scores(scores, methods, layout.codes), MEASUREMENT_DECIMALS)
    method = {row["indicator_code"]: row for row in methods.iter_rows(named=True)}
    codes = units["unit_code"].to_list()
    for (code, unit_code), factor in OUTLIERS.items():
        r, k = codes.index(unit_code), layout.codes.index(code)
        if scores[r, k] != 100.0:
            raise ValueError(f"outlier {code} of {unit_code}: its calibrated score is not 100")
        values[r, k] = round(method[code]["goal_high"] * factor, MEASUREMENT_DECIMALS)
    cells = np.char.mod(f"%.{MEASUREMENT_DECIMALS}f", values).astype(object)
    for r, k in blank_cells(values, scores, methods, layout, provinces):
        cells[r, k] = ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["unit_code", "unit_name", *layout.codes])
    writer.writerows(
        [code, name, *row] for code, name, row in zip(codes, units["name_zh"], cells.tolist(), strict=True)
    )
    return buffer.getvalue()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def manifest_text(entries: list[dict], seed: int) -> str:
    header = (
        "# SYNTHETIC sample data written by dei_pipeline.synthetic.sample.write_sample_data (`dei sample-data`).\n"
        "# The white paper publishes no indicator scores; these are invented and calibrated to its published\n"
        "# figures. See data/raw/README.md. Do not edit by hand: regenerate.\n"
    )
    body = {
        "synthetic": True,
        "generator": "dei_pipeline.synthetic.sample.write_sample_data",
        "seed": seed,
        "calibrated_to": f"data/published/{PUBLISHED_EDITION}/ (composites, level-1 and industry averages, Top-10 averages, examples, statements)",
        "editions": entries,
    }
    return header + yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=120)


# ======================================================================================================
# Entry point
# ======================================================================================================


def _edition_eta(profile: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return profile[rows] + rng.normal(0.0, YEAR_NOISE_SD, size=(len(rows), profile.shape[1]))


def generate(
    data_dir: Path, seed: int = 2020
) -> dict[tuple[str, int], tuple[pl.DataFrame, Layout, np.ndarray]]:
    """All synthetic editions in memory: (unit_type, edition) -> (units, layout, hundredths)."""
    out: dict[tuple[str, int], tuple[pl.DataFrame, Layout, np.ndarray]] = {}
    step = load_tier_bands(data_dir).step

    cities = load_units(data_dir, "city")
    layout = leaf_layout(resolve_framework(data_dir, "city", PUBLISHED_EDITION))
    level, loading = leaf_priors(layout.codes)
    targets = load_city_column_targets(data_dir, cities, layout)
    eta = factor_noise(_rng(seed, "city_noise"), cities.height, layout)
    base = calibrate(layout, cities["score"].to_numpy(), level, loading, eta, targets)
    out[("city", PUBLISHED_EDITION)] = (cities, layout, base.hundredths)
    history = city_history(cities, data_dir, seed)
    for edition in CITY_EDITIONS:
        if edition == PUBLISHED_EDITION:
            continue
        rows = np.flatnonzero(history.members[edition])
        if leaf_layout(resolve_framework(data_dir, "city", edition)).codes != layout.codes:
            raise ValueError(
                f"city {edition}: the sample carries 2020 indicator profiles, so it needs the 2020 indicators"
            )
        eta_e = _edition_eta(base.profile, rows, _rng(seed, "year_noise", 1, edition))
        result = calibrate(layout, history.composites[edition][rows], base.level, base.loading, eta_e)
        out[("city", edition)] = (cities[rows], layout, result.hundredths)

    counties = load_units(data_dir, "county")
    county_layout = leaf_layout(resolve_framework(data_dir, "county", PUBLISHED_EDITION))
    level, loading = leaf_priors(county_layout.codes)
    eta = factor_noise(_rng(seed, "county_noise"), counties.height, county_layout)
    composites = county_history(counties["score"].to_numpy(), seed, step)
    base = calibrate(county_layout, composites[PUBLISHED_EDITION], level, loading, eta)
    out[("county", PUBLISHED_EDITION)] = (counties, county_layout, base.hundredths)
    for edition in COUNTY_EDITIONS:
        if edition == PUBLISHED_EDITION:
            continue
        rows = np.arange(counties.height)
        eta_e = _edition_eta(base.profile, rows, _rng(seed, "year_noise", 2, edition))
        result = calibrate(county_layout, composites[edition], base.level, base.loading, eta_e)
        out[("county", edition)] = (counties, county_layout, result.hundredths)
    return out


def write_sample_data(data_dir: Path, seed: int = 2020) -> list[Path]:
    """Generate the SYNTHETIC sample and write ``data_dir/raw/<edition>/{cities,counties}.csv`` plus
    ``data_dir/raw/manifest.yaml``. Returns the written paths (CSV files by edition, manifest last)."""
    data_dir = Path(data_dir)
    raw_dir = data_dir / "raw"
    written: list[Path] = []
    entries: list[dict] = []
    editions = generate(data_dir, seed)
    for edition in sorted({edition for _, edition in editions}):
        files = []
        for unit_type in ("city", "county"):
            if (unit_type, edition) not in editions:
                continue
            units, layout, hundredths = editions[(unit_type, edition)]
            framework = resolve_framework(data_dir, unit_type, edition)
            measured = (unit_type, edition) in MEASUREMENT_EDITIONS
            if measured:
                if framework.methods is None:
                    raise ValueError(f"{framework.source_file}: measurements need the method columns")
                provinces = units.join(
                    pl.read_csv(data_dir / "registry" / UNIT_FILES[unit_type], infer_schema=False).select(
                        "unit_code", "province_code"
                    ),
                    on="unit_code",
                    how="left",
                )["province_code"].to_numpy()
                text = measurements_csv(units, layout, hundredths, framework.methods, provinces)
            else:
                text = scores_csv(units, layout, hundredths)
            names = (MEASUREMENT_FILES, UNIT_FILES) if measured else (UNIT_FILES, MEASUREMENT_FILES)
            (raw_dir / str(edition) / names[1][unit_type]).unlink(missing_ok=True)  # one file per unit type
            path = _write(raw_dir / str(edition) / names[0][unit_type], text)
            written.append(path)
            files.append(
                {
                    "path": path.relative_to(raw_dir).as_posix(),
                    "unit_type": unit_type,
                    "values": "measurements (natural units; goalposts in the framework file)"
                    if measured
                    else "scores (0-100)",
                    "units": units.height,
                    "indicators": len(layout.codes),
                    "framework": resolve_framework(data_dir, unit_type, edition).source_file.name,
                    "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                }
            )
        entries.append({"edition": edition, "files": files})
    written.append(_write(raw_dir / "manifest.yaml", manifest_text(entries, seed)))
    return written
