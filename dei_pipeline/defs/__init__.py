"""The Dagster layer: partitions, sources, assets, checks, jobs, schedule, sensors and automation."""

import warnings

import dagster as dg

# Features we rely on knowingly although Dagster 1.13 marks them beta or preview: single-run backfills,
# observable source assets (data versions of the raw and reference files) and per-edition check results.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
