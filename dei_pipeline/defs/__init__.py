"""The Dagster layer: partitions, resources, assets, checks, jobs, schedule and sensor."""
