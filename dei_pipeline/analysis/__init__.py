"""Robustness analysis of the index, beyond the white paper.

Pure functions, numpy and polars in and out, no Dagster (the assets are in
``dei_pipeline/defs/analysis_assets.py``); what the figures mean is in ``docs/analysis.md``.

- ``uncertainty``: rank uncertainty, Monte Carlo over the weights and the aggregation method,
  vectorised across draws (``marts.rank_uncertainty``).
- ``sensitivity``: first-order and total-effect Sobol indices of the ranks, with bootstrap intervals
  (``marts.sensitivity``).
- ``removal``: the rank changes when each framework node is left out (``marts.removal_impact``).
- ``attribution``: each unit's score change split over the level-1 and level-2 nodes, and into data
  and method change by the Shapley value of the two steps (``marts.yoy_attribution``).
- ``audit``: the statistical audit of each framework node (correlations, significance, PCA) and each
  unit (``marts.audit``, ``marts.audit_units``).
- ``profile``: a unit's strengths and weaknesses against its tier (``marts.unit_profile``, ``dei profile``).
"""
