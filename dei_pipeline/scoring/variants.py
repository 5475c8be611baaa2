"""The scoring stage under other methods than the declared ones: the alternatives the rank-uncertainty
Monte Carlo and the sensitivity analysis draw from (``uncertainty.normalisations``, ``treatments``,
``imputations`` in settings.yaml; docs/analysis.md).

An alternative overrides one method column of every indicator of a unit type at once, as COINr's
sensitivity analysis does: ``declared`` keeps each indicator's own method, any other value replaces it.
Normalisations that need per-indicator parameters (goalposts, a target) are not offered as overrides.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from dei_pipeline.scoring.stage import ScoringRule, score_measurements

# Each indicator's own method (its framework file); an override is any other value the settings allow
# (NormalisationChoice, TreatmentChoice and ImputationChoice in config.py).
DECLARED = "declared"
# A group imputation imposed on an indicator without a declared peer group uses all units as its peers.
DEFAULT_PEER_GROUP = "all"


@dataclass(frozen=True)
class ScoringChoice:
    """One combination of the varied choices: each 'declared' or an override of that column."""

    normalisation: str = DECLARED
    treatment: str = DECLARED
    imputation: str = DECLARED

    @property
    def declared(self) -> bool:
        return self.normalisation == self.treatment == self.imputation == DECLARED


def override_methods(methods: pl.DataFrame, choice: ScoringChoice) -> pl.DataFrame:
    """The method table (rows of :mod:`.method`, any extra columns kept) with the columns of ``choice``
    that are not 'declared' replaced for every indicator. Imposing a group imputation on an indicator
    without a peer group gives it the peer group 'all'."""
    # The fields of a choice are named as the method columns they override.
    overrides = {column: value for column, value in dataclasses.asdict(choice).items() if value != DECLARED}
    frame = methods.with_columns(
        pl.lit(value, pl.String).alias(column) for column, value in overrides.items()
    )
    if choice.imputation in ("group_mean", "group_median"):
        frame = frame.with_columns(pl.col("peer_group").fill_null(DEFAULT_PEER_GROUP))
    return frame


def scoring_choices(
    normalisations: Sequence[str], treatments: Sequence[str], imputations: Sequence[str]
) -> list[ScoringChoice]:
    """Every combination, normalisation varying slowest (the order of :func:`scoring_strides`)."""
    return [ScoringChoice(n, t, i) for n, t, i in itertools.product(normalisations, treatments, imputations)]


def scoring_strides(shape: tuple[int, int, int]) -> np.ndarray:
    """Per varied choice, its step in the order of :func:`scoring_choices` of ``shape`` (normalisations,
    treatments, imputations): (normalisation, treatment, imputation) indices @ strides = position."""
    _, treatments, imputations = shape
    return np.array([treatments * imputations, imputations, 1], dtype=np.int64)


def variant_scores(
    cells: pl.DataFrame,
    methods: pl.DataFrame,
    choices: Sequence[ScoringChoice],
    peers: pl.DataFrame | None = None,
    history: pl.DataFrame | None = None,
    rule: ScoringRule | None = None,
) -> list[pl.DataFrame | None]:
    """Per choice, the leaf scores (unit_code, indicator_code, score; null where the alternative leaves a
    cell without a score) of the cells of one edition and unit type scored under it, or None for the
    all-declared choice (the published scores are those). Arguments as :func:`score_measurements`."""
    found: list[pl.DataFrame | None] = []
    for choice in choices:
        if choice.declared:
            found.append(None)
            continue
        scored = score_measurements(cells, override_methods(methods, choice), peers, history, rule)
        found.append(
            scored.select(
                "unit_code",
                "indicator_code",
                pl.when(pl.col("status") == "scored").then(pl.col("score")).alias("score"),
            )
        )
    return found
