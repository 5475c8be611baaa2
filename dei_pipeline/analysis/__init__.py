"""Robustness analysis of the index, beyond the white paper.

Pure functions, numpy and polars in and out, no Dagster (the assets are in
``dei_pipeline/defs/analysis_assets.py``); what the figures mean is in ``docs/analysis.md``.

- ``rank_uncertainty``: rank uncertainty, Monte Carlo over the weights and the aggregation method,
  vectorised across draws (``marts.rank_uncertainty``), built from
  ``index_tree`` (the framework tree as arrays, and runs of steps sharing a method),
  ``assumption_draws`` (the random inputs of the draws: weight multipliers, aggregation methods, weight
  schemes; the settings and seeded streams), ``weight_draws`` (the weights of the draws and the weight
  schemes), ``ranking_problem`` (one edition and unit type as a matrix problem), ``draw_aggregation``
  (the composites of the draws), ``draw_ranks`` (their display scores and ranks) and
  ``rank_summaries`` (per-unit distributions of ranks, scores and tiers over the draws).
- ``sensitivity``: first-order and total-effect Sobol indices of the ranks, with bootstrap intervals
  (``marts.sensitivity``).
- ``removal``: the rank changes when each framework node is left out (``marts.removal_impact``).
- ``attribution``: each unit's score change split over the level-1 and level-2 nodes, and into data
  and method change by the Shapley value of the two steps (``marts.yoy_attribution``).
- ``audit``: the statistical audit of each framework node (correlations, significance, PCA) and each
  unit (``marts.audit``, ``marts.audit_units``).
- ``profile``: a unit's strengths and weaknesses against its tier (``marts.unit_profile``, ``dei profile``).
"""
