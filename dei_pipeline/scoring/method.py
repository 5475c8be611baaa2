"""The method of each indicator, as data: the optional method columns of a framework file.

A framework file may carry, on its level-3 rows, how a measurement in natural units becomes a score:

| column | values |
|---|---|
| ``unit`` | the natural unit, as documentation (``%``, ``per 10,000 people``, ``count``) |
| ``direction`` | ``higher`` (higher is better) or ``lower`` |
| ``normalisation`` | ``minmax``, ``goalposts``, ``zscore``, ``rank`` or ``target`` |
| ``goal_low``, ``goal_high`` | goalposts in natural units (``goalposts`` only; low < high) |
| ``target`` | the target in natural units (``target`` only) |
| ``log`` | ``true``: the measure (and its goalposts or target) is normalised on a natural-log scale |
| ``treatment`` | ``none`` or ``winsorise`` (the JRC rule, thresholds in settings.yaml) |
| ``imputation`` | ``none``, ``group_mean``, ``group_median`` or ``previous`` |
| ``peer_group`` | ``all``, ``province``, ``county_kind`` or ``tier`` (``group_mean``/``group_median`` only) |

A file without these columns behaves as before: it is the method of score files only. Blank cells take
the defaults (``higher``, no log, ``none``, ``none``); a leaf of a measurement file must have a
``normalisation``.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

METHOD_COLUMNS: tuple[str, ...] = (
    "unit",
    "direction",
    "normalisation",
    "goal_low",
    "goal_high",
    "target",
    "log",
    "treatment",
    "imputation",
    "peer_group",
)
DIRECTIONS = ("higher", "lower")
NORMALISATIONS = ("minmax", "goalposts", "zscore", "rank", "target")
TREATMENTS = ("none", "winsorise")
IMPUTATIONS = ("none", "group_mean", "group_median", "previous")
PEER_GROUPS = ("all", "province", "county_kind", "tier")
BOOLEANS = {"true": True, "false": False, "": False}

METHOD_SCHEMA: dict[str, pl.DataType] = {
    "indicator_code": pl.String(),
    "unit": pl.String(),
    "direction": pl.String(),
    "normalisation": pl.String(),
    "goal_low": pl.Float64(),
    "goal_high": pl.Float64(),
    "target": pl.Float64(),
    "log": pl.Boolean(),
    "treatment": pl.String(),
    "imputation": pl.String(),
    "peer_group": pl.String(),
}


class MethodError(ValueError):
    """A method cell breaks a rule; the message names the file, line, node, column, value and rule."""


def _number(text: str, where: str, column: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise MethodError(f"{where}, column {column}: value {text!r} breaks rule: is a number") from None
    if not math.isfinite(value):
        raise MethodError(f"{where}, column {column}: value {text!r} breaks rule: is a finite number")
    return value


def _choice(text: str, allowed: tuple[str, ...], default: str | None, where: str, column: str) -> str | None:
    if not text:
        return default
    if text not in allowed:
        raise MethodError(
            f"{where}, column {column}: value {text!r} breaks rule: one of {', '.join(allowed)}"
        )
    return text


def parse_methods(path: Path, rows: list[dict[str, str | None]], leaf_codes: set[str]) -> pl.DataFrame | None:
    """The method table of a framework file (one row per leaf), or None when the file has no method
    column. ``rows`` are the file's rows as text (line 2 first)."""
    if not rows or not any(column in rows[0] for column in METHOD_COLUMNS):
        return None
    records = []
    for line, row in enumerate(rows, start=2):
        code = (row.get("code") or "").strip()
        cells = {column: (row.get(column) or "").strip() for column in METHOD_COLUMNS}
        where = f"{path} line {line}, node '{code}'"
        if code not in leaf_codes:
            filled = [column for column, text in cells.items() if text]
            if filled:
                raise MethodError(
                    f"{where}, column {filled[0]}: value {cells[filled[0]]!r} breaks rule: "
                    "method columns are filled on level-3 (leaf) rows only"
                )
            continue
        log_text = cells["log"].lower()
        if log_text not in BOOLEANS:
            raise MethodError(f"{where}, column log: value {cells['log']!r} breaks rule: true or false")
        record = {
            "indicator_code": code,
            "unit": cells["unit"] or None,
            "direction": _choice(cells["direction"], DIRECTIONS, "higher", where, "direction"),
            "normalisation": _choice(cells["normalisation"], NORMALISATIONS, None, where, "normalisation"),
            "goal_low": _number(cells["goal_low"], where, "goal_low"),
            "goal_high": _number(cells["goal_high"], where, "goal_high"),
            "target": _number(cells["target"], where, "target"),
            "log": BOOLEANS[log_text],
            "treatment": _choice(cells["treatment"], TREATMENTS, "none", where, "treatment"),
            "imputation": _choice(cells["imputation"], IMPUTATIONS, "none", where, "imputation"),
            "peer_group": _choice(cells["peer_group"], PEER_GROUPS, None, where, "peer_group"),
        }
        _check_record(record, cells, where)
        records.append(record)
    return pl.DataFrame(records, schema=METHOD_SCHEMA)


def _check_record(record: dict, cells: dict[str, str], where: str) -> None:
    normalisation, low, high = record["normalisation"], record["goal_low"], record["goal_high"]
    if normalisation == "goalposts":
        if low is None or high is None:
            missing = "goal_low" if low is None else "goal_high"
            raise MethodError(
                f"{where}, column {missing}: value '' breaks rule: goalposts need goal_low and goal_high"
            )
        if not low < high:
            raise MethodError(
                f"{where}, column goal_high: value {cells['goal_high']!r} breaks rule: goal_low < goal_high"
            )
        if record["log"] and low <= 0:
            raise MethodError(
                f"{where}, column goal_low: value {cells['goal_low']!r} breaks rule: > 0 on a log scale"
            )
    if normalisation == "target" and record["target"] is None:
        raise MethodError(
            f"{where}, column target: value '' breaks rule: normalisation 'target' needs a target"
        )
    if record["imputation"] in ("group_mean", "group_median") and record["peer_group"] is None:
        raise MethodError(
            f"{where}, column peer_group: value '' breaks rule: imputation {record['imputation']!r} needs a peer group"
        )
