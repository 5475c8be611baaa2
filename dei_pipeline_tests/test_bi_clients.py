"""What BI reads, read with the clients BI users have: the serving snapshot with the DuckDB 1.x CLI and
with SQLAlchemy's inspector over duckdb-engine (Superset's dataset picker), the Parquet export with
pandas, polars, pyarrow and DuckDB; and the marts' grain, natural keys and joins to the dimensions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy
from packaging.specifiers import SpecifierSet

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.warehouse import (
    FOREIGN_KEYS,
    GRAIN,
    MART_TABLES,
    SNAPSHOT_INFO,
    TABLES,
    ForeignKey,
    documented_comment,
    publish_serving_snapshot,
)
from dei_pipeline_tests.conftest import Project

DUCKDB_CLI = Path(sys.executable).with_name("duckdb")  # the duckdb-cli package of the dev extra


@pytest.fixture(scope="module")
def serving(sample: Project) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(sample.serving), read_only=True)
    yield con
    con.close()


def snapshot_marts(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1"
        ).fetchall()
    ]


# ------------------------------------------------------------------------------ the DuckDB 1.x CLI


def duckdb_cli(database: Path, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-json", str(database), "-c", sql],
        check=False,  # the tests read the exit status and stderr
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_under_test_is_duckdb_1() -> None:
    version = subprocess.run(
        [str(DUCKDB_CLI), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert re.match(r"v1\.\d+\.\d+", version), version


def cli_rows(database: Path, sql: str) -> list[dict]:
    """The rows of one query, run by the DuckDB 1.x CLI on the database opened read-only."""
    result = duckdb_cli(database, sql)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout or "[]")


def test_the_duckdb_1_cli_reads_the_snapshot_its_tables_and_comments(
    sample: Project, serving: duckdb.DuckDBPyConnection
) -> None:
    snapshot = sample.serving
    assert cli_rows(snapshot, "SELECT count(*) AS n FROM marts.city_index WHERE survey_year = 2020") == [
        {"n": 148}
    ]
    assert [
        row["name_zh"] for row in cli_rows(snapshot, "SELECT name_zh FROM marts.dim_tier ORDER BY tier_order")
    ] == ["一线", "新一线", "二线", "三线", "四线"]
    assert cli_rows(
        snapshot,
        "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = 'city_index'",
    ) == [{"comment": documented_comment(TABLES["marts.city_index"])}]
    assert cli_rows(
        snapshot,
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = 'dim_unit' AND column_name = 'kind_en'",
    ) == [{"comment": next(c.comment for c in TABLES["marts.dim_unit"].columns if c.name == "kind_en")}]
    assert cli_rows(snapshot, "SELECT storage_version FROM marts.snapshot_info") == [
        {"storage_version": "v1.0.0"}
    ]
    # Every table and column comment the snapshot has, the 1.x CLI reads alike.
    documentation = "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts' ORDER BY table_name, column_index"
    assert [tuple(row.values()) for row in cli_rows(snapshot, documentation)] == serving.execute(
        documentation
    ).fetchall()


def test_a_snapshot_in_duckdb_2_storage_is_what_the_1x_cli_refuses(tmp_path: Path, sample: Project) -> None:
    """The control: the storage version is what makes the snapshot readable."""
    newest, warehouse = tmp_path / "newest.duckdb", tmp_path / "dei.duckdb"
    shutil.copy(sample.warehouse, warehouse)  # publishing attaches a file: the shared sample stays read-only
    with duckdb.connect(str(warehouse)) as con:
        publish_serving_snapshot(con, newest, "test-run", storage_version="latest")
    result = duckdb_cli(newest, "SELECT count(*) FROM marts.city_index")
    assert result.returncode != 0 and "version" in result.stderr


# --------------------------------------------------------------- SQLAlchemy inspector (Superset)


def pinned_sqlalchemy() -> str:
    """The SQLAlchemy requirement of the dev extra, e.g. 'sqlalchemy>=2.0.30,<2.0.55'."""
    dev = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["dev"]
    return next(spec for spec in dev if spec.lower().startswith("sqlalchemy"))


def test_the_installed_sqlalchemy_is_in_the_pinned_range_the_guide_names() -> None:
    pinned = pinned_sqlalchemy()
    assert sqlalchemy.__version__ in SpecifierSet(pinned.removeprefix("sqlalchemy")), (
        sqlalchemy.__version__,
        pinned,
    )
    assert f"`{pinned}`" in (REPO_ROOT / "docs" / "bi.md").read_text(encoding="utf-8")


def test_the_sqlalchemy_inspector_lists_schemas_tables_columns_and_comments(
    tmp_path: Path, sample: Project, serving: duckdb.DuckDBPyConnection
) -> None:
    # A copy, as a BI server would mount it: DuckDB refuses a second in-process connection to one file
    # with other settings than the fixture's, which duckdb-engine's are.
    snapshot = shutil.copy(sample.serving, tmp_path / "dei_serving.duckdb")
    engine = sqlalchemy.create_engine(f"duckdb:///{snapshot}", connect_args={"read_only": True})
    try:
        inspector = sqlalchemy.inspect(engine)
        assert any(schema.split(".")[-1] == "marts" for schema in inspector.get_schema_names())
        tables = inspector.get_table_names(schema="marts")
        assert sorted(tables) == snapshot_marts(serving)
        comments = dict(
            serving.execute(
                "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts'"
            ).fetchall()
        )
        missing = []
        for table in tables:
            assert inspector.get_table_comment(table, schema="marts") == {"text": comments[table]}
            columns = inspector.get_columns(table, schema="marts")
            expected = serving.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = $1 "
                "ORDER BY column_index",
                [table],
            ).fetchall()
            assert [(c["name"], c.get("comment")) for c in columns] == expected
            missing += [f"{table}.{name}" for name, comment in expected if not comment]
            # What Superset also asks for each dataset; failing calls here are what the pin avoids.
            inspector.get_pk_constraint(table, schema="marts")
            inspector.get_foreign_keys(table, schema="marts")
            inspector.get_indexes(table, schema="marts")
        assert missing == [], "columns without a comment"
    finally:
        engine.dispose()


def test_snapshot_info_is_documented_whole(serving: duckdb.DuckDBPyConnection) -> None:
    columns = serving.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = 'snapshot_info' "
        "ORDER BY column_index"
    ).fetchall()
    assert columns == [(column.name, column.comment) for column in SNAPSHOT_INFO.columns]


# ------------------------------------------------------------------------ grain, keys, joins


@pytest.mark.parametrize("table_name", MART_TABLES)
def test_every_mart_states_its_grain_and_its_key_holds(
    table_name: str, serving: duckdb.DuckDBPyConnection
) -> None:
    grain, key = GRAIN[table_name], TABLES[table_name].key
    [(comment,)] = serving.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = $1",
        [table_name.split(".")[1]],
    ).fetchall()
    assert key and f"Grain: one row per {grain}; natural key ({', '.join(key)})" in comment
    assert serving.execute(f"SELECT count(*) FROM {table_name}").fetchall()[0][0] > 0, (
        "an empty mart proves no key"
    )
    assert duplicate_keys(serving, table_name, key) == []


def duplicate_keys(con: duckdb.DuckDBPyConnection, table_name: str, key: tuple[str, ...]) -> list[tuple]:
    """Key values held by more than one row (GROUP BY counts nulls as equal, as a natural key must)."""
    columns = ", ".join(key)
    return con.execute(
        f"SELECT {columns}, count(*) FROM {table_name} GROUP BY {columns} HAVING count(*) > 1 LIMIT 5"
    ).fetchall()


def orphans(con: duckdb.DuckDBPyConnection, fk: ForeignKey) -> list[tuple]:
    """Non-null values of the foreign key with no row in the dimension."""
    on = " AND ".join(f"f.{a} = d.{b}" for a, b in zip(fk.columns, fk.dimension_columns))
    filled = " AND ".join(f"f.{a} IS NOT NULL" for a in fk.columns)
    columns = ", ".join(f"f.{a}" for a in fk.columns)
    return con.execute(
        f"SELECT DISTINCT {columns} FROM {fk.table} AS f ANTI JOIN {fk.dimension} AS d ON {on} WHERE {filled} LIMIT 5"
    ).fetchall()


@pytest.mark.parametrize("fk", FOREIGN_KEYS, ids=lambda fk: f"{fk.table}.{'+'.join(fk.columns)}")
def test_foreign_keys_to_the_dimensions_hold(fk: ForeignKey, serving: duckdb.DuckDBPyConnection) -> None:
    assert (
        serving.execute(
            f"SELECT count(*) FROM {fk.table} WHERE {' AND '.join(f'{c} IS NOT NULL' for c in fk.columns)}"
        ).fetchall()[0][0]
        > 0
    )
    assert orphans(serving, fk) == []


def test_the_key_and_join_checks_find_what_breaks_them() -> None:
    """The two checks above, on a table that breaks both, so that their passing means something."""
    con = duckdb.connect()
    con.execute(
        "CREATE SCHEMA marts; CREATE TABLE marts.dim_unit (unit_code VARCHAR); INSERT INTO marts.dim_unit VALUES ('110000')"
    ).fetchall()
    con.execute(
        "CREATE TABLE marts.city_index (survey_year INTEGER, unit_code VARCHAR); "
        "INSERT INTO marts.city_index VALUES (2020, '110000'), (2020, '110000'), (2020, '999900'), (2020, NULL)"
    ).fetchall()
    assert duplicate_keys(con, "marts.city_index", ("survey_year", "unit_code")) == [(2020, "110000", 2)]
    assert orphans(con, ForeignKey("marts.city_index", ("unit_code",), "marts.dim_unit", ("unit_code",))) == [
        ("999900",)
    ]


def test_every_mart_of_the_warehouse_has_a_grain_and_a_key() -> None:
    assert [name for name in MART_TABLES if name not in GRAIN] == []
    assert [name for name in GRAIN if name not in MART_TABLES] == []
    assert [name for name in MART_TABLES if not TABLES[name].key] == []


# ------------------------------------------------------------------------------------- Parquet

SQL_TO_ARROW = {
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
}
SQL_TO_POLARS = {
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "VARCHAR": pl.String(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMP": pl.Datetime("us"),
}


def parquet_dir(sample: Project, table_name: str) -> Path:
    return sample.warehouse.parent / "parquet" / table_name.split(".", 1)[1]


@pytest.mark.parametrize("table_name", MART_TABLES)
def test_parquet_has_the_same_types_in_pandas_polars_pyarrow_and_duckdb(
    table_name: str, sample: Project, serving: duckdb.DuckDBPyConnection
) -> None:
    table = TABLES[table_name]
    folder = parquet_dir(sample, table_name)
    assert not list(folder.glob("survey_year=*")), "no Hive folders: survey_year is a column in the files"
    by_pyarrow = pq.read_table(folder)
    by_polars = pl.read_parquet(folder / "*.parquet")
    by_pandas = pd.read_parquet(folder)
    by_duckdb = duckdb.connect()
    described = dict(
        by_duckdb.execute(
            f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{folder}/*.parquet'))"
        ).fetchall()
    )
    rows = serving.execute(f"SELECT count(*) FROM {table_name}").fetchall()[0][0]
    assert by_pyarrow.num_rows == by_polars.height == len(by_pandas) == rows
    assert (
        list(described)
        == by_polars.columns
        == list(by_pandas.columns)
        == by_pyarrow.column_names
        == table.column_names
    )
    for column in table.columns:
        assert described[column.name] == column.sql_type, column.name
        assert by_polars.schema[column.name] == SQL_TO_POLARS[column.sql_type], column.name
        if column.sql_type in SQL_TO_ARROW:
            assert by_pyarrow.schema.field(column.name).type == SQL_TO_ARROW[column.sql_type], column.name
        else:
            assert pa.types.is_string(by_pyarrow.schema.field(column.name).type) or pa.types.is_large_string(
                by_pyarrow.schema.field(column.name).type
            )
    if "survey_year" in table.column_names:
        assert str(by_pandas["survey_year"].dtype) == "int32"  # not a category, as a Hive folder would give


def test_parquet_files_carry_the_table_and_column_comments(sample: Project) -> None:
    for table_name in MART_TABLES:
        table = TABLES[table_name]
        for file in sorted(parquet_dir(sample, table_name).glob("*.parquet")):
            schema = pq.read_schema(file)
            assert schema.metadata[b"comment"].decode() == documented_comment(table), file
            assert json.loads(schema.metadata[b"column_comments"]) == {
                c.name: c.comment for c in table.columns
            }
    # DuckDB reads the same key-value metadata.
    file = next(parquet_dir(sample, "marts.city_index").glob("*_2020.parquet"))
    kv = dict(
        duckdb.connect()
        .execute(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata('{file}')")
        .fetchall()
    )
    assert kv["comment"] == documented_comment(TABLES["marts.city_index"])
