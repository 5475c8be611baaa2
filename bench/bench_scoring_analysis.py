"""Scoring choices in the analysis: what varying the normalisation, the treatment and the imputation
costs the rank-uncertainty Monte Carlo and the sensitivity analysis on the national data set.

The national data set holds scores; its editions are turned into measurements in memory exactly as
``bench_scoring.py`` does (goalposts images of the scores, 0.5% of the cells blank and imputed, 0.1% of
the winsorised indicators' cells made outliers). For each of the last ``--editions`` editions and both
unit types, the published index is made from the declared scores; then, in the same run, for each case
of settings:

- ``alternatives``: the leaf scores under every scoring alternative (``variant_scores``: one run of the
  scoring stage per alternative that is not the declared one);
- ``rank_uncertainty``: the Monte Carlo (10,000 draws, the settings of ``data/method/settings.yaml``
  otherwise) as the asset computes it;
- ``sensitivity``: the Sobol design and its bootstrap (N = sensitivity_base_draws).

Cases: nothing varied (today's analysis), the normalisation varied (declared, minmax, zscore, rank),
and every choice varied (those four normalisations x treatments declared, none x imputations declared,
none: 16 alternatives). One run of each; nothing is asserted.

    python bench/bench_scoring_analysis.py --data-dir NATIONAL_DIR --json PART.json [--editions 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from bench_scoring import measurements
from bench_uncertainty import nominal_ranks
from harness import DEFAULT_NATIONAL_DIR, git_revision, machine, print_table, write_json

from dei_pipeline.aggregation import aggregate_tiers, composite_scores
from dei_pipeline.analysis.assumption_draws import edition_rng, load_uncertainty_settings, scoring_shape
from dei_pipeline.analysis.rank_uncertainty import rank_uncertainty
from dei_pipeline.analysis.sensitivity import edition_sensitivity
from dei_pipeline.config import REPO_ROOT, UncertaintySettings, load_settings
from dei_pipeline.registry import load_registry
from dei_pipeline.scoring.stage import score_measurements
from dei_pipeline.scoring.variants import scoring_choices, variant_scores
from dei_pipeline.tiers import load_tiers

DRAWS = 10_000
CASES: dict[str, dict[str, list[str]]] = {
    "nothing varied": {},
    "normalisation": {"normalisations": ["declared", "minmax", "zscore", "rank"]},
    "all three": {
        "normalisations": ["declared", "minmax", "zscore", "rank"],
        "treatments": ["declared", "none"],
        "imputations": ["declared", "none"],
    },
}


@dataclass(frozen=True)
class Edition:
    year: int
    unit_type: str
    cells: pl.DataFrame
    methods: pl.DataFrame
    peers: pl.DataFrame
    history: pl.DataFrame
    nodes: pl.DataFrame
    leaves: pl.DataFrame  # the declared scores: unit_code, indicator_code, score
    nominal: pl.DataFrame  # the published index made of them


def editions_of(data_dir: Path, last: int) -> tuple[list[Edition], Any]:
    method, tiers = load_settings(data_dir), load_tiers(data_dir)
    rule = method.scoring_rule
    cells, methods, peers, nodes = measurements(data_dir)
    kinds = load_registry(data_dir).counties.select("unit_code", pl.col("kind").alias("rank_group"))
    years = sorted(cells["survey_year"].unique().to_list())[-last:]
    found = []
    for year in years:
        for unit_type in ("city", "county"):
            these = cells.filter((pl.col("survey_year") == year) & (pl.col("unit_type") == unit_type))
            history = cells.filter((pl.col("survey_year") != year) & (pl.col("unit_type") == unit_type))
            unit_methods = methods.filter(pl.col("unit_type") == unit_type)
            year_peers = peers.filter(pl.col("survey_year") == year)
            scored = score_measurements(these, unit_methods, year_peers, history, rule)
            leaves = scored.filter(pl.col("status") == "scored").select(
                "unit_code", "indicator_code", "score"
            )
            composites = composite_scores(
                aggregate_tiers(leaves, nodes[unit_type], missing=method.missing_rule)
            ).filter(pl.col("score").is_not_null())
            nominal = nominal_ranks(composites, unit_type, kinds, tiers, method)
            found.append(
                Edition(
                    year,
                    unit_type,
                    these,
                    unit_methods,
                    year_peers,
                    history,
                    nodes[unit_type],
                    leaves,
                    nominal,
                )
            )
    return found, (method, tiers, rule)


def run_case(editions: list[Edition], context: Any, settings: UncertaintySettings) -> dict[str, Any]:
    method, tiers, rule = context
    shape = scoring_shape(settings)
    choices = scoring_choices(settings.normalisations, settings.treatments, settings.imputations)
    seconds = {"alternatives": 0.0, "rank_uncertainty": 0.0, "sensitivity": 0.0}
    rows = 0
    for edition in editions:
        started = time.perf_counter()
        variants: list[pl.DataFrame] = []
        if len(choices) > 1:
            frames = variant_scores(
                edition.cells, edition.methods, choices, edition.peers, edition.history, rule
            )
            variants = [edition.leaves if frame is None else frame for frame in frames]
        seconds["alternatives"] += time.perf_counter() - started
        started = time.perf_counter()
        rank_uncertainty(
            edition.leaves,
            edition.nodes,
            edition.nominal,
            method,
            settings,
            edition_rng(settings.seed, edition.year, edition.unit_type, "rank_uncertainty"),
            tiers if edition.unit_type == "city" else None,
            variants,
            shape if variants else (1, 1, 1),
        )
        seconds["rank_uncertainty"] += time.perf_counter() - started
        started = time.perf_counter()
        rows += edition_sensitivity(
            edition.leaves,
            edition.nodes,
            edition.nominal.filter(pl.col("rank").is_not_null()),
            method,
            settings,
            edition_rng(settings.seed, edition.year, edition.unit_type, "sensitivity"),
            variants,
            shape if variants else (1, 1, 1),
        ).height
        seconds["sensitivity"] += time.perf_counter() - started
    return {
        "alternatives": len(choices),
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "total_s": round(sum(seconds.values()), 2),
        "sensitivity_rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_NATIONAL_DIR)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--editions", type=int, default=1, help="the last this many editions")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    editions, context = editions_of(data_dir, args.editions)
    base = load_uncertainty_settings(REPO_ROOT / "data").with_draws(DRAWS)
    print(
        f"scoring choices: editions {sorted({e.year for e in editions})}, "
        f"{sum(e.nominal.height for e in editions):,} units",
        flush=True,
    )
    results = {
        name: run_case(editions, context, base.model_copy(update=change)) for name, change in CASES.items()
    }
    reference = results["nothing varied"]
    for result in results.values():
        result["ratio_rank_uncertainty"] = round(
            result["seconds"]["rank_uncertainty"] / reference["seconds"]["rank_uncertainty"], 2
        )
        result["ratio_sensitivity"] = round(
            result["seconds"]["sensitivity"] / reference["seconds"]["sensitivity"], 2
        )
        result["ratio_total"] = round(result["total_s"] / reference["total_s"], 2)
    print_table(
        "Rank uncertainty (10,000 draws) and sensitivity (N = base draws) with the scoring choices varied",
        [
            "case",
            "alternatives",
            "alternatives s",
            "MC s",
            "Sobol s",
            "total s",
            "MC x",
            "Sobol x",
            "total x",
        ],
        [
            [
                name,
                r["alternatives"],
                r["seconds"]["alternatives"],
                r["seconds"]["rank_uncertainty"],
                r["seconds"]["sensitivity"],
                r["total_s"],
                r["ratio_rank_uncertainty"],
                r["ratio_sensitivity"],
                r["ratio_total"],
            ]
            for name, r in results.items()
        ],
    )
    write_json(
        args.json,
        {"part": "scoring_analysis", "machine": machine(), "git": git_revision(), "cases": results},
    )


if __name__ == "__main__":
    main()
