"""Where things live: the data directory, the warehouse files and the method settings.

``data/method/settings.yaml`` is read into one validated model (:class:`MethodSettings`, with the
``uncertainty:`` block as :class:`UncertaintySettings`); a bad value is refused naming the file, the
key, the value and the rule. Reference files are parsed once and again only when their content
changes (:func:`cached_on_content`).

Environment variables override the defaults so that one installation can serve several data sets:
``DEI_DATA_DIR`` (default: the repository's ``data/``), ``DEI_WAREHOUSE`` (default
``<data>/warehouse/dei.duckdb``), ``DEI_SERVING`` (default ``<data>/warehouse/dei_serving.duckdb``) and
``DEI_SERVING_STORAGE_VERSION`` (the DuckDB storage format of the serving snapshot, default ``v1.0.0``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
)

from dei_pipeline.scoring.stage import ScoringRule
from dei_pipeline.scoring.treatment import TreatmentRule

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    return Path(os.environ.get("DEI_DATA_DIR", REPO_ROOT / "data")).resolve()


def data_provenance_note(data_dir: Path) -> str | None:
    """A warning for every page when ``data/raw/manifest.yaml`` declares the raw data synthetic."""
    manifest = data_dir / "raw" / "manifest.yaml"
    if not manifest.exists():
        return None
    content = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    if not content.get("synthetic"):
        return None
    return (
        "SYNTHETIC SAMPLE 合成样本数据: the indicator scores and measurements under data/raw are invented and calibrated to the "
        "white paper's published 2020 figures (composites, averages). Composite scores, ranks and tiers of 2020 "
        "reproduce the paper; everything below the composite, and every other edition, is made up."
    )


# A new Dagster instance's settings: the default local SQLite storage; no telemetry (nothing leaves
# the machine, and its per-step log lines cost time in every run); no "what's new" pop-ups in the UI.
DAGSTER_INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


def prepare_dagster_home(home: Path | None = None) -> Path:
    """The Dagster instance directory (default: $DAGSTER_HOME, else <repo>/.dagster_home, which the
    CLI and ``make ui`` share), created with DAGSTER_INSTANCE_YAML unless it has a dagster.yaml."""
    home = home or Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(DAGSTER_INSTANCE_YAML, encoding="utf-8")
    return home


def default_warehouse_path(data_dir: Path | None = None) -> Path:
    if "DEI_WAREHOUSE" in os.environ:
        return Path(os.environ["DEI_WAREHOUSE"]).resolve()
    return (data_dir or default_data_dir()) / "warehouse" / "dei.duckdb"


def default_serving_path(warehouse: Path) -> Path:
    if "DEI_SERVING" in os.environ:
        return Path(os.environ["DEI_SERVING"]).resolve()
    return warehouse.with_name("dei_serving.duckdb")


# The DuckDB storage format of the serving snapshot. DuckDB 2 writes its own format by default, which
# no DuckDB 1.x library opens, and many BI drivers (JDBC, Metabase, DBeaver) embed one. v1.0.0 is the
# oldest format that keeps what the snapshot uses (table and column comments, lists): DuckDB 1.0 and
# every later version open it. DEI_SERVING_STORAGE_VERSION overrides it (e.g. 'v1.2.0', or 'latest').
DEFAULT_SERVING_STORAGE_VERSION = "v1.0.0"


def serving_storage_version() -> str:
    return os.environ.get("DEI_SERVING_STORAGE_VERSION") or DEFAULT_SERVING_STORAGE_VERSION


AggregationMethod = Literal["arithmetic", "geometric"]
MethodChoice = Literal["per_level", "whole_index"]
WeightScheme = Literal["nominal", "equal", "pca"]
# The scoring choices the analysis can vary for unit types given as measurements: 'declared' (each
# indicator's method in its framework file) or an override for every indicator (scoring/variants.py).
NormalisationChoice = Literal["declared", "minmax", "zscore", "rank"]
TreatmentChoice = Literal["declared", "none", "winsorise"]
ImputationChoice = Literal["declared", "none", "group_mean", "group_median"]
# How a node with a missing child is scored (aggregation.py), and how tied displayed scores rank (polars'
# rank methods).
MissingRule = Literal["propagate", "reweight"]
TieMethod = Literal["average", "min", "max", "dense", "ordinal", "random"]
# The unit types a setting can differ by.
UnitTypeName = Literal["city", "county"]


class SettingsError(ValueError):
    """``settings.yaml`` breaks a rule; the message names the file, each bad key, its value and the rule."""


def _per_unit_type(value: Any) -> Any:
    """A single number stands for every unit type; a mapping must name each of them."""
    if isinstance(value, int) and not isinstance(value, bool):
        return dict.fromkeys(get_args(UnitTypeName), value)
    if isinstance(value, dict) and (missing := [t for t in get_args(UnitTypeName) if t not in value]):
        raise ValueError(f"one number, or one for each unit type: {', '.join(missing)} missing")
    return value


def _distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or len(set(values)) != len(values):
        raise ValueError("must be distinct values, at least one")
    return values


class UncertaintySettings(BaseModel):
    """The ``uncertainty:`` block of ``data/method/settings.yaml`` (docs/analysis.md)."""

    model_config = ConfigDict(frozen=True)

    # Given as one number for every unit type or as each unit type's own (city, county); held per unit type.
    draws: Annotated[dict[UnitTypeName, PositiveInt], BeforeValidator(_per_unit_type)] = Field(
        description="a positive number of draws, or one for each unit type (city, county)"
    )
    seed: int
    weight_range: float = Field(ge=0, lt=1, description="in [0, 1): a weight must stay positive")
    methods: Annotated[tuple[AggregationMethod, ...], AfterValidator(_distinct)]
    # 'per_level': a method drawn for every aggregation step; 'whole_index': one per draw.
    method_choice: MethodChoice
    geometric_floor: float = Field(gt=0, description="> 0: the log of the floor is taken")
    sensitivity_base_draws: int = Field(ge=2)
    # Drawn equally likely, each perturbed by the multipliers; the framework's weights only by default.
    weight_schemes: Annotated[tuple[WeightScheme, ...], AfterValidator(_distinct)] = ("nominal",)
    # Scoring alternatives drawn equally likely (unit types given as measurements only); the declared
    # methods only by default.
    normalisations: Annotated[tuple[NormalisationChoice, ...], AfterValidator(_distinct)] = ("declared",)
    treatments: Annotated[tuple[TreatmentChoice, ...], AfterValidator(_distinct)] = ("declared",)
    imputations: Annotated[tuple[ImputationChoice, ...], AfterValidator(_distinct)] = ("declared",)
    sensitivity_bootstrap: int = Field(
        ge=2, description="bootstrap resamples of the base draws for the indices' bounds"
    )
    sensitivity_level: float = Field(gt=0, lt=1, description="confidence level of those bounds")
    sensitivity_resolution: float = Field(gt=0, description="widest interval of a resolved index")

    def draws_for(self, unit_type: str | None) -> int:
        """The rank-uncertainty draws of a unit type (None: the number every unit type shares)."""
        if unit_type is not None:
            return self.draws[unit_type]  # type: ignore[index]
        if len(set(self.draws.values())) != 1:
            raise ValueError(f"uncertainty.draws differs by unit type ({self.draws}): name the unit type")
        return next(iter(self.draws.values()))

    def with_draws(self, draws: int) -> UncertaintySettings:
        """These settings with ``draws`` draws for every unit type."""
        return self.model_copy(update={"draws": _per_unit_type(draws)})


class ScoringSettings(BaseModel):
    """The ``scoring:`` block of ``data/method/settings.yaml``: how measurements become scores
    (dei_pipeline/scoring/; the method of each indicator is in its framework file)."""

    model_config = ConfigDict(frozen=True)

    min_unit_coverage: float = Field(
        0.0, ge=0, le=1, description="a share between 0 and 1 of the unit's indicators measured"
    )
    skew_threshold: float = Field(2.0, gt=0, description="> 0: absolute skewness above it is an outlier sign")
    kurtosis_threshold: float = Field(3.5, description="kurtosis above it is an outlier sign")
    winsorise_max_points: int = Field(
        5, ge=0, description="points winsorised at most per indicator and edition"
    )
    log_fallback: bool = Field(True, description="true or false")
    zscore_clip: float = Field(
        3.0, gt=0, description="> 0: standard deviations mapped to the ends of the score range"
    )

    @property
    def treatment_rule(self) -> TreatmentRule:
        return TreatmentRule(
            self.skew_threshold, self.kurtosis_threshold, self.winsorise_max_points, self.log_fallback
        )

    def rule(self, score_min: float, score_max: float) -> ScoringRule:
        """The stage's settings for scores on [score_min, score_max]."""
        return ScoringRule(
            min_unit_coverage=self.min_unit_coverage,
            treatment=self.treatment_rule,
            zscore_clip=self.zscore_clip,
            score_min=score_min,
            score_max=score_max,
        )


def _at(*path: str) -> Any:
    return Field(validation_alias=AliasPath(*path))


class MethodSettings(BaseModel):
    """The method choices of ``data/method/settings.yaml``, read from its nested blocks (``scores.min``
    is ``score_min``) or built by field name (tests, benchmarks)."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)

    display_decimals: int = _at("scores", "display_decimals")
    score_min: float = _at("scores", "min")
    score_max: float = _at("scores", "max")
    tie_method: TieMethod = _at("ranking", "tie_method")
    missing_rule: MissingRule = _at("aggregation", "missing")
    gdp_year_offset: int = _at("gdp", "year_offset")
    gdp_vintage: str = _at("gdp", "vintage")
    score_tolerance: float = _at("reconciliation", "score_tolerance")
    # Share of an edition's units of one type that a run may remove without confirmation (removal.py).
    removal_max_share: float = Field(
        0.1,
        ge=0,
        le=1,
        validation_alias=AliasPath("removal", "max_share"),
        description="a share between 0 and 1",
    )
    # Rule 'reweight': the smallest share of a node's children with a score for the node to have one.
    min_coverage: float = Field(
        0.0,
        ge=0,
        le=1,
        validation_alias=AliasPath("aggregation", "min_coverage"),
        description="a share between 0 and 1",
    )
    # Monte Carlo settings of the analysis marts; a data set may go without them (then no such mart).
    uncertainty: UncertaintySettings | None = None
    # Measurements to scores (dei_pipeline/scoring/): coverage, outlier rule and z-score range.
    scoring: ScoringSettings = ScoringSettings()

    @property
    def scoring_rule(self) -> ScoringRule:
        """The scoring stage's settings, on this method's score range."""
        return self.scoring.rule(self.score_min, self.score_max)


def _description(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The description of the field that ``loc`` (a key path in the file) falls under, if it has one."""
    if model is MethodSettings and len(loc) > 1 and loc[0] in ("uncertainty", "scoring"):
        model, loc = (UncertaintySettings if loc[0] == "uncertainty" else ScoringSettings), loc[1:]
    for name, field in model.model_fields.items():
        path = (
            tuple(field.validation_alias.path) if isinstance(field.validation_alias, AliasPath) else (name,)
        )
        if tuple(loc[: len(path)]) == path:
            return field.description
    return None


def validated(model: type[ModelT], content: Mapping[str, Any], where: str) -> ModelT:
    """``content`` as ``model``, or :class:`SettingsError` listing every bad key of ``where``."""
    try:
        return model.model_validate(content)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"])
            value = "missing" if problem["type"] == "missing" else f"is {problem['input']!r}"
            described = _description(model, problem["loc"])
            problems.append(f"  {key} {value}: {problem['msg']}" + (f" ({described})" if described else ""))
        raise SettingsError(f"{where}: invalid settings\n" + "\n".join(problems)) from None


def settings_path(data_dir: Path) -> Path:
    return data_dir / "method" / "settings.yaml"


def load_settings(data_dir: Path) -> MethodSettings:
    """The validated ``<data_dir>/method/settings.yaml``, parsed again only when its content changes."""
    path = settings_path(data_dir)
    return cached_on_content("settings", [path], lambda: _parse_settings(path))


def _parse_settings(path: Path) -> MethodSettings:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, Mapping):
        raise SettingsError(
            f"{path}: not a YAML mapping of settings blocks (scores, ranking, aggregation, ...)"
        )
    return validated(MethodSettings, raw, str(path))


# Parsed and validated reference data, keyed by what was read and its content hash: a run reads each
# file once, and a long-running process (the Dagster code server) still sees a file that changed, even
# one rewritten within the file system's timestamp granularity. A few data directories at a time.
_CACHE: OrderedDict[tuple[str, tuple[str, ...]], tuple[str, Any]] = OrderedDict()
_CACHE_ENTRIES = 64
_CACHE_LOCK = threading.Lock()


def cached_on_content(kind: str, paths: Sequence[Path], load: Callable[[], T]) -> T:
    """``load()``, or what it returned before for the same ``paths`` with the same bytes. A missing file
    counts as content of its own; errors are not kept (the next call raises them again)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"\0missing\0")
    key, stamp = (kind, tuple(str(path) for path in paths)), digest.hexdigest()
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            _CACHE.move_to_end(key)
            return hit[1]
    value = load()
    with _CACHE_LOCK:
        _CACHE[key] = (stamp, value)
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return value
