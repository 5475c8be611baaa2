"""The pipeline's weighted tier-by-tier aggregation (``dei_pipeline.aggregation.aggregate_tiers``)
written two other ways, for the benchmark to compare against in the same run:

- ``duckdb_aggregate``: plain DuckDB SQL over the same long table, one ``GROUP BY`` per tier (the
  fast baseline);
- ``pandas_aggregate``: a straightforward pandas ``merge`` + ``groupby`` per tier, vectorised (what
  most teams write today).

Both follow the pipeline's default missing-value rule, ``propagate``: every (unit, leaf) of the
framework is on the grid (an absent row is a missing score) and a parent with a missing child is
missing. They return the same columns as ``aggregate_tiers`` (keys, node_code, level, score), in
no particular order; ``compare`` checks that all agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import duckdb
import polars as pl

if TYPE_CHECKING:
    import pandas as pd

from dei_pipeline.aggregation import COMPOSITE_CODE
from dei_pipeline.scalars import number_or_none

LEAF_TABLE = "leaf_scores"
TREE_TABLE = "framework_tree"


def framework_tree(nodes_by_unit_type: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """One table of every unit type's framework: unit_type, code, parent_code ('composite' for the
    level-1 nodes), level, weight, is_leaf."""
    return pl.concat(
        [
            nodes.select(
                pl.lit(unit_type).alias("unit_type"),
                "code",
                pl.col("parent_code").fill_null(COMPOSITE_CODE),
                pl.col("level").cast(pl.Int32),
                "weight",
                "is_leaf",
            )
            for unit_type, nodes in nodes_by_unit_type.items()
        ]
    )


# ------------------------------------------------------------------------------------------ DuckDB


def duckdb_sql(keys: Sequence[str], depth: int) -> str:
    """The aggregation as one SQL statement: the leaf grid, then one CTE per tier."""
    key_list = ", ".join(keys)
    on_keys = " AND ".join(f"s.{key} = u.{key}" for key in keys)
    ctes = [
        f"units AS (SELECT DISTINCT {key_list} FROM {LEAF_TABLE})",
        f"""tier{depth} AS (
    SELECT {", ".join(f"u.{key}" for key in keys)}, t.code, t.level, s.score
    FROM units u
    JOIN {TREE_TABLE} t ON t.unit_type = u.unit_type AND t.is_leaf
    LEFT JOIN {LEAF_TABLE} s ON {on_keys} AND s.indicator_code = t.code)""",
    ]
    computed = [f"tier{depth}"]
    for level in range(depth, 0, -1):
        # Leaves may sit above the deepest level, so a tier's children come from every computed CTE.
        children = " UNION ALL ".join(
            f"SELECT {key_list}, code, score FROM {name} WHERE level = {level}" for name in computed
        )
        ctes.append(f"""tier{level - 1} AS (
    SELECT {", ".join(f"c.{key}" for key in keys)}, t.parent_code AS code, {level - 1} AS level,
           CASE WHEN bool_or(c.score IS NULL) THEN NULL ELSE sum(t.weight * c.score) END AS score
    FROM ({children}) c
    JOIN {TREE_TABLE} t ON t.unit_type = c.unit_type AND t.code = c.code
    GROUP BY ALL)""")
        computed.append(f"tier{level - 1}")
    selects = " UNION ALL ".join(
        f"SELECT {key_list}, code AS node_code, level::INTEGER AS level, score FROM {name}"
        for name in computed
    )
    return "WITH " + ",\n".join(ctes) + "\n" + selects


def duckdb_aggregate(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    """Run the statement over the registered tables; the result as a polars frame (as the pipeline
    would need it)."""
    return con.sql(sql).pl()


def duckdb_connection(leaf_scores: pl.DataFrame, tree: pl.DataFrame) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the leaf table and the tree registered (Arrow, no copy)."""
    con = duckdb.connect()
    con.register(LEAF_TABLE, leaf_scores)
    con.register(TREE_TABLE, tree)
    return con


# ------------------------------------------------------------------------------------------ pandas


def pandas_aggregate(
    leaf_scores: pd.DataFrame, tree: pd.DataFrame, keys: Sequence[str], depth: int
) -> pd.DataFrame:
    """The aggregation in pandas: the leaf grid by merges, then per tier a merge with the tree and a
    ``groupby`` sum (a parent is missing when any child is)."""
    import pandas as pd

    keys = list(keys)
    units = leaf_scores[keys].drop_duplicates()
    leaves = tree.loc[tree["is_leaf"], ["unit_type", "code", "level"]]
    scores = leaf_scores.rename(columns={"indicator_code": "code"})[[*keys, "code", "score"]]
    grid = units.merge(leaves, on="unit_type").merge(scores, on=[*keys, "code"], how="left")
    links = tree[["unit_type", "code", "parent_code", "weight"]]
    computed = [grid]
    for level in range(depth, 0, -1):
        children = pd.concat([frame[frame["level"] == level] for frame in computed], ignore_index=True)
        children = children.merge(links, on=["unit_type", "code"])
        children["weighted"] = children["weight"] * children["score"]
        children["missing"] = children["score"].isna()
        parents = children.groupby([*keys, "parent_code"], as_index=False, sort=False).agg(
            score=("weighted", "sum"), missing=("missing", "any")
        )
        parents["score"] = parents["score"].mask(parents["missing"])
        computed.append(
            parents.rename(columns={"parent_code": "code"}).assign(level=level - 1)[
                [*keys, "code", "level", "score"]
            ]
        )
    return pd.concat(computed, ignore_index=True).rename(columns={"code": "node_code"})


# ------------------------------------------------------------------------------------------- check


def compare(
    reference: pl.DataFrame, other: pl.DataFrame, keys: Sequence[str]
) -> dict[str, float | int | bool]:
    """Do two results hold the same rows (keys, node, level) and the same scores? The largest absolute
    difference of a score, and whether missing scores are missing in both."""
    on = [*keys, "node_code"]
    joined = reference.join(
        other.with_columns(pl.col("level").cast(pl.Int32)), on=on, how="full", suffix="_other", coalesce=True
    )
    both = joined.filter(pl.col("level").is_not_null() & pl.col("level_other").is_not_null())
    return {
        "rows": reference.height,
        "rows_other": other.height,
        "same_rows": both.height == reference.height == other.height
        and (both["level"] == both["level_other"]).all(),
        "same_missing": bool((both["score"].is_null() == both["score_other"].is_null()).all()),
        "max_abs_difference": number_or_none((both["score"] - both["score_other"]).abs().max()) or 0.0,
    }
