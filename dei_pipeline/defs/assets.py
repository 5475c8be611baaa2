"""The asset graph, stage by stage: ingestion -> validation -> aggregation -> index -> rollups and
comparisons -> reconciliation -> exports. Each asset is partitioned by survey edition, reads its
inputs from the warehouse, calls a pure function of the package and replaces exactly its editions'
rows in one transaction. A single-run backfill hands an asset all selected editions at once."""

import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import dagster as dg
import polars as pl

from dei_pipeline import aggregation, comparisons, ingest, ranking, rollups, scoring, validation
from dei_pipeline import (
    frameworks as frameworks_module,
)
from dei_pipeline import (
    reconciliation as reconciliation_module,
)
from dei_pipeline import (
    tiers as tiers_module,
)
from dei_pipeline.aggregation import COMPOSITE_CODE, aggregate_tiers, batches_by_framework
from dei_pipeline.comparisons import (
    cohort_summary,
    previous_editions,
    unit_changes,
)
from dei_pipeline.comparisons import (
    tier_summary as tier_summary_rows,
)
from dei_pipeline.defs.partitions import DEFAULT_EDITIONS, Editions, partition_editions, previous_edition
from dei_pipeline.defs.resources import WarehouseResource
from dei_pipeline.defs.sources import REFERENCE_SOURCES, raw_files
from dei_pipeline.fingerprints import fingerprint
from dei_pipeline.frameworks import Framework
from dei_pipeline.ingest import QUARANTINE_SCHEMA, IngestError, edition_files, ingest_edition
from dei_pipeline.published import load_published
from dei_pipeline.ranking import city_index as city_index_rows
from dei_pipeline.ranking import county_index as county_index_rows
from dei_pipeline.reconciliation import CHECK_CATEGORIES, Computed, reconcile
from dei_pipeline.registry import units
from dei_pipeline.removal import MassRemovalError, mass_removals, removal_confirmed
from dei_pipeline.rollups import (
    RollupError,
    check_member_gdp,
    gdp_years_for,
)
from dei_pipeline.rollups import (
    region_rollup as region_rollup_rows,
)
from dei_pipeline.rollups import (
    region_tier_mix as region_tier_mix_rows,
)
from dei_pipeline.scalars import number_or_none
from dei_pipeline.scoring.peers import peer_groups
from dei_pipeline.scoring.stage import score_measurements, summarise
from dei_pipeline.validation import (
    IndicatorValidationError,
    Reference,
    measurement_method_failures,
    validate_cells,
)
from dei_pipeline.warehouse import TABLES, edition_units, editions_in, read_table, replace_editions

COMPOSITE_NAME_ZH = "综合指数"
PARTITIONED: dict[str, Any] = {
    "partitions_def": DEFAULT_EDITIONS.partitions_def,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    # Whatever a run changes, the daemon brings up to date what reads it: the later editions'
    # comparisons, the analysis, the report and (once every edition agrees) the exports.
    "automation_condition": dg.AutomationCondition.eager(),
    # Every asset writes the one DuckDB file; operators can cap the pool (the warehouse lock already
    # keeps writers in turn).
    "pool": "duckdb_warehouse",
}
SETTINGS, REGISTRY, CITY_GDP, FRAMEWORKS, PUBLISHED = (
    REFERENCE_SOURCES[name]
    for name in ("method_settings", "registry", "city_gdp", "frameworks", "published_figures")
)


def code_version(function: Callable[..., Any], uses: Sequence[ModuleType] = ()) -> str:
    """The asset's own code and the modules (or whole packages) it calls: a change elsewhere leaves it
    current, so the UI marks stale exactly what a code change affects."""
    digest = hashlib.sha256(inspect.getsource(function).encode())
    for module in uses:
        package_dirs = getattr(module, "__path__", None)
        files = (
            sorted(
                p
                for d in package_dirs
                for p in Path(d).rglob("*")
                if p.is_file() and p.suffix in (".py", ".j2", ".css", ".html")
            )
            if package_dirs
            else [Path(inspect.getfile(module))]
        )
        for path in files:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def column_schema(table_name: str) -> dg.TableSchema:
    """The table's documented columns, and its key, as the Dagster UI shows them."""
    table = TABLES[table_name]
    key = dg.TableConstraints(other=[f"unique key: {', '.join(table.key)}"]) if table.key else None
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.sql_type, description=c.comment) for c in table.columns],
        constraints=key,
    )


def table_metadata(rows: pl.DataFrame) -> dg.TableMetadataValue:
    """Rows as a table in the Dagster UI, with typed columns (ints, floats, booleans, text)."""

    def kind(dtype: pl.DataType) -> str:
        return (
            "int"
            if dtype.is_integer()
            else "float"
            if dtype.is_float()
            else "bool"
            if dtype == pl.Boolean
            else "string"
        )

    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, kind(dtype)) for name, dtype in rows.schema.items()]
    )
    return dg.MetadataValue.table([dg.TableRecord(row) for row in rows.iter_rows(named=True)], schema=schema)


def table_asset_metadata(table_name: str) -> dict[str, Any]:
    """Static metadata: the table the asset writes and its documented columns (shown before any run)."""
    return {"dagster/table_name": table_name, "dagster/column_schema": column_schema(table_name)}


def edition_asset(
    group: str, uses: Sequence[ModuleType] = (), **asset_arguments: Any
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """The decorator of an asset computed for some editions: partitioned by edition, automated, with a
    code version of its own code and of the modules it ``uses`` (``asset_arguments``: kinds, deps,
    metadata, ... as dg.asset takes them)."""

    def decorate(function: Callable[..., Any]) -> dg.AssetsDefinition:
        arguments = {**PARTITIONED, "code_version": code_version(function, uses), **asset_arguments}
        return dg.asset(group_name=group, **arguments)(function)

    return decorate


def mart_asset(
    table_name: str, group: str, uses: Sequence[ModuleType] = (), **asset_arguments: Any
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """The decorator of an asset that writes one warehouse table: an edition asset with the table's
    name and documented columns as metadata."""
    return edition_asset(group, uses, metadata=table_asset_metadata(table_name), **asset_arguments)


def written(
    table_name: str,
    rows: pl.DataFrame | int,
    editions: list[int],
    data_version: dg.DataVersion | None = None,
    **extra: Any,
) -> dg.MaterializeResult:
    """Materialization metadata common to every asset: what was written for which editions. Each
    edition's materialization carries its own row count (a single-run backfill writes several). The
    documented columns are the asset definition's metadata (table_asset_metadata), not repeated in
    every materialization."""
    per_edition = (
        _by_edition(rows) if isinstance(rows, pl.DataFrame) and "survey_year" in rows.columns else {}
    )
    context = dg.AssetExecutionContext.get()
    for year in editions:
        count = per_edition.get(str(year), 0) if isinstance(rows, pl.DataFrame) else rows
        context.add_asset_metadata({"dagster/row_count": count}, partition_key=str(year))
    metadata: dict[str, Any] = {
        "dagster/table_name": table_name,
        "editions": ", ".join(map(str, editions)),
        "rows_in_run": rows if isinstance(rows, int) else rows.height,
    }
    metadata.update(extra)
    return dg.MaterializeResult(metadata=metadata, data_version=data_version)


def _by_edition(rows: pl.DataFrame) -> dict[str, int]:
    return {str(year): n for year, n in rows.group_by("survey_year").len().sort("survey_year").iter_rows()}


# ------------------------------------------------------------------------------------ ingestion


# Not automated: a new or changed edition folder is picked up by raw_files_sensor, the yearly schedule
# or a user; whatever follows from it is automated.
@mart_asset(
    "staging.raw_scores",
    "ingestion",
    uses=[ingest],
    kinds={"csv", "polars", "duckdb"},
    deps=[raw_files],
    automation_condition=None,
)
def raw_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """An edition's raw files (CSV, Parquet or .xlsx under `data/raw/<edition>/`) as they are: every
    cell as text, with the source file, its SHA-256, its encoding and the row's line number. A file
    that cannot be read fails the step (naming file, line and rule, also kept in core.quarantine) and
    nothing of the step's editions is replaced."""
    editions = partition_editions(context)
    ingested = []
    failures: dict[int, IngestError | MassRemovalError] = {}
    for year in editions:
        try:
            ingested.append(ingest_edition(warehouse.data_path, year))
        except IngestError as error:
            failures[year] = error
    with warehouse.connection() as con:
        if not removal_confirmed(
            context.run.tags
        ):  # a missing or cut-off file must not empty an edition unasked
            incoming = {edition.survey_year: edition.cells for edition in ingested}
            failures |= mass_removals(
                edition_units(con, list(incoming)),
                incoming,
                warehouse.settings().removal_max_share,
                lambda: units(warehouse.registry()),
            )
        if failures:
            _fail_with_quarantine(con, failures, "Ingestion")
        rows = pl.concat([edition.cells for edition in ingested])
        replace_editions(con, "staging.raw_scores", rows, editions)
    # The data version is the content of the files ingested, so that what reads an edition is stale
    # exactly when its files changed (Dagster 1.13 does not take input data versions from the
    # observations of a partitioned source). A single-run backfill gives its editions one version.
    versions = {
        str(e.survey_year): fingerprint((f.relative_path, f.content_hash) for f in e.files) for e in ingested
    }
    version = next(iter(versions.values())) if len(versions) == 1 else fingerprint(versions.items())
    return written(
        "staging.raw_scores",
        rows,
        editions,
        data_version=dg.DataVersion(version),
        source_files=dg.MetadataValue.json(
            {f.relative_path: f.content_hash for e in ingested for f in e.files}
        ),
        encodings=dg.MetadataValue.json({path: enc for e in ingested for path, enc in e.encodings.items()}),
        cells_per_edition=dg.MetadataValue.json(_by_edition(rows)),
    )


def _fail_with_quarantine(
    con: Any, failures: Mapping[int, IngestError | IndicatorValidationError | MassRemovalError], stage: str
) -> NoReturn:
    """Keep every rejected cell of the failing editions in core.quarantine, then fail the step with
    all of them in the message. The editions' previous good rows stay where they are."""
    rejected = pl.concat([error.failures.cast(QUARANTINE_SCHEMA) for error in failures.values()])
    recorded_at = datetime.now(UTC).replace(tzinfo=None)
    replace_editions(
        con,
        "core.quarantine",
        rejected.with_columns(pl.lit(recorded_at).alias("recorded_at")),
        list(failures),
    )
    years = ", ".join(map(str, failures))
    details = "\n".join(f"edition {year}: {error}" for year, error in failures.items())
    # A refusal that is not about cells (a file that is not a file, a mass removal) has nothing in
    # the quarantine: the details below say what it is.
    quarantined = f": {rejected.height} problem(s), listed in core.quarantine" if rejected.height else ""
    raise dg.Failure(
        description=f"{stage} rejected edition(s) {years}{quarantined}. "
        f"The warehouse keeps the last good data of every edition.\n{details}",
        metadata={"quarantined": rejected.height, "editions": years},
    )


# -------------------------------------------------------------------------------------- scoring


def _methods(frameworks: Mapping[str, Framework]) -> pl.DataFrame:
    return pl.concat([methods for fw in frameworks.values() if (methods := fw.unit_methods) is not None])


# Scores made from measurements, between the raw files and the validated scores.
@mart_asset(
    "marts.measurement_scores",
    "scoring",
    uses=[scoring, validation],
    kinds={"polars", "pandera", "duckdb"},
    deps=[raw_scores, FRAMEWORKS, REGISTRY, SETTINGS],
)
def measurement_scores(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Measurements in natural units (`data/raw/<edition>/<unit type>_measurements.csv`) to scores:
    validated like scores (any sign and size, blank = missing; bad cells go to core.quarantine, naming
    file, line, unit, column, value and rule), then per indicator, as its framework file says:
    minimum unit coverage, imputation (peer-group mean or median, or the previous edition's value),
    outlier treatment (the JRC winsorisation rule) and normalisation (min-max, goalposts, z-score,
    percentile rank, distance to a target; direction; log scale). Every cell's path is a row."""
    editions = partition_editions(context)
    settings, registry = warehouse.settings(), warehouse.registry()
    unit_names = units(registry).select("unit_type", "unit_code", "name_zh")
    # Per edition given as measurements: its valid cells and the method of each indicator.
    measured: dict[int, tuple[pl.DataFrame, pl.DataFrame]] = {}
    failures: dict[int, IndicatorValidationError] = {}
    with warehouse.connection() as con:
        for year in editions:
            cells = read_table(con, "staging.raw_scores", [year], where={"value_kind": ["measurement"]})
            if not cells.height:
                continue
            frameworks = {ut: warehouse.framework(ut, year) for ut in sorted(cells["unit_type"].unique())}
            reference = Reference({ut: fw.leaf_codes for ut, fw in frameworks.items()}, unit_names)
            try:
                valid = validate_cells(
                    cells, reference, settings.score_min, settings.score_max, "measurement"
                )
            except IndicatorValidationError as error:
                failures[year] = error
                continue
            problem = measurement_method_failures(valid, frameworks, year)
            if problem is not None:
                failures[year] = problem
                continue
            measured[year] = (valid.rename({"score": "measurement"}), _methods(frameworks))
        if failures:
            _fail_with_quarantine(con, failures, "Validation of measurements")
        if measured:
            history_columns = ["survey_year", "unit_type", "unit_code", "indicator_code", "measurement"]
            earlier = (
                read_table(con, "marts.measurement_scores")
                .filter(~pl.col("survey_year").is_in(editions))
                .select(history_columns)
            )
            city_tiers = read_table(con, "marts.city_index").select("survey_year", "unit_code", "tier")
            this_run = pl.concat([cells for cells, _ in measured.values()]).select(history_columns)
            rows = pl.concat(
                [
                    score_measurements(
                        cells,
                        edition_methods,
                        peer_groups(registry.cities, registry.counties, city_tiers, year),
                        pl.concat([earlier, this_run.filter(pl.col("survey_year") < year)]),
                        settings.scoring_rule,
                    )
                    for year, (cells, edition_methods) in measured.items()
                ]
            )
        else:
            rows = TABLES["marts.measurement_scores"].empty()
        replace_editions(con, "marts.measurement_scores", rows, editions)
    counts = (
        {s: n for s, n in rows.group_by("status").len().sort("status").iter_rows()} if rows.height else {}
    )
    return written(
        "marts.measurement_scores",
        rows,
        editions,
        status_counts=dg.MetadataValue.json(counts),
        imputed=int(rows["imputed"].sum()) if rows.height else 0,
        winsorised=int(rows["treatment_rule"].is_in(["winsorised_high", "winsorised_low"]).sum())
        if rows.height
        else 0,
    )


@mart_asset(
    "marts.measurement_summary",
    "scoring",
    uses=[scoring],
    kinds={"polars", "duckdb"},
    deps=[measurement_scores, FRAMEWORKS, SETTINGS],
)
def measurement_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Per edition and indicator given as measurements: coverage, skewness and kurtosis before and
    after treatment, points winsorised, imputed and left missing."""
    editions = partition_editions(context)
    settings = warehouse.settings()
    frames = []
    with warehouse.connection() as con:
        scored = read_table(con, "marts.measurement_scores", editions)
        for (year, unit_type), cells in scored.group_by("survey_year", "unit_type", maintain_order=True):
            fw = warehouse.framework(str(unit_type), int(year))
            methods = _methods({str(unit_type): fw})
            frames.append(summarise(cells, methods, settings.scoring.treatment_rule))
        rows = TABLES["marts.measurement_summary"].conform(frames)
        replace_editions(con, "marts.measurement_summary", rows, editions)
    return written("marts.measurement_summary", rows, editions)


# ----------------------------------------------------------------------------------- validation


@mart_asset(
    "core.indicator_scores",
    "validation",
    uses=[validation, rollups],
    kinds={"pandera", "duckdb"},
    deps=[raw_scores, measurement_scores, FRAMEWORKS, REGISTRY, CITY_GDP, SETTINGS],
)
def indicator_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Validated level-3 scores in long form (survey_year, unit_type, unit_code, indicator_code,
    score). Pandera checks types, the [0, 100] range, uniqueness, known units (and their names) and
    known indicators against the edition's framework and the registry. Rejected cells go to
    core.quarantine and the step fails, naming file, line, column, value and rule; the edition's
    previous validated rows stay in place."""
    editions = partition_editions(context)
    settings, registry = warehouse.settings(), warehouse.registry()
    unit_names = units(registry).select("unit_type", "unit_code", "name_zh")
    validated: list[pl.DataFrame] = [pl.DataFrame(schema=validation.VALID_SCHEMA)]
    failures: dict[int, IndicatorValidationError] = {}
    sources: list[pl.DataFrame] = []
    with warehouse.connection() as con:
        for year in editions:
            cells = read_table(con, "staging.raw_scores", [year])
            frameworks = {ut: warehouse.framework(ut, year) for ut in sorted(cells["unit_type"].unique())}
            score_cells = cells.filter(pl.col("value_kind").fill_null("score") == "score")
            reference = Reference(
                {ut: frameworks[ut].leaf_codes for ut in sorted(score_cells["unit_type"].unique())},
                unit_names,
            )
            try:
                if score_cells.height:
                    validated.append(
                        validate_cells(score_cells, reference, settings.score_min, settings.score_max)
                    )
            except IndicatorValidationError as error:
                failures[year] = error
                continue
            # Unit types given as measurements: the scores the scoring stage made of them.
            measured_types = sorted(set(cells["unit_type"].unique()) - set(score_cells["unit_type"].unique()))
            if measured_types:
                validated.append(
                    read_table(
                        con,
                        "marts.measurement_scores",
                        [year],
                        where={"status": ["scored"], "unit_type": measured_types},
                    )
                    .select(list(validation.VALID_SCHEMA))
                    .cast(validation.VALID_SCHEMA)
                )
            sources.append(
                cells.group_by("survey_year", "unit_type", "source_file", "content_hash")
                .agg(pl.col("unit_code").n_unique().cast(pl.Int32).alias("n_units"))
                .with_columns(
                    pl.col("unit_type")
                    .replace_strict({ut: fw.source_file.name for ut, fw in frameworks.items()})
                    .alias("framework_file"),
                    pl.col("unit_type")
                    .replace_strict({ut: fw.version for ut, fw in frameworks.items()})
                    .alias("framework_version"),
                    pl.lit(registry.version).alias("registry_version"),
                )
            )
        if failures:
            _fail_with_quarantine(con, failures, "Validation")
        _check_reference_data(pl.concat(validated), registry, settings, editions)
        # A clean pass clears the editions' quarantine.
        replace_editions(con, "core.quarantine", TABLES["core.quarantine"].empty(), editions)
        rows = pl.concat(validated)
        source_rows = pl.concat(sources)
        replace_editions(con, "core.indicator_scores", rows, editions)
        replace_editions(con, "core.edition_sources", source_rows, editions)
    return written(
        "core.indicator_scores",
        rows,
        editions,
        framework_versions=dg.MetadataValue.json(
            {
                f"{r['survey_year']}/{r['unit_type']}": r["framework_version"]
                for r in source_rows.iter_rows(named=True)
            }
        ),
        registry_version=registry.version,
        scores_per_edition=dg.MetadataValue.json(_by_edition(rows)),
    )


def _check_reference_data(validated: pl.DataFrame, registry: Any, settings: Any, editions: list[int]) -> None:
    """What the later stages need beyond the raw files, checked before anything is written, so that
    a gap fails the run while the warehouse still holds the edition's previous results."""
    cities = validated.filter(pl.col("unit_type") == "city").select("survey_year", "unit_code").unique()
    gdp_years = gdp_years_for(editions, registry.city_gdp, settings.gdp_vintage, settings.gdp_year_offset)
    try:
        check_member_gdp(cities, registry.region_members, registry.city_gdp, gdp_years, settings.gdp_vintage)
    except RollupError as error:
        raise dg.Failure(
            description=f"Reference data incomplete: {error}. Nothing of edition(s) "
            f"{', '.join(map(str, editions))} was written."
        ) from error


# ------------------------------------------------------------------------------------ framework


# Written only once the edition's scores have passed validation.
@mart_asset(
    "marts.framework",
    "reference",
    uses=[frameworks_module],
    kinds={"csv", "duckdb"},
    deps=[indicator_scores, FRAMEWORKS],
)
def framework(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The indicator system each edition uses, with weights and effective weights. An edition without
    a framework file of its own uses the latest one before it, else the earliest one."""
    editions = partition_editions(context)
    frames, used = [], {}
    for year in editions:
        for raw_file in edition_files(warehouse.data_path, year):
            fw = warehouse.framework(raw_file.unit_type, year)
            used[f"{year}/{raw_file.unit_type}"] = fw.version
            frames.append(
                fw.nodes.select(
                    pl.lit(year, pl.Int32).alias("survey_year"),
                    pl.lit(raw_file.unit_type).alias("unit_type"),
                    pl.col("code").alias("node_code"),
                    "parent_code",
                    "level",
                    "name_zh",
                    "name_en",
                    "weight",
                    "effective_weight",
                    pl.lit(fw.source_file.name).alias("framework_file"),
                )
            )
    rows = pl.concat(frames)
    with warehouse.connection() as con:
        replace_editions(con, "marts.framework", rows, editions)
    return written("marts.framework", rows, editions, framework_files=dg.MetadataValue.json(used))


# ---------------------------------------------------------------------------------- aggregation


@mart_asset(
    "marts.subindex_scores",
    "aggregation",
    uses=[aggregation],
    kinds={"polars", "duckdb"},
    deps=[indicator_scores, framework, SETTINGS],
)
def subindex_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Weighted aggregation tier by tier: level 3 -> level 2 -> level 1 -> composite (level 0), one
    generic function over the framework tree. Missing-value rule from data/method/settings.yaml."""
    editions = partition_editions(context)
    settings = warehouse.settings()
    frames = []
    with warehouse.connection() as con:
        scores = read_table(con, "core.indicator_scores", editions)
        for fw, leaf_scores in batches_by_framework(scores, warehouse.framework):
            names = pl.concat(
                [
                    fw.nodes.select(pl.col("code").alias("node_code"), "name_zh"),
                    pl.DataFrame({"node_code": [COMPOSITE_CODE], "name_zh": [COMPOSITE_NAME_ZH]}),
                ]
            )
            tree = aggregate_tiers(
                leaf_scores,
                fw.nodes,
                keys=("survey_year", "unit_type", "unit_code"),
                missing=settings.missing_rule,
                min_coverage=settings.min_coverage,
            )
            frames.append(tree.join(names, on="node_code", how="left"))
        rows = pl.concat(frames)
        replace_editions(con, "marts.subindex_scores", rows, editions)
    unscored = rows.filter((pl.col("level") == 0) & pl.col("score").is_null()).height
    return written(
        "marts.subindex_scores",
        rows,
        editions,
        units_without_composite=unscored,
        missing_rule=settings.missing_rule,
    )


# ---------------------------------------------------------------------------------------- index


def _composites(con: Any, unit_type: str, editions: list[int]) -> pl.DataFrame:
    return read_table(
        con, "marts.subindex_scores", editions, where={"level": [0], "unit_type": [unit_type]}
    ).select("survey_year", "unit_code", "score")


@mart_asset(
    "marts.city_index",
    "index",
    uses=[ranking, tiers_module],
    kinds={"polars", "duckdb"},
    deps=[subindex_scores, REGISTRY, SETTINGS],
)
def city_index(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Composite score, rank (ties share the best rank) and tier of every city; tiers from
    data/method/tiers.csv (一线 >85, 新一线 65-85, 二线 50-65, 三线 40-50, 四线 <40)."""
    editions = partition_editions(context)
    settings, registry, tiers = warehouse.settings(), warehouse.registry(), warehouse.tiers()
    with warehouse.connection() as con:
        rows = city_index_rows(
            _composites(con, "city", editions),
            registry.cities,
            tiers,
            settings.display_decimals,
            settings.tie_method,
        )
        replace_editions(con, "marts.city_index", rows, editions)
    top = rows.sort("survey_year", "rank", descending=[True, False]).head(10)
    return written(
        "marts.city_index",
        rows,
        editions,
        top_ten=table_metadata(
            top.select(
                pl.col("survey_year").alias("edition"),
                "rank",
                pl.col("name_zh").alias("city"),
                pl.col("score").round(1),
                "tier",
            )
        ),
        tier_counts=dg.MetadataValue.json(
            {
                str(year): dict(group.group_by("tier").len().sort("tier").iter_rows())
                for (year,), group in rows.group_by("survey_year")
            }
        ),
    )


@mart_asset(
    "marts.county_index",
    "index",
    uses=[ranking],
    kinds={"polars", "duckdb"},
    deps=[subindex_scores, REGISTRY, SETTINGS],
)
def county_index(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Composite score and rank of the county units, ranked within their kind (市辖区 / 县市)."""
    editions = partition_editions(context)
    settings, registry = warehouse.settings(), warehouse.registry()
    with warehouse.connection() as con:
        rows = county_index_rows(
            _composites(con, "county", editions),
            registry.counties,
            settings.display_decimals,
            settings.tie_method,
        )
        replace_editions(con, "marts.county_index", rows, editions)
    return written("marts.county_index", rows, editions)


# -------------------------------------------------------------------------------------- rollups


@mart_asset(
    "marts.region_rollup",
    "rollups",
    uses=[rollups],
    kinds={"polars", "duckdb"},
    deps=[city_index, CITY_GDP, REGISTRY, SETTINGS],
)
def region_rollup(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """GDP-weighted and plain mean score of each key region's scored cities; GDP year and vintage
    from data/method/settings.yaml (recorded on each row)."""
    editions = partition_editions(context)
    settings, registry = warehouse.settings(), warehouse.registry()
    gdp = registry.city_gdp
    gdp_years = gdp_years_for(editions, gdp, settings.gdp_vintage, settings.gdp_year_offset)
    with warehouse.connection() as con:
        scores = read_table(con, "marts.city_index", editions).select("survey_year", "unit_code", "score")
        rows = region_rollup_rows(scores, registry.region_members, gdp, gdp_years, settings.gdp_vintage)
        replace_editions(con, "marts.region_rollup", rows, editions)
    return written(
        "marts.region_rollup",
        rows,
        editions,
        gdp_vintage=settings.gdp_vintage,
        gdp_years=dg.MetadataValue.json(dict(gdp_years.iter_rows())),
    )


@mart_asset(
    "marts.region_tier_mix",
    "rollups",
    uses=[rollups],
    kinds={"polars", "duckdb"},
    deps=[city_index, REGISTRY, SETTINGS],
)
def region_tier_mix(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """How many of each region's scored cities fall in each tier."""
    editions = partition_editions(context)
    registry, tiers = warehouse.registry(), warehouse.tiers()
    with warehouse.connection() as con:
        city_tiers = read_table(con, "marts.city_index", editions).select("survey_year", "unit_code", "tier")
        rows = region_tier_mix_rows(city_tiers, registry.region_members, tiers)
        replace_editions(con, "marts.region_tier_mix", rows, editions)
    return written("marts.region_tier_mix", rows, editions)


# ---------------------------------------------------------------------------------- comparisons


def _history_and_previous(
    con: Any, table_name: str, editions: list[int]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Every edition of a table, the rows of the editions at hand, and each edition's predecessor."""
    history = read_table(con, table_name)
    return (
        history,
        history.filter(pl.col("survey_year").is_in(editions)),
        previous_editions(editions_in(con, table_name)),
    )


@mart_asset(
    "marts.city_yoy",
    "comparisons",
    uses=[comparisons],
    kinds={"polars", "duckdb"},
    deps=[previous_edition(city_index)],
)
def city_yoy(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Each city against the previous edition that has data: score, rank and tier then and now;
    new, returning and dropped cities."""
    editions = partition_editions(context)
    with warehouse.connection() as con:
        history, current, prev_years = _history_and_previous(con, "marts.city_index", editions)
        rows = unit_changes(current, history, prev_years, ["score", "rank", "tier"])
        replace_editions(con, "marts.city_yoy", rows, editions)
    return written(
        "marts.city_yoy",
        rows,
        editions,
        status_counts=dg.MetadataValue.json(
            {
                f"{y}/{s}": n
                for y, s, n in rows.group_by("survey_year", "status")
                .len()
                .sort("survey_year", "status")
                .iter_rows()
            }
        ),
    )


@mart_asset(
    "marts.county_yoy",
    "comparisons",
    uses=[comparisons],
    kinds={"polars", "duckdb"},
    deps=[previous_edition(county_index)],
)
def county_yoy(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Each county unit against the previous edition that has data (rank within its kind)."""
    editions = partition_editions(context)
    with warehouse.connection() as con:
        history, current, prev_years = _history_and_previous(con, "marts.county_index", editions)
        rows = unit_changes(current, history, prev_years, ["score", "rank", "kind"]).with_columns(
            pl.coalesce("kind", "prev_kind").alias("kind")
        )
        replace_editions(con, "marts.county_yoy", rows, editions)
    return written("marts.county_yoy", rows, editions)


@mart_asset(
    "marts.subindex_yoy",
    "comparisons",
    uses=[comparisons],
    kinds={"polars", "duckdb"},
    deps=[previous_edition(subindex_scores)],
)
def subindex_yoy(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Level-1 sub-index and composite changes of every unit against its previous edition."""
    editions = partition_editions(context)
    frames = []
    with warehouse.connection() as con:
        history = read_table(con, "marts.subindex_scores", where={"level": [0, 1]})
        for (unit_type,), unit_history in history.group_by("unit_type"):
            prev_years = previous_editions(unit_history["survey_year"].unique().to_list())
            current = unit_history.filter(pl.col("survey_year").is_in(editions))
            changes = unit_changes(
                current, unit_history, prev_years, ["score"], keys=("unit_code", "node_code", "level")
            )
            frames.append(changes.with_columns(pl.lit(unit_type).alias("unit_type")))
        rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        replace_editions(con, "marts.subindex_yoy", rows, editions)
    return written("marts.subindex_yoy", rows, editions)


@mart_asset(
    "marts.yoy_summary",
    "comparisons",
    uses=[comparisons],
    kinds={"polars", "duckdb"},
    deps=[city_yoy, county_yoy],
)
def yoy_summary(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """New, returning and dropped units per edition and the returning cohort's average then and now."""
    editions = partition_editions(context)
    with warehouse.connection() as con:
        rows = pl.concat(
            [
                cohort_summary(read_table(con, "marts.city_yoy", editions), "city"),
                cohort_summary(read_table(con, "marts.county_yoy", editions), "county"),
            ]
        )
        replace_editions(con, "marts.yoy_summary", rows, editions)
    return written("marts.yoy_summary", rows, editions)


@mart_asset(
    "marts.tier_summary",
    "comparisons",
    uses=[comparisons],
    kinds={"polars", "duckdb"},
    deps=[previous_edition(city_index), SETTINGS],
)
def tier_summary(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Cities per tier now and in the previous edition, with the change in percent (the white
    paper's "新一线城市数量增长31.8%")."""
    editions = partition_editions(context)
    with warehouse.connection() as con:
        history, current, prev_years = _history_and_previous(con, "marts.city_index", editions)
        rows = tier_summary_rows(current, history, prev_years, warehouse.tiers())
        replace_editions(con, "marts.tier_summary", rows, editions)
    return written("marts.tier_summary", rows, editions)


# ------------------------------------------------------------------------------- reconciliation


def _reconciliation_rows(editions: list[int], warehouse: WarehouseResource) -> pl.DataFrame:
    """Every published figure of the editions against the computed one, written to marts.reconciliation."""
    settings, tiers = warehouse.settings(), warehouse.tiers()
    frames = []
    with warehouse.connection() as con:
        for year in editions:
            published = load_published(warehouse.data_path, year)
            if published is None:
                continue
            computed = Computed(
                city_index=read_table(con, "marts.city_index", [year]),
                county_index=read_table(con, "marts.county_index", [year]),
                city_subindex=read_table(con, "marts.subindex_scores", [year]).filter(
                    pl.col("unit_type") == "city"
                ),
                region_rollup=read_table(con, "marts.region_rollup", [year]),
                yoy_summary=read_table(con, "marts.yoy_summary", [year]),
                tier_summary=read_table(con, "marts.tier_summary", [year]),
            )
            frames.append(reconcile(published, computed, tiers, settings.score_tolerance))
        rows = pl.concat(frames) if frames else TABLES["marts.reconciliation"].empty()
        replace_editions(con, "marts.reconciliation", rows, editions)
    return rows


def reconciliation_asset(editions: Editions) -> dg.AssetsDefinition:
    """marts.reconciliation and its checks, one result per check and edition. The checks are findings
    (severity WARN): the white paper's own contradictions and the regional GDP vintage gap are reported,
    and they never hold the publication back."""
    spec = dg.AssetSpec(
        "reconciliation",
        group_name="reconciliation",
        kinds={"polars", "duckdb"},
        deps=[
            city_index,
            county_index,
            subindex_scores,
            region_rollup,
            yoy_summary,
            tier_summary,
            PUBLISHED,
            SETTINGS,
        ],
        metadata=table_asset_metadata("marts.reconciliation"),
        partitions_def=editions.partitions_def,
        automation_condition=PARTITIONED["automation_condition"],
        code_version=code_version(_reconciliation_rows, [reconciliation_module]),
    )
    checks = [
        dg.AssetCheckSpec(
            name,
            asset="reconciliation",
            partitions_def=editions.partitions_def,
            description=f"Computed figures of categories {', '.join(categories)} agree with the white paper",
        )
        for name, categories in CHECK_CATEGORIES.items()
    ]

    @dg.multi_asset(
        specs=[spec],
        check_specs=checks,
        can_subset=True,
        backfill_policy=PARTITIONED["backfill_policy"],
        pool=PARTITIONED["pool"],
    )
    def reconciliation(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
        """Every published figure of the white paper (`data/published/<edition>/`) against the computed
        one: city and county scores, tier counts and lists, level-1 and industry averages, regional
        GDP-weighted scores and the year-over-year statements. One row per comparison; the checks
        report disagreements edition by edition (an edition without published figures has nothing to
        reconcile, and its checks say so)."""
        editions = partition_editions(context)
        rows = _reconciliation_rows(editions, warehouse)
        status_counts = (
            {s: n for s, n in rows.group_by("status").len().sort("status").iter_rows()} if rows.height else {}
        )
        yield written(
            "marts.reconciliation", rows, editions, status_counts=dg.MetadataValue.json(status_counts)
        )
        for year in editions:
            edition_rows = rows.filter(pl.col("survey_year") == year) if rows.height else rows
            for check_name, categories in CHECK_CATEGORIES.items():
                in_check = (
                    edition_rows.filter(pl.col("category").is_in(categories))
                    if edition_rows.height
                    else edition_rows
                )
                yield _check_evaluation(check_name, in_check, year)

    return reconciliation


def _evaluation(
    check_name: str, year: int, passed: bool, metadata: dict[str, Any]
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("reconciliation"),
        check_name=check_name,
        partition=str(year),
        severity=dg.AssetCheckSeverity.WARN,
        passed=passed,
        metadata=metadata,
    )


def _check_evaluation(check_name: str, rows: pl.DataFrame, year: int) -> dg.AssetCheckEvaluation:
    """One edition's result of a reconciliation check."""
    if rows.height == 0:
        return _evaluation(check_name, year, True, {"note": "no published figures for this edition"})
    failing = rows.filter(pl.col("status").is_in(["mismatch", "missing"]))
    known = rows.filter(pl.col("status") == "known_contradiction")
    worst = failing.sort(pl.col("difference").abs(), descending=True, nulls_last=False).head(10)
    return _evaluation(
        check_name,
        year,
        failing.height == 0,
        {
            "compared": rows.height,
            "matching": rows.filter(pl.col("status") == "match").height,
            "disagreeing": failing.height,
            "known_contradictions": known.height,
            "max_abs_difference": number_or_none(rows["difference"].abs().max()) or 0.0,
            "disagreements": table_metadata(
                (worst if failing.height else known).select(
                    pl.col("survey_year").alias("edition"),
                    "item",
                    "published",
                    pl.col("computed").round(3),
                    "status",
                )
            ),
        },
    )


# The marts BI reads, and with the ingestion assets, the index's own assets. The exports (Parquet,
# serving snapshot) are built over these and the analysis marts in exports.py.
reconciliation = reconciliation_asset(DEFAULT_EDITIONS)
MART_ASSETS = [
    measurement_scores,
    measurement_summary,
    framework,
    subindex_scores,
    city_index,
    county_index,
    region_rollup,
    region_tier_mix,
    city_yoy,
    county_yoy,
    subindex_yoy,
    yoy_summary,
    tier_summary,
    reconciliation,
]


INDEX_ASSETS = [raw_scores, indicator_scores, *MART_ASSETS]
