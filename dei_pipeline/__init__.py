"""dei-pipeline: the City Digital Economy Index (城市数字经济指数) as a Dagster pipeline."""

__version__ = "0.1.0"
