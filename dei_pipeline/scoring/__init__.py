"""From measurements to scores: imputation, outlier treatment and normalisation of an edition's
measurements in natural units, as pure polars functions (no Dagster). The method of each indicator is
data (the optional method columns of the framework files, :mod:`dei_pipeline.scoring.method`); the
thresholds are settings (``scoring:`` in ``data/method/settings.yaml``)."""
