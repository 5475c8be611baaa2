"""The City Digital Economy Index dashboards (Streamlit), over the BI serving snapshot opened read-only.

    make dashboards            # http://127.0.0.1:8501 (DEI_SERVING names another snapshot)

Every label comes from the dimension marts (tier and region names, English city names), so the
dashboards hold no list of codes. The snapshot is re-read when the pipeline publishes a new one.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

DEFAULT_SERVING = Path(__file__).resolve().parents[1] / "data" / "warehouse" / "dei_serving.duckdb"


def serving_path() -> Path:
    return Path(os.environ.get("DEI_SERVING") or DEFAULT_SERVING)


@st.cache_data(show_spinner=False)
def query(path: str, published: float, sql: str, params: tuple = ()) -> pd.DataFrame:
    """One query's rows; cached per snapshot file (its modification time), so a new snapshot is read."""
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(sql, list(params)).df()


def styled(frame: pd.DataFrame, *scores: str) -> Styler:
    """A table as printed: scores to one decimal (the white paper's), no row numbers."""
    return frame.style.format({column: "{:.1f}" for column in scores}).hide(axis="index")


def main() -> None:
    st.set_page_config(page_title="城市数字经济指数 · City Digital Economy Index", layout="wide")
    path = serving_path()
    if not path.exists():
        st.error(f"No serving snapshot at {path}: run `make run` first (DEI_SERVING names another file).")
        st.stop()

    def rows(sql: str, *params: object) -> pd.DataFrame:
        return query(str(path), path.stat().st_mtime, sql, params)

    st.title("城市数字经济指数 · City Digital Economy Index")
    info = rows("SELECT editions, data_note, published_at FROM marts.snapshot_info").iloc[0]
    if info["data_note"]:
        st.warning(info["data_note"])
    editions = [int(year) for year in info["editions"]]
    edition = st.sidebar.selectbox("Edition 年度", editions, index=len(editions) - 1)
    top_n = st.sidebar.slider("Cities shown", 10, 148, 30, step=10)
    st.caption(
        f"Snapshot published {info['published_at']:%Y-%m-%d %H:%M} UTC · editions {', '.join(map(str, editions))}"
    )

    st.header(f"City ranking {edition}")
    ranking = rows(
        """
        SELECT c.rank AS "排名 Rank", c.name_zh AS "城市 City", u.name_en AS "English", c.province AS "省份 Province",
               round(c.score, 1) AS "得分 Score", t.name_zh AS "城市画像 Tier"
        FROM marts.city_index AS c
        JOIN marts.dim_unit AS u USING (unit_code)
        JOIN marts.dim_tier AS t ON t.tier_code = c.tier
        WHERE c.survey_year = $1 AND c.rank <= $2
        ORDER BY c.rank, c.name_zh
        """,
        edition,
        top_n,
    )
    st.caption("Ties share the best rank, as in the white paper, so a top N can hold more than N cities.")
    st.table(styled(ranking, "得分 Score"))

    tiers = rows(
        """
        SELECT t.name_zh AS tier, t.tier_order, count(c.unit_code) AS cities
        FROM marts.dim_tier AS t LEFT JOIN marts.city_index AS c ON c.tier = t.tier_code AND c.survey_year = $1
        GROUP BY t.name_zh, t.tier_order ORDER BY t.tier_order
        """,
        edition,
    )
    st.subheader("Cities per tier")
    st.bar_chart(tiers, x="tier", y="cities", sort=False)

    st.header(f"Key regions {edition}")
    regions = rows(
        """
        SELECT d.name_zh AS "区域 Region", d.name_en AS "English", r.n_members AS "Members", r.n_scored AS "Scored",
               round(r.gdp_weighted_score, 1) AS "GDP-weighted score", round(r.mean_score, 1) AS "Mean score"
        FROM marts.region_rollup AS r JOIN marts.dim_region AS d ON d.region_code = r.region
        WHERE r.survey_year = $1
        ORDER BY r.gdp_weighted_score DESC
        """,
        edition,
    )
    st.table(styled(regions, "GDP-weighted score", "Mean score"))
    members = rows(
        """
        SELECT r.name_zh AS region, string_agg(m.member_name_zh || CASE WHEN m.is_scored THEN '' ELSE ' (not scored)' END, '、'
                                               ORDER BY m.member_order) AS members
        FROM marts.dim_region_member AS m JOIN marts.dim_region AS r USING (region_code)
        WHERE m.survey_year = $1
        GROUP BY r.name_zh, r.region_code ORDER BY r.region_code
        """,
        edition,
    )
    for member in members.itertuples():
        st.markdown(f"**{member.region}**: {member.members}")


main()
