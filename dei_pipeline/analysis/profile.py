"""Unit profile: a unit's strengths and weaknesses relative to its peers.

Peers are the units of its tier (cities: 一线, 新一线, ...) or of its kind (county units: 市辖区 or 县市),
in the same edition. For every indicator node the profile gives the unit's score, its peers' mean and
standard deviation, the gap to the mean in standard deviations (z) and its rank among the peers (ties
share the best rank, on the displayed score, as the index ranks). Strengths are the level-3
indicators with the highest z, weaknesses those with the lowest (five each, at most half of the unit's
indicators each): where the unit stands out from the
units it is usually compared with, whatever its overall level (a 四线 city's strengths may still be
below the overall average). z needs at least two peers that differ; a tier of one city has no profile.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dei_pipeline.ranking import rank_expr
from dei_pipeline.terminal import text_table
from dei_pipeline.warehouse import open_warehouse, read_table

PROFILE_EXTREMES = 5  # strengths and weaknesses listed per unit
STRENGTH, WEAKNESS = "strength", "weakness"


def unit_profiles(
    node_scores: pl.DataFrame, peers: pl.DataFrame, leaf_codes: list[str], decimals: int
) -> pl.DataFrame:
    """``marts.unit_profile`` rows of one edition and unit type (without survey_year and unit_type).

    ``node_scores``: unit_code, node_code, level, score (levels 1-3; the composite is left out).
    ``peers``: unit_code, peer_group of the ranked units. ``leaf_codes``: the framework's indicators.
    """
    # Units and nodes keyed by their positions in code order: integer keys sort and group in the codes'
    # order, much faster than the strings.
    scored = (
        node_scores.filter(pl.col("level") > 0)
        .select("unit_code", "node_code", pl.col("level").cast(pl.Int32), pl.col("score").cast(pl.Float64))
        .join(
            peers.select("unit_code", "peer_group").sort("unit_code").with_row_index("unit"),
            on="unit_code",
            how="inner",
        )
    )
    nodes = scored["node_code"].unique().sort()
    keyed = scored.with_columns(
        pl.col("node_code").cast(pl.Enum(nodes)).to_physical().cast(pl.UInt32).alias("node")
    ).sort(
        pl.col("unit") * len(nodes) + pl.col("node")  # (unit, node) as one integer: a cheap sort
    )
    # Rows by unit, then node: each peer group's rows of a node in unit order, a fixed order for the
    # window sums (identical reruns), and each unit's rows in node order for the positions below.
    by_peer_node = ["peer_group", "node"]
    profiled = keyed.with_columns(
        pl.col("score").is_not_null().sum().over(by_peer_node).cast(pl.Int32).alias("peer_n"),
        pl.col("score").mean().over(by_peer_node).alias("peer_mean"),
        pl.col("score").std().over(by_peer_node).alias("peer_sd"),
        pl.when(pl.col("score").is_not_null())
        .then(rank_expr(pl.col("score"), decimals).over(by_peer_node))
        .alias("peer_rank"),
    ).with_columns(
        (pl.col("score") - pl.col("peer_mean")).alias("gap_to_peer_mean"),
        pl.when(pl.col("peer_sd") > 0)
        .then((pl.col("score") - pl.col("peer_mean")) / pl.col("peer_sd"))
        .alias("peer_z"),
    )
    # Positions of each indicator in the unit's own ordering by z (ties broken by code, the rows' order,
    # for stable output). At most half of a unit's indicators are strengths and half weaknesses.
    leaf_z = pl.when(pl.col("node_code").is_in(leaf_codes)).then(pl.col("peer_z"))
    return (
        profiled.with_columns(
            leaf_z.rank("ordinal", descending=True).over("unit").cast(pl.Int32).alias("from_top"),
            leaf_z.rank("ordinal").over("unit").cast(pl.Int32).alias("from_bottom"),
            pl.min_horizontal(pl.lit(PROFILE_EXTREMES), leaf_z.count().over("unit") // 2).alias("listed"),
        )
        .with_columns(
            pl.when(pl.col("from_top") <= pl.col("listed"))
            .then(pl.lit(STRENGTH))
            .when(pl.col("from_bottom") <= pl.col("listed"))
            .then(pl.lit(WEAKNESS))
            .alias("role"),
        )
        .with_columns(
            pl.when(pl.col("role") == STRENGTH)
            .then(pl.col("from_top"))
            .when(pl.col("role") == WEAKNESS)
            .then(pl.col("from_bottom"))
            .alias("role_rank"),
        )
        # (unit, level, node) as one integer: a single-key sort, much cheaper than one by three columns.
        .sort((pl.col("unit") * (pl.col("level").max() + 1) + pl.col("level")) * len(nodes) + pl.col("node"))
        .select(
            "unit_code",
            "peer_group",
            "node_code",
            "level",
            "score",
            "peer_n",
            "peer_mean",
            "peer_sd",
            "gap_to_peer_mean",
            "peer_z",
            pl.col("peer_rank").cast(pl.Int32),
            "role",
            "role_rank",
        )
    )


# -------------------------------------------------------------------------------------------- CLI


def _find_unit(profiles: pl.DataFrame, unit: str) -> pl.DataFrame:
    """The (unit_type, unit_code, unit_name_zh) rows a query names: exact code or name, else a name
    that contains it."""
    units = profiles.select("unit_type", "unit_code", "unit_name_zh").unique()
    exact = units.filter((pl.col("unit_code") == unit) | (pl.col("unit_name_zh") == unit))
    return exact if exact.height else units.filter(pl.col("unit_name_zh").str.contains(unit, literal=True))


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_profile(profile: pl.DataFrame, index_row: dict | None, uncertainty_row: dict | None) -> str:
    """The text ``dei profile`` prints for one unit (rows of marts.unit_profile of one unit)."""
    first = profile.row(0, named=True)
    lines = [
        f"== {first['unit_name_zh']} ({first['unit_code']}, {first['unit_type']}), edition {first['survey_year']} =="
    ]
    if index_row is not None:
        group = f"tier {index_row['tier']}" if index_row.get("tier") else f"kind {index_row.get('kind')}"
        lines.append(
            f"Score {_number(index_row['score'])}, rank {index_row['rank']}, {group}; peers: {first['peer_group']} ({first['peer_n']} units)"
        )
    if uncertainty_row is not None:
        lines.append(
            f"Rank under the Monte Carlo of weights and aggregation ({uncertainty_row['n_draws']:,} draws): median "
            f"{uncertainty_row['median_rank']}, 90% interval {uncertainty_row['rank_p05']}-{uncertainty_row['rank_p95']}"
            + (
                f", probability of staying in its tier {uncertainty_row['prob_same_tier']:.0%}"
                if uncertainty_row.get("prob_same_tier") is not None
                else ""
            )
        )

    def rows(frame: pl.DataFrame) -> list[list[str]]:
        return [
            [
                r["node_name_zh"] or r["node_code"],
                _number(r["score"]),
                _number(r["peer_mean"]),
                _number(r["gap_to_peer_mean"], 1),
                _number(r["peer_z"], 2),
                f"{r['peer_rank']}/{r['peer_n']}" if r["peer_rank"] is not None else "-",
            ]
            for r in frame.iter_rows(named=True)
        ]

    header = ["indicator", "score", "peer mean", "gap", "z", "peer rank"]
    lines.append(
        "\nLevel-1 sub-indices:\n"
        + text_table(header, rows(profile.filter(pl.col("level") == 1).sort("node_code")))
    )
    for role, title in (
        (STRENGTH, "Strengths (indicators furthest above the peers)"),
        (WEAKNESS, "Weaknesses (furthest below)"),
    ):
        chosen = profile.filter(pl.col("role") == role).sort("role_rank")
        lines.append(
            f"\n{title}:\n"
            + (text_table(header, rows(chosen)) if chosen.height else "  none (no peer to compare with)")
        )
    return "\n".join(lines)


def print_profile(unit: str, year: int, warehouse: Path) -> int:
    """``dei profile``: print a unit's profile in an edition from the warehouse. Returns the exit
    status: 0, 1 when the unit or the edition is not there, 2 when the name is ambiguous."""
    if not warehouse.exists():
        print(f"dei profile: no warehouse at {warehouse}; run `dei materialize` first")
        return 1
    with open_warehouse(warehouse, read_only=True) as con:
        present = {
            f"{s}.{t}" for s, t in con.sql("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        }
        if "marts.unit_profile" not in present:
            print("dei profile: the warehouse has no marts.unit_profile yet; run `dei materialize` first")
            return 1
        profiles = read_table(con, "marts.unit_profile", [year])
        if profiles.height == 0:
            print(f"dei profile: no profile for edition {year} (materialize it first)")
            return 1
        matches = _find_unit(profiles, unit)
        if matches.height == 0:
            print(f"dei profile: no unit named or coded {unit!r} in edition {year}")
            return 1
        if matches.height > 1:
            names = ", ".join(
                f"{r['unit_name_zh']} ({r['unit_code']})"
                for r in matches.sort("unit_code").iter_rows(named=True)
            )
            print(
                f"dei profile: {unit!r} matches {matches.height} units: {names}; give the full name or the code"
            )
            return 2
        unit_type, unit_code = matches.row(0)[:2]
        profile = profiles.filter((pl.col("unit_type") == unit_type) & (pl.col("unit_code") == unit_code))
        index_table = "marts.city_index" if unit_type == "city" else "marts.county_index"
        index_rows = read_table(con, index_table, [year]).filter(pl.col("unit_code") == unit_code)
        uncertainty_rows = (
            read_table(con, "marts.rank_uncertainty", [year]).filter(
                (pl.col("unit_type") == unit_type) & (pl.col("unit_code") == unit_code)
            )
            if "marts.rank_uncertainty" in present
            else pl.DataFrame()
        )
    print(
        format_profile(
            profile,
            index_rows.row(0, named=True) if index_rows.height else None,
            uncertainty_rows.row(0, named=True) if uncertainty_rows.height else None,
        )
    )
    return 0
