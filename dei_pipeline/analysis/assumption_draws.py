"""The random inputs of the Monte Carlo: per draw, a multiplier of every node's weight, the aggregation
method of every step (or of the whole index) and, with several, the weight scheme it starts from; the
``uncertainty:`` settings they follow and the per-edition random streams."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np

from dei_pipeline.analysis.index_tree import IndexTree
from dei_pipeline.config import (
    AggregationMethod,
    MethodChoice,
    SettingsError,
    UncertaintySettings,
    load_settings,
    settings_path,
    validated,
)

ARITHMETIC, GEOMETRIC = "arithmetic", "geometric"
AGGREGATION_METHODS: tuple[str, ...] = get_args(AggregationMethod)
PER_LEVEL, WHOLE_INDEX = "per_level", "whole_index"
METHOD_CHOICES: tuple[str, ...] = get_args(MethodChoice)


def load_uncertainty_settings(data_dir: Path) -> UncertaintySettings:
    """The ``uncertainty:`` block of ``<data_dir>/method/settings.yaml``, validated with the rest of the file."""
    settings = load_settings(data_dir).uncertainty
    if settings is None:
        raise SettingsError(
            f"{settings_path(data_dir)}: no 'uncertainty:' block (draws, seed, weight_range, methods, geometric_floor, sensitivity_*)"
        )
    return settings


def parse_uncertainty_settings(block: Mapping[str, Any], where: str = "uncertainty") -> UncertaintySettings:
    """An ``uncertainty:`` block given as a mapping (tests, benchmarks), validated as the file's is."""
    return validated(UncertaintySettings, block, where)


def edition_rng(seed: int, survey_year: int, unit_type: str, purpose: str) -> np.random.Generator:
    """The random stream of one edition, unit type and analysis: independent of which other editions
    are computed in the same run, so a partition's figures do not depend on the backfill it is in."""
    return np.random.default_rng(
        [seed, survey_year, zlib.crc32(unit_type.encode()), zlib.crc32(purpose.encode())]
    )


@dataclass(frozen=True)
class AssumptionDraws:
    """The random inputs of a set of draws."""

    weight_multipliers: np.ndarray  # (draws, nodes): factor applied to each node's nominal weight
    geometric: np.ndarray  # (draws, steps) bool: the step aggregates by geometric mean
    scheme: np.ndarray | None = None  # (draws,) index into the problem's weight schemes; None: the nominal
    # (draws, 3) index of the normalisation, treatment and imputation among the settings' alternatives
    # (scoring/variants.py); None: the declared scores only
    scoring: np.ndarray | None = None

    @property
    def n_draws(self) -> int:
        return int(self.weight_multipliers.shape[0])

    def take(self, index: np.ndarray) -> AssumptionDraws:
        return AssumptionDraws(
            self.weight_multipliers[index],
            self.geometric[index],
            None if self.scheme is None else self.scheme[index],
            None if self.scoring is None else self.scoring[index],
        )


def draw_assumptions(
    tree: IndexTree,
    n_draws: int,
    weight_range: float,
    methods: Sequence[str],
    rng: np.random.Generator,
    method_choice: str = PER_LEVEL,
    n_schemes: int = 1,
    scoring_shape: tuple[int, int, int] = (1, 1, 1),
) -> AssumptionDraws:
    """Independent draws: a uniform factor in [1 - weight_range, 1 + weight_range] per node, a method
    uniform among ``methods`` for every aggregation step ('per_level') or for the whole index, and with
    several weight schemes, one of them uniformly (drawn last: one scheme leaves the stream as it was);
    with several scoring alternatives (``scoring_shape``: how many normalisations, treatments and
    imputations), one of each uniformly, drawn after everything else for the same reason."""
    multipliers = rng.uniform(1.0 - weight_range, 1.0 + weight_range, size=(n_draws, tree.n_nodes))
    choice = rng.integers(0, len(methods), size=(n_draws, tree.n_steps if method_choice == PER_LEVEL else 1))
    geometric = np.broadcast_to(
        np.array([method == GEOMETRIC for method in methods])[choice], (n_draws, tree.n_steps)
    ).copy()
    scheme = rng.integers(0, n_schemes, size=n_draws) if n_schemes > 1 else None
    scoring = (
        rng.integers(0, np.array(scoring_shape), size=(n_draws, len(scoring_shape)))
        if max(scoring_shape) > 1
        else None
    )
    return AssumptionDraws(multipliers, geometric, scheme, scoring)


def settings_draws(
    tree: IndexTree,
    settings: UncertaintySettings,
    n_draws: int,
    rng: np.random.Generator,
    scoring_shape: tuple[int, int, int] = (1, 1, 1),
) -> AssumptionDraws:
    """The draws the settings ask for; ``scoring_shape``: the problem's scoring alternatives (how many
    normalisations, treatments and imputations; (1, 1, 1) for a unit type given as scores)."""
    return draw_assumptions(
        tree,
        n_draws,
        settings.weight_range,
        settings.methods,
        rng,
        settings.method_choice,
        len(settings.weight_schemes),
        scoring_shape,
    )


def scoring_shape(settings: UncertaintySettings) -> tuple[int, int, int]:
    """How many normalisations, treatments and imputations the settings vary (1: the declared only)."""
    return (len(settings.normalisations), len(settings.treatments), len(settings.imputations))


def nominal_assumptions(tree: IndexTree) -> AssumptionDraws:
    """The published index as a single draw: nominal weights, arithmetic means."""
    return AssumptionDraws(np.ones((1, tree.n_nodes)), np.zeros((1, tree.n_steps), dtype=bool))
