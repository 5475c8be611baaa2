"""The warehouse's schema follows the code (a warehouse made by an older version is brought up to date),
and an edition's rows are replaced in one transaction."""

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dei_pipeline.warehouse import (
    TABLES,
    documented_comment,
    export_parquet,
    open_warehouse,
    publish_serving_snapshot,
    read_ahead,
    replace_editions,
    run,
    schema_statements,
)


def test_an_older_warehouse_gets_missing_columns_and_current_comments(tmp_path: Path) -> None:
    path = tmp_path / "dei.duckdb"
    with open_warehouse(path):
        pass
    # What an older version might have left: an outdated comment, a column it did not have yet.
    with duckdb.connect(str(path)) as con:
        con.execute("COMMENT ON TABLE marts.city_index IS 'old words'").fetchall()
        con.execute("COMMENT ON COLUMN marts.city_index.score IS 'old words'").fetchall()
        con.execute("ALTER TABLE marts.city_index DROP COLUMN tier").fetchall()
        con.execute(
            "INSERT INTO marts.city_index (survey_year, unit_code) VALUES (2020, '330100')"
        ).fetchall()

    with open_warehouse(path):
        pass

    table = TABLES["marts.city_index"]
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.sql(
            "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = 'city_index'"
        ).fetchall() == [(documented_comment(table),)]
        columns = dict(
            con.sql(
                "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = 'city_index'"
            ).fetchall()
        )
        assert columns == {column.name: column.comment for column in table.columns}
        # The rows were kept; the added column is empty for them.
        assert con.sql("SELECT unit_code, tier FROM marts.city_index").fetchall() == [("330100", None)]


def test_an_up_to_date_warehouse_needs_no_schema_change(tmp_path: Path) -> None:
    path = tmp_path / "dei.duckdb"
    with open_warehouse(path):
        pass
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {
            f"{schema}.{name}": comment
            for schema, name, comment in con.sql(
                "SELECT schema_name, table_name, comment FROM duckdb_tables()"
            ).fetchall()
        }
        columns = {
            (f"{schema}.{table}", column): comment
            for schema, table, column, comment in con.sql(
                "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns()"
            ).fetchall()
        }
    assert set(tables) == set(TABLES)
    assert schema_statements(tables, columns) == []


def test_rows_written_in_parts_land_together_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "dei.duckdb"

    def regions(year: int, *names: str) -> pl.DataFrame:
        keys = pl.DataFrame({"survey_year": [year] * len(names), "region": list(names)})
        return keys.with_columns(
            pl.lit(None).alias(name)
            for name in TABLES["marts.region_rollup"].column_names
            if name not in keys.columns
        )

    with open_warehouse(path) as con:
        assert replace_editions(con, "marts.region_rollup", regions(2020, "old"), [2020]) == 1
        # Parts made while writing (as unit_profile does): all of them, replacing the edition, in one go.
        assert (
            replace_editions(
                con, "marts.region_rollup", iter([regions(2019, "a"), regions(2020, "b", "c")]), [2019, 2020]
            )
            == 3
        )

        def failing_parts() -> Iterator[pl.DataFrame]:
            yield regions(2020, "d")
            raise RuntimeError("the second part could not be made")

        # Made in this thread or ahead in a worker thread, a part that fails fails the write.
        for parts in (failing_parts(), read_ahead(failing_parts())):
            with pytest.raises(RuntimeError, match="second part"):
                replace_editions(con, "marts.region_rollup", parts, [2020])
            # The failure rolled back the delete and the first part: the last good rows are there.
            assert run(con, "SELECT survey_year, region FROM marts.region_rollup ORDER BY 1, 2") == [
                (2019, "a"),
                (2020, "b"),
                (2020, "c"),
            ]


def test_read_ahead_makes_the_next_part_while_the_current_one_is_written(tmp_path: Path) -> None:
    made: list[int] = []

    def parts(reader: duckdb.DuckDBPyConnection) -> Iterator[pl.DataFrame]:
        for year in (2018, 2019, 2020):
            made.append(year)
            yield reader.sql(f"SELECT {year}::INTEGER AS survey_year").pl()

    with open_warehouse(tmp_path / "dei.duckdb") as con, con.cursor() as reader:
        ahead = read_ahead(parts(reader))
        first = next(ahead)
        assert first["survey_year"].to_list() == [2018]
        ahead_of_the_writer = made[:]  # the 2019 part is being made (or made) meanwhile
        assert [part["survey_year"].item() for part in ahead] == [2019, 2020]
    assert ahead_of_the_writer[0] == 2018 and len(ahead_of_the_writer) <= 2
    assert made == [2018, 2019, 2020]


def test_a_closed_read_ahead_finishes_the_part_being_made_and_makes_no_more(tmp_path: Path) -> None:
    made: list[int] = []

    def slow_parts(reader: duckdb.DuckDBPyConnection) -> Iterator[pl.DataFrame]:
        for year in (2018, 2019, 2020):
            time.sleep(0.05)
            made.append(year)
            yield reader.sql(f"SELECT {year}::INTEGER AS survey_year").pl()

    with open_warehouse(tmp_path / "dei.duckdb") as con, con.cursor() as reader:
        with closing(read_ahead(slow_parts(reader))) as ahead:
            next(ahead)  # as a write that fails after the first part: the second is being made
        # Closed: the second part was finished before the cursor could close under it; no third.
        assert made == [2018, 2019]


def test_parquet_export_replaces_the_hive_layout_and_types_an_empty_edition(tmp_path: Path) -> None:
    out = tmp_path / "parquet"
    legacy = out / "city_index" / "survey_year=2020"
    legacy.mkdir(parents=True)
    (legacy / "part-0.parquet").write_bytes(b"left by an older version")
    with open_warehouse(tmp_path / "dei.duckdb") as con:
        counts = export_parquet(con, out, [2020], tables=("marts.city_index", "marts.dim_tier"))
    assert counts == {"city_index": 0, "dim_tier": 0}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "city_index/city_index_2020.parquet",
        "dim_tier/dim_tier.parquet",
    ]
    with duckdb.connect() as con:  # an edition without rows still has the mart's columns and types
        described = con.sql(
            f"DESCRIBE SELECT * FROM '{out / 'city_index' / 'city_index_2020.parquet'}'"
        ).fetchall()
    assert [(name, sql_type) for name, sql_type, *_ in described] == [
        (c.name, c.sql_type) for c in TABLES["marts.city_index"].columns
    ]


@pytest.mark.parametrize("setting, tag", [(None, "v1.0.0+"), ("v1.2.0", "v1.2.0+")])
def test_the_serving_snapshot_is_written_in_the_configured_storage_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, tag: str
) -> None:
    monkeypatch.delenv("DEI_SERVING_STORAGE_VERSION", raising=False)
    if setting:
        monkeypatch.setenv("DEI_SERVING_STORAGE_VERSION", setting)
    serving = tmp_path / "dei_serving.duckdb"
    with open_warehouse(tmp_path / "dei.duckdb") as con:
        publish_serving_snapshot(con, serving, "run-1")
    with duckdb.connect(str(serving), read_only=True) as con:
        assert con.sql(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall() == [(tag,)]
        assert con.sql("SELECT storage_version FROM marts.snapshot_info").fetchall() == [(tag.rstrip("+"),)]


def test_each_tables_polars_schema_is_what_duckdb_returns_for_it(tmp_path: Path) -> None:
    # The polars dtypes are derived from the SQL types: a frame read from a table carries them exactly.
    with open_warehouse(tmp_path / "dei.duckdb") as con:
        for name, table in TABLES.items():
            assert dict(con.sql(f"SELECT * FROM {name}").pl().schema) == table.polars_schema(), name
            assert dict(table.empty().schema) == table.polars_schema()


def test_conform_gives_the_tables_columns_in_order_with_absent_ones_null() -> None:
    table = TABLES["marts.audit_units"]
    parts = [
        pl.DataFrame(
            {"unit_code": ["110000"], "survey_year": [2020], "n_missing": [2], "extra": ["dropped"]}
        ),
        pl.DataFrame({"unit_code": ["310000"], "survey_year": [2021], "unit_type": ["city"]}),
    ]
    rows = table.conform(parts)
    assert rows.schema == pl.Schema(table.polars_schema())
    assert rows.select("survey_year", "unit_type", "unit_code", "n_missing").rows() == [
        (2020, None, "110000", 2),
        (2021, "city", "310000", None),
    ]
    assert table.conform([]).schema == table.empty().schema
    assert table.conform([pl.DataFrame({"unit_code": []}, schema={"unit_code": pl.String})]).height == 0


def test_a_key_or_a_type_that_the_table_does_not_have_is_refused_when_declared() -> None:
    from dei_pipeline.warehouse import Column, Table

    with pytest.raises(ValueError, match="key column"):
        Table("marts.t", "t", (Column("survey_year", "INTEGER", "year"),), key=("survey_year", "unit_code"))
    with pytest.raises(ValueError, match="no polars dtype"):
        Column("at", "TIMESTAMPTZ", "when")
    # Edition tables are keyed by edition first; the dimensions without editions by their own code.
    assert all(
        table.key[0] == "survey_year"
        for table in TABLES.values()
        if table.key and "survey_year" in table.column_names
    )
