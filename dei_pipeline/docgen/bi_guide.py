"""The generated parts of docs/bi.md: what each mart holds, read from the ``COMMENT ON`` text of the
serving snapshot (so the guide cannot drift from the tables), and the example queries, which the
tests run against the sample. The hand-written rest of the guide sits between the generated blocks,
each delimited by ``<!-- BEGIN GENERATED: <name> -->`` and ``<!-- END GENERATED: <name> -->``."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from dei_pipeline.docgen.generated_blocks import update_generated_sections
from dei_pipeline.warehouse import table_documentation

GENERATOR = "scripts/bi_guide.py"


@dataclass(frozen=True)
class ExampleQuery:
    slug: str
    question: str
    marts: tuple[str, ...]
    sql: str


EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "top_n_with_tier_names",
        "Which are the ten best cities of an edition, with their tier's Chinese name? (2020; `rank <= 10` keeps "
        "every city tied at rank 10, so it can return more than ten rows)",
        ("marts.city_index", "marts.dim_unit", "marts.dim_tier"),
        """\
SELECT c.rank, c.name_zh AS city, u.name_en, c.province, round(c.score, 1) AS score,
       t.name_zh AS tier, t.score_range
FROM marts.city_index AS c
JOIN marts.dim_unit AS u USING (unit_code)
JOIN marts.dim_tier AS t ON t.tier_code = c.tier
WHERE c.survey_year = 2020 AND c.rank <= 10
ORDER BY c.rank, c.name_zh""",
    ),
    ExampleQuery(
        "region_members",
        "Which cities make up each key region, by its Chinese name, and how did each score? (2020; 香港 and 澳门 "
        "are members without a score)",
        ("marts.dim_region", "marts.dim_region_member", "marts.city_index", "marts.dim_tier"),
        """\
SELECT r.name_zh AS region, m.member_order, m.member_name_zh AS member,
       c.rank, round(c.score, 1) AS score, t.name_zh AS tier
FROM marts.dim_region AS r
JOIN marts.dim_region_member AS m USING (region_code)
LEFT JOIN marts.city_index AS c ON c.survey_year = m.survey_year AND c.unit_code = m.unit_code
LEFT JOIN marts.dim_tier AS t ON t.tier_code = c.tier
WHERE m.survey_year = 2020
ORDER BY r.region_code, m.member_order""",
    ),
    ExampleQuery(
        "tier_migration",
        "How many cities moved from each tier to each other tier between two editions? (2019 to 2020, the "
        "cities ranked in both)",
        ("marts.city_yoy", "marts.dim_tier"),
        """\
SELECT prev.name_zh AS tier_2019, now.name_zh AS tier_2020, count(*) AS cities
FROM marts.city_yoy AS y
JOIN marts.dim_tier AS prev ON prev.tier_code = y.prev_tier
JOIN marts.dim_tier AS now ON now.tier_code = y.tier
WHERE y.survey_year = 2020 AND y.prev_year = 2019 AND y.status = 'returning'
GROUP BY prev.tier_order, prev.name_zh, now.tier_order, now.name_zh
ORDER BY prev.tier_order, now.tier_order""",
    ),
    ExampleQuery(
        "unit_subindex_profile",
        "What is one unit's profile over the indicator tree, with the indicators' names and weights, and its "
        "rank among the cities on each? (杭州, 2020, the composite and levels 1-2)",
        ("marts.subindex_scores", "marts.dim_indicator", "marts.dim_unit"),
        """\
SELECT i.level, i.name_zh AS indicator, i.name_en, round(i.effective_weight, 3) AS weight_in_composite,
       round(s.score, 1) AS score,
       rank() OVER (PARTITION BY s.node_code ORDER BY round(s.score, 1) DESC) AS rank_among_cities
FROM marts.subindex_scores AS s
JOIN marts.dim_indicator AS i USING (survey_year, unit_type, node_code)
WHERE s.survey_year = 2020 AND s.unit_type = 'city' AND i.level <= 2
QUALIFY s.unit_code = (SELECT unit_code FROM marts.dim_unit WHERE name_zh = '杭州')
ORDER BY i.sort_order""",
    ),
    ExampleQuery(
        "county_top_n_by_kind",
        "Which are the five best county units of each kind, 市辖区 and 县市? (2020; county units are ranked "
        "within their kind, and two 县市 tie at rank 5, so this returns eleven rows)",
        ("marts.county_index", "marts.dim_unit"),
        """\
SELECT u.kind_zh, u.kind_en, c.rank, c.name_zh AS unit, u.prefecture_zh, c.province,
       round(c.score, 1) AS score
FROM marts.county_index AS c
JOIN marts.dim_unit AS u USING (unit_code)
WHERE c.survey_year = 2020 AND c.rank <= 5
ORDER BY u.kind, c.rank, c.name_zh""",
    ),
    ExampleQuery(
        "top_movers",
        "Which cities climbed or fell most in the ranking since the previous edition? (2020 against 2019)",
        ("marts.city_yoy", "marts.city_index"),
        """\
SELECT c.name_zh AS city, c.province, y.prev_rank, y.rank, y.rank_change,
       round(y.prev_score, 1) AS prev_score, round(y.score, 1) AS score, y.prev_tier, y.tier
FROM marts.city_yoy AS y
JOIN marts.city_index AS c USING (survey_year, unit_code)
WHERE y.survey_year = 2020 AND y.status = 'returning'  -- ranked in both editions
ORDER BY abs(y.rank_change) DESC, y.rank
LIMIT 10""",
    ),
    ExampleQuery(
        "region_tier_mix",
        "How has the tier mix of a region's cities changed over the editions? (长三角, yangtze_delta)",
        ("marts.region_tier_mix", "marts.region_rollup"),
        """\
SELECT m.survey_year,
       CAST(sum(m.n_cities) FILTER (WHERE m.tier = 'tier1') AS INTEGER)     AS "一线",
       CAST(sum(m.n_cities) FILTER (WHERE m.tier = 'new_tier1') AS INTEGER) AS "新一线",
       CAST(sum(m.n_cities) FILTER (WHERE m.tier = 'tier2') AS INTEGER)     AS "二线",
       CAST(sum(m.n_cities) FILTER (WHERE m.tier = 'tier3') AS INTEGER)     AS "三线",
       CAST(sum(m.n_cities) FILTER (WHERE m.tier = 'tier4') AS INTEGER)     AS "四线",
       any_value(r.n_scored) AS scored_cities,
       round(any_value(r.gdp_weighted_score), 1) AS gdp_weighted_score
FROM marts.region_tier_mix AS m
JOIN marts.region_rollup AS r USING (survey_year, region)
WHERE m.region = 'yangtze_delta'
GROUP BY m.survey_year
ORDER BY m.survey_year""",
    ),
    ExampleQuery(
        "city_profile",
        "What does one city look like in an edition: its composite and level-1 scores, its rank in each, "
        "and the all-city average? (杭州, 2020)",
        ("marts.subindex_scores", "marts.city_index"),
        """\
WITH city_scores AS (
    SELECT s.survey_year, s.unit_code, s.level, s.node_code, s.name_zh, s.score,
           rank() OVER (PARTITION BY s.survey_year, s.node_code ORDER BY s.score DESC) AS rank_among_cities,
           avg(s.score) OVER (PARTITION BY s.survey_year, s.node_code) AS all_city_mean
    FROM marts.subindex_scores AS s
    WHERE s.unit_type = 'city' AND s.level <= 1 AND s.survey_year = 2020
)
SELECT c.name_zh AS city, c.tier, s.name_zh AS indicator, round(s.score, 1) AS score,
       s.rank_among_cities, round(s.all_city_mean, 1) AS all_city_mean,
       round(s.score - s.all_city_mean, 1) AS above_mean
FROM city_scores AS s
JOIN marts.city_index AS c USING (survey_year, unit_code)
WHERE c.name_zh = '杭州'
ORDER BY s.level, s.score DESC""",
    ),
    ExampleQuery(
        "tier_changes",
        "Which cities changed tier since the previous edition, up or down? (2020 against 2019)",
        ("marts.city_yoy", "marts.city_index", "marts.tier_summary"),
        """\
WITH tier_order AS (SELECT DISTINCT tier, tier_order FROM marts.tier_summary)
SELECT c.name_zh AS city, y.prev_tier, y.tier,
       CASE WHEN now_tier.tier_order < prev_tier.tier_order THEN 'up' ELSE 'down' END AS direction,
       y.prev_rank, y.rank, round(y.prev_score, 1) AS prev_score, round(y.score, 1) AS score
FROM marts.city_yoy AS y
JOIN marts.city_index AS c USING (survey_year, unit_code)
JOIN tier_order AS now_tier ON now_tier.tier = y.tier
JOIN tier_order AS prev_tier ON prev_tier.tier = y.prev_tier
WHERE y.survey_year = 2020 AND y.status = 'returning' AND y.tier <> y.prev_tier
ORDER BY direction DESC, now_tier.tier_order, y.rank""",
    ),
    ExampleQuery(
        "industry_averages",
        "Which industries are most digitalised, and how far ahead are the ten best cities? (2020, the white "
        "paper's 数字经济产业篇)",
        ("marts.subindex_scores", "marts.framework", "marts.city_index"),
        """\
WITH industries AS (
    SELECT survey_year, node_code, name_zh
    FROM marts.framework
    WHERE unit_type = 'city' AND parent_code IN ('industry_sectors', 'industry_digital')
), ranked AS (
    SELECT s.survey_year, s.node_code, s.score,
           row_number() OVER (PARTITION BY s.survey_year, s.node_code ORDER BY s.score DESC) AS position
    FROM marts.subindex_scores AS s
    JOIN marts.city_index AS c USING (survey_year, unit_code)  -- the ranked cities
    WHERE s.unit_type = 'city'
)
SELECT i.name_zh AS industry, round(avg(r.score), 1) AS average,
       round(avg(r.score) FILTER (WHERE r.position <= 10), 1) AS top10_average,
       count(*) AS cities
FROM ranked AS r
JOIN industries AS i USING (survey_year, node_code)
WHERE r.survey_year = 2020
GROUP BY i.name_zh
ORDER BY average DESC""",
    ),
)


def _cell(text: str | None) -> str:
    """Markdown table cell text: pipes escaped, line breaks flattened."""
    return "—" if not text else text.replace("|", "\\|").replace("\n", " ")


def marts_markdown(con: duckdb.DuckDBPyConnection) -> str:
    """One section per table of the ``marts`` schema with its comment and a table of its columns."""
    documentation = table_documentation(con, "marts")
    if documentation.height == 0:
        raise ValueError("no tables in the schema marts: is this the serving snapshot or the warehouse?")
    tables = documentation.select("table_name", "table_comment").unique(maintain_order=True)
    parts = ["| mart | what it holds |", "|---|---|"]
    parts += [f"| [`marts.{t}`](#marts{t}) | {_cell(c)} |" for t, c in tables.iter_rows()]
    for table_name, table_comment in tables.iter_rows():
        columns = documentation.filter(pl.col("table_name") == table_name)
        parts += [
            "",
            f"### `marts.{table_name}`",
            "",
            _cell(table_comment),
            "",
            "| column | type | meaning |",
            "|---|---|---|",
        ]
        parts += [
            f"| `{name}` | {data_type} | {_cell(comment)} |"
            for name, data_type, comment in columns.select(
                "column_name", "data_type", "column_comment"
            ).iter_rows()
        ]
    return "\n".join(parts)


def examples_markdown(queries: tuple[ExampleQuery, ...] = EXAMPLE_QUERIES) -> str:
    parts: list[str] = []
    for number, query in enumerate(queries, start=1):
        marts = ", ".join(f"`{m}`" for m in query.marts)
        parts += [
            f"### {number}. {query.question}",
            "",
            f"Marts: {marts}",
            "",
            "```sql",
            query.sql + ";",
            "```",
            "",
        ]
    return "\n".join(parts).rstrip()


def generated_sections(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {"marts": marts_markdown(con), "examples": examples_markdown()}


def update_bi_guide(document: str, sections: dict[str, str]) -> str:
    """docs/bi.md with its generated blocks replaced by ``sections``."""
    return update_generated_sections(document, sections, GENERATOR)
