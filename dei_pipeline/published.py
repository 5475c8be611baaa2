"""Published figures of a white-paper edition (``data/published/<edition>/``).

``load_published(data_dir, edition)`` reads the transcribed tables (CSV), the numeric statements
(``statements.yaml``) and the recorded contradictions (``contradictions.yaml``) of one edition,
validates them and returns a frozen :class:`Published`; it returns ``None`` when the edition has no
published folder. ``data_dir`` is the project's ``data/`` directory.

A broken rule raises :class:`PublishedError` whose message names the file, the 1-based line (a CSV
header is line 1), the column, the value and the rule, e.g.
``data/published/2020/city_ranking.csv line 7, column score: value '7o.1' is not a number``.

The files are transcriptions of the white paper; nothing here reads the white paper itself. See
``data/published/<edition>/README.md`` for provenance.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

PUBLISHED_SUBDIR = "published"
SCORE_MIN = 0.0
SCORE_MAX = 100.0

# column kinds: "str" (non-empty text), "opt_str" (may be empty), "int" (positive integer),
# "score" (number in [0, 100])
_INT, _STR, _OPT_STR, _SCORE = "int", "str", "opt_str", "score"
_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True)
class TableSpec:
    """Columns (in file order) with their kind, the column sets that must be unique, and whether
    ``rank`` must run 1..n."""

    columns: tuple[tuple[str, str], ...]
    unique: tuple[tuple[str, ...], ...]
    contiguous_rank: bool = False


_RANKING_UNIT = TableSpec(
    columns=(("rank", _INT), ("province_zh", _STR), ("name_zh", _STR), ("score", _SCORE)),
    unique=(("rank",), ("name_zh",)),
    contiguous_rank=True,
)

TABLES: dict[str, TableSpec] = {
    "city_ranking": TableSpec(
        columns=(("rank", _INT), ("name_zh", _STR), ("score", _SCORE)),
        unique=(("rank",), ("name_zh",)),
        contiguous_rank=True,
    ),
    "district_ranking": _RANKING_UNIT,
    "county_ranking": _RANKING_UNIT,
    "tier_counts": TableSpec(
        columns=(("tier_code", _STR), ("name_zh", _STR), ("count", _INT)),
        unique=(("tier_code",), ("name_zh",)),
    ),
    "tier_lists": TableSpec(
        columns=(("tier_code", _STR), ("name_zh", _STR), ("position", _INT)),
        unique=(("name_zh",), ("tier_code", "position")),
    ),
    "regions": TableSpec(
        columns=(
            ("region_code", _STR),
            ("name_zh", _STR),
            ("n_members", _INT),
            ("gdp_weighted_score", _SCORE),
        ),
        unique=(("region_code",), ("name_zh",)),
    ),
    "level1_averages": TableSpec(
        columns=(("node_code", _STR), ("name_zh", _STR), ("average", _SCORE)),
        unique=(("node_code",), ("name_zh",)),
    ),
    "industry_averages": TableSpec(
        columns=(("node_code", _STR), ("name_zh", _STR), ("average", _SCORE), ("top10_average", _SCORE)),
        unique=(("node_code",), ("name_zh",)),
    ),
    "industry_examples": TableSpec(
        columns=(
            ("name_zh", _STR),
            ("node_code", _STR),
            ("score", _SCORE),
            ("description_zh", _STR),
            ("note", _OPT_STR),
        ),
        unique=(("name_zh", "node_code"),),
    ),
}

_POLARS_TYPES: dict[str, type[pl.DataType]] = {
    _INT: pl.Int64,
    _STR: pl.String,
    _OPT_STR: pl.String,
    _SCORE: pl.Float64,
}

STATEMENT_REQUIRED: tuple[str, ...] = ("id", "value", "unit", "scope", "quote", "derived")
CONTRADICTION_REQUIRED: tuple[str, ...] = (
    "id",
    "kind",
    "severity",
    "summary",
    "statements",
    "pipeline_treatment",
)
CONTRADICTION_STATEMENT_REQUIRED: tuple[str, ...] = ("source", "quote", "says")


class PublishedError(ValueError):
    """A published file breaks a rule; the message names file, line, column, value and rule."""

    def __init__(
        self,
        file: Path,
        rule: str,
        *,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.value = value
        self.rule = rule
        where = str(file) if line is None else f"{file} line {line}"
        what = "" if column is None else f", column {column}"
        shown = "" if value is None else f"value {value!r} "
        super().__init__(f"{where}{what}: {shown}{rule}")


@dataclass(frozen=True)
class Published:
    """The validated published figures of one edition. Tables keep the files' row order."""

    edition: int
    directory: Path
    city_ranking: pl.DataFrame
    district_ranking: pl.DataFrame
    county_ranking: pl.DataFrame
    tier_counts: pl.DataFrame
    tier_lists: pl.DataFrame
    regions: pl.DataFrame
    level1_averages: pl.DataFrame
    industry_averages: pl.DataFrame
    industry_examples: pl.DataFrame
    statements: dict[str, dict[str, Any]]
    contradictions: list[dict[str, Any]]


# ---------------------------------------------------------------- locating


def published_dir(data_dir: Path, edition: int) -> Path:
    return Path(data_dir) / PUBLISHED_SUBDIR / f"{edition:04d}"


def has_published(data_dir: Path, edition: int) -> bool:
    """Whether the edition has a published folder (``data/published/<edition>/``)."""
    return published_dir(data_dir, edition).is_dir()


# ---------------------------------------------------------------- CSV


def _parse_cell(path: Path, line: int, column: str, kind: str, raw: str) -> int | float | str | None:
    text = raw.strip()
    if text != raw:
        raise PublishedError(path, "has leading or trailing whitespace", line=line, column=column, value=raw)
    if kind == _OPT_STR:
        return text or None
    if text == "":
        raise PublishedError(path, "is empty", line=line, column=column, value=raw)
    if kind == _STR:
        return text
    if kind == _INT:
        if _INTEGER.fullmatch(text) is None or int(text) < 1:
            raise PublishedError(path, "is not a positive integer", line=line, column=column, value=raw)
        return int(text)
    if _DECIMAL.fullmatch(text) is None:
        raise PublishedError(path, "is not a number", line=line, column=column, value=raw)
    score = float(text)
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise PublishedError(
            path, f"is outside [{SCORE_MIN:g}, {SCORE_MAX:g}]", line=line, column=column, value=raw
        )
    return score


def _read_rows(path: Path, expected: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Rows with their physical line numbers; checks the header and one record per line."""
    if not path.is_file():
        raise PublishedError(path, "file is missing")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise PublishedError(path, "file is empty", line=1) from None
    for column in expected:
        if column not in header:
            raise PublishedError(
                path, f"missing column (header is {','.join(header)})", line=1, column=column
            )
    for column in header:
        if column not in expected:
            raise PublishedError(
                path, f"unexpected column (expected {','.join(expected)})", line=1, column=column
            )
    if list(header) != list(expected):
        raise PublishedError(
            path, f"columns must be in the order {','.join(expected)}", line=1, value=",".join(header)
        )
    rows: list[tuple[int, list[str]]] = []
    previous_line = reader.line_num
    for record in reader:
        line = reader.line_num
        if line != previous_line + 1:
            raise PublishedError(path, "a record spans several lines", line=previous_line + 1)
        previous_line = line
        if not record:
            continue
        if len(record) != len(expected):
            raise PublishedError(
                path, f"has {len(record)} fields, expected {len(expected)}", line=line, value=",".join(record)
            )
        rows.append((line, record))
    if not rows:
        raise PublishedError(path, "has no data rows")
    return rows


def read_table(path: Path, spec: TableSpec) -> pl.DataFrame:
    """Read and validate one published CSV against its spec."""
    return _read_table_with_lines(path, spec)[0]


def _read_table_with_lines(path: Path, spec: TableSpec) -> tuple[pl.DataFrame, list[int]]:
    """The validated table and the physical line of each of its rows."""
    names = [name for name, _ in spec.columns]
    rows = _read_rows(path, names)
    parsed: list[tuple[int, dict[str, Any]]] = []
    for line, record in rows:
        values = {
            name: _parse_cell(path, line, name, kind, raw) for (name, kind), raw in zip(spec.columns, record)
        }
        parsed.append((line, values))
    for key in spec.unique:
        seen: dict[tuple[Any, ...], int] = {}
        for line, values in parsed:
            value = tuple(values[c] for c in key)
            if value in seen:
                shown = value[0] if len(value) == 1 else value
                raise PublishedError(
                    path,
                    f"duplicate {'+'.join(key)} (first on line {seen[value]})",
                    line=line,
                    column="+".join(key),
                    value=shown,
                )
            seen[value] = line
    if spec.contiguous_rank:
        for expected_rank, (line, values) in enumerate(sorted(parsed, key=lambda lv: lv[1]["rank"]), start=1):
            if values["rank"] != expected_rank:
                raise PublishedError(
                    path,
                    f"ranks must run 1..{len(parsed)} without gaps (rank {expected_rank} is missing)",
                    line=line,
                    column="rank",
                    value=values["rank"],
                )
    schema = {name: _POLARS_TYPES[kind] for name, kind in spec.columns}
    table = pl.DataFrame({name: [v[name] for _, v in parsed] for name in names}, schema=schema)
    return table, [line for line, _ in parsed]


# ---------------------------------------------------------------- YAML


def _read_yaml_list(path: Path) -> list[tuple[int, dict[str, Any], dict[str, int]]]:
    """Items of a top-level YAML list with the line of each item and of each of its keys."""
    if not path.is_file():
        raise PublishedError(path, "file is missing")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PublishedError(
            path, f"is not valid YAML ({exc})", line=None if mark is None else mark.line + 1
        ) from None
    if not isinstance(root, yaml.SequenceNode) or not isinstance(data, list):
        raise PublishedError(path, "must be a YAML list of mappings", line=1)
    items: list[tuple[int, dict[str, Any], dict[str, int]]] = []
    for node, item in zip(root.value, data):
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode) or not isinstance(item, dict):
            raise PublishedError(path, "item is not a mapping", line=line)
        key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
        items.append((line, item, key_lines))
    return items


def _require(
    path: Path, line: int, item: Mapping[str, Any], key_lines: Mapping[str, int], keys: Sequence[str]
) -> None:
    for key in keys:
        if key not in item or item[key] is None or item[key] == "":
            raise PublishedError(path, "missing or empty", line=key_lines.get(key, line), column=key)


def _check_unique_ids(path: Path, items: Sequence[tuple[int, dict[str, Any], dict[str, int]]]) -> None:
    seen: dict[str, int] = {}
    for line, item, key_lines in items:
        ident = item["id"]
        if not isinstance(ident, str):
            raise PublishedError(
                path, "is not a string", line=key_lines.get("id", line), column="id", value=ident
            )
        if ident in seen:
            raise PublishedError(
                path,
                f"duplicate id (first on line {seen[ident]})",
                line=key_lines.get("id", line),
                column="id",
                value=ident,
            )
        seen[ident] = key_lines.get("id", line)


def read_statements(path: Path) -> dict[str, dict[str, Any]]:
    """Numeric statements keyed by id, in file order."""
    items = _read_yaml_list(path)
    for line, item, key_lines in items:
        _require(path, line, item, key_lines, STATEMENT_REQUIRED)
        value = item["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PublishedError(
                path, "is not a number", line=key_lines["value"], column="value", value=value
            )
        if not isinstance(item["derived"], bool):
            raise PublishedError(
                path,
                "must be true or false",
                line=key_lines["derived"],
                column="derived",
                value=item["derived"],
            )
        if item["derived"]:
            _require(path, line, item, key_lines, ("derivation",))
    _check_unique_ids(path, items)
    return {item["id"]: dict(item) for _, item, _ in items}


def read_contradictions(path: Path) -> list[dict[str, Any]]:
    """Recorded contradictions, in file order."""
    items = _read_yaml_list(path)
    for line, item, key_lines in items:
        _require(path, line, item, key_lines, CONTRADICTION_REQUIRED)
        statements = item["statements"]
        if not isinstance(statements, list) or not statements:
            raise PublishedError(
                path, "must be a non-empty list", line=key_lines["statements"], column="statements"
            )
        for statement in statements:
            if not isinstance(statement, dict):
                raise PublishedError(
                    path, "statement is not a mapping", line=key_lines["statements"], column="statements"
                )
            for key in CONTRADICTION_STATEMENT_REQUIRED:
                if not statement.get(key):
                    raise PublishedError(
                        path,
                        f"a statement of '{item['id']}' lacks '{key}'",
                        line=key_lines["statements"],
                        column=f"statements.{key}",
                    )
    _check_unique_ids(path, items)
    return [dict(item) for _, item, _ in items]


# ---------------------------------------------------------------- cross-file rules


def _check_tier_lists(
    directory: Path, tier_counts: pl.DataFrame, tier_lists: pl.DataFrame, lines: list[int]
) -> None:
    """Every tier_code is one of tier_counts.csv; positions run 1..n within each tier, in file order."""
    path = directory / "tier_lists.csv"
    known = set(tier_counts["tier_code"].to_list())
    next_position: dict[str, int] = {}
    for line, (code, position) in zip(lines, tier_lists.select("tier_code", "position").iter_rows()):
        if code not in known:
            raise PublishedError(
                path, "is not a tier_code of tier_counts.csv", line=line, column="tier_code", value=code
            )
        expected = next_position.get(code, 1)
        if position != expected:
            raise PublishedError(
                path,
                f"expected position {expected} of tier '{code}' (positions run 1..n in file order)",
                line=line,
                column="position",
                value=position,
            )
        next_position[code] = expected + 1


# ---------------------------------------------------------------- public API


def load_published(data_dir: Path, edition: int) -> Published | None:
    """Read and validate ``data_dir / "published" / <edition>``; ``None`` if the folder does not exist."""
    directory = published_dir(data_dir, edition)
    if not directory.is_dir():
        return None
    tables: dict[str, pl.DataFrame] = {}
    lines: dict[str, list[int]] = {}
    for name, spec in TABLES.items():
        tables[name], lines[name] = _read_table_with_lines(directory / f"{name}.csv", spec)
    _check_tier_lists(directory, tables["tier_counts"], tables["tier_lists"], lines["tier_lists"])
    statements = read_statements(directory / "statements.yaml")
    contradictions = read_contradictions(directory / "contradictions.yaml")
    return Published(
        edition=edition, directory=directory, statements=statements, contradictions=contradictions, **tables
    )


def statement_value(published: Published, statement_id: str) -> float:
    """The value of one numeric statement, e.g. ``statement_value(p, "city_mean") == 57.3``."""
    try:
        return float(published.statements[statement_id]["value"])
    except KeyError:
        raise KeyError(
            f"{published.directory / 'statements.yaml'}: no statement with id {statement_id!r}"
        ) from None


def contradiction(published: Published, contradiction_id: str) -> dict[str, Any]:
    """One recorded contradiction by id."""
    for item in published.contradictions:
        if item["id"] == contradiction_id:
            return item
    raise KeyError(
        f"{published.directory / 'contradictions.yaml'}: no contradiction with id {contradiction_id!r}"
    )
