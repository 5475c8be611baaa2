"""Indicator systems (指标体系): load, validate and resolve the framework tree of an edition.

A framework file is a flat CSV, ``data/frameworks/<unit_type>_<edition>.csv``, with one row per node:
``code, parent_code, name_zh, name_en, weight``. Level-1 nodes have an empty parent. A flat file
(rather than nested YAML) keeps it editable in a spreadsheet and lets the loader name an orphan or a
cycle precisely.
"""

from __future__ import annotations

import graphlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dei_pipeline.scalars import integer
from dei_pipeline.scoring.method import METHOD_COLUMNS, MethodError, parse_methods

REQUIRED_COLUMNS: tuple[str, ...] = ("code", "parent_code", "name_zh", "name_en", "weight")
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
WEIGHT_SUM_TOLERANCE = 1e-9
FILE_PATTERN = re.compile(r"^(?P<unit_type>[a-z]+)_(?P<edition>\d{4})\.csv$")


class FrameworkError(ValueError):
    """A framework file breaks a rule; the message names the file, the node and the rule."""


@dataclass(frozen=True)
class Framework:
    """One validated indicator tree.

    ``nodes`` has one row per node in file order: code, parent_code, level (1 = top), name_zh, name_en,
    weight (within its parent), effective_weight (product of weights from the root), is_leaf.
    """

    unit_type: str
    edition: int
    source_file: Path
    version: str
    nodes: pl.DataFrame
    # The method of each leaf for measurement files (scoring/method.py); None: the file has no
    # method columns (score files only).
    methods: pl.DataFrame | None = None

    @property
    def depth(self) -> int:
        return integer(self.nodes["level"].max())

    @property
    def unit_methods(self) -> pl.DataFrame | None:
        """The method of each leaf with the framework's unit_type, as the scoring stage takes it."""
        return (
            None
            if self.methods is None
            else self.methods.with_columns(pl.lit(self.unit_type).alias("unit_type"))
        )

    @property
    def leaf_codes(self) -> list[str]:
        return self.nodes.filter(pl.col("is_leaf"))["code"].to_list()

    def level_codes(self, level: int) -> list[str]:
        return self.nodes.filter(pl.col("level") == level)["code"].to_list()


def load_framework(path: Path) -> Framework:
    """Read and validate one framework file."""
    match = FILE_PATTERN.match(path.name)
    if match is None:
        raise FrameworkError(f"{path}: file name must be <unit_type>_<YYYY>.csv")
    content = path.read_bytes()
    try:
        raw = pl.read_csv(content, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise FrameworkError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise FrameworkError(f"{path}: missing column(s) {', '.join(missing)}")
    nodes = _validated_nodes(path, raw.select(REQUIRED_COLUMNS))
    method_columns = [c for c in METHOD_COLUMNS if c in raw.columns]
    try:
        methods = parse_methods(
            path,
            raw.select("code", *method_columns).cast(pl.String).to_dicts() if method_columns else [],
            set(nodes.filter(pl.col("is_leaf"))["code"].to_list()),
        )
    except MethodError as error:
        raise FrameworkError(str(error)) from None
    return Framework(
        unit_type=match["unit_type"],
        edition=int(match["edition"]),
        source_file=path,
        version=f"{path.name}@{hashlib.sha256(content).hexdigest()[:12]}",
        nodes=nodes,
        methods=methods,
    )


def _validated_nodes(path: Path, raw: pl.DataFrame) -> pl.DataFrame:
    rows = raw.with_columns(pl.col("parent_code").fill_null("")).to_dicts()
    codes: dict[str, dict] = {}
    for line_no, row in enumerate(rows, start=2):  # line 1 is the header
        code = (row["code"] or "").strip()
        where = f"{path} line {line_no}, node '{code}'"
        if not CODE_PATTERN.match(code):
            raise FrameworkError(
                f"{where}: code must be lower-case ASCII (a-z, 0-9, _), starting with a letter"
            )
        if code in codes:
            raise FrameworkError(f"{where}: duplicate code (first defined on line {codes[code]['line']})")
        try:
            weight = float(row["weight"])
        except (TypeError, ValueError):
            raise FrameworkError(f"{where}, column weight: value {row['weight']!r} is not a number") from None
        if not 0 < weight <= 1:
            raise FrameworkError(f"{where}, column weight: value {weight} is not in (0, 1]")
        codes[code] = {**row, "code": code, "weight": weight, "line": line_no}

    for code, node in codes.items():
        parent = node["parent_code"]
        if parent and parent not in codes:
            raise FrameworkError(
                f"{path} line {node['line']}, node '{code}': parent '{parent}' is not defined (orphan node)"
            )

    levels = _levels(path, codes)
    children: dict[str, list[str]] = {}
    for code, node in codes.items():
        children.setdefault(node["parent_code"], []).append(code)
    for parent, kids in children.items():
        total = sum(codes[k]["weight"] for k in kids)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            label = f"children of '{parent}'" if parent else "level-1 nodes"
            raise FrameworkError(
                f"{path}: weights of the {label} ({', '.join(kids)}) sum to {total:.6g}, not 1"
            )

    nodes = pl.DataFrame(
        {
            "code": list(codes),
            "parent_code": [codes[c]["parent_code"] or None for c in codes],
            "level": [levels[c] for c in codes],
            "name_zh": [codes[c]["name_zh"] for c in codes],
            "name_en": [codes[c]["name_en"] for c in codes],
            "weight": [codes[c]["weight"] for c in codes],
            "effective_weight": [_effective_weight(c, codes) for c in codes],
            "is_leaf": [c not in children for c in codes],
        },
        schema={
            "code": pl.String,
            "parent_code": pl.String,
            "level": pl.Int32,
            "name_zh": pl.String,
            "name_en": pl.String,
            "weight": pl.Float64,
            "effective_weight": pl.Float64,
            "is_leaf": pl.Boolean,
        },
    )
    return nodes


def _levels(path: Path, codes: dict[str, dict]) -> dict[str, int]:
    """Each node's level (1 = top), parents placed before their children; a cycle of parent links is refused."""
    sorter = graphlib.TopologicalSorter(
        {code: [node["parent_code"]] if node["parent_code"] else [] for code, node in codes.items()}
    )
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as error:
        # graphlib lists the cycle child-after-parent; told from the node defined first, along its parent links.
        cycle = list(reversed(error.args[1][1:]))
        first = min(cycle, key=lambda code: codes[code]["line"])
        start = cycle.index(first)
        links = " -> ".join([*cycle[start:], *cycle[:start], first])
        raise FrameworkError(
            f"{path} line {codes[first]['line']}, node '{first}': cycle in parent links ({links})"
        ) from None
    levels: dict[str, int] = {}
    for code in order:
        parent = codes[code]["parent_code"]
        levels[code] = levels[parent] + 1 if parent else 1
    return levels


def _effective_weight(code: str, codes: dict[str, dict]) -> float:
    weight = 1.0
    while code:
        weight *= codes[code]["weight"]
        code = codes[code]["parent_code"]
    return weight


def framework_files(data_dir: Path, unit_type: str) -> dict[int, Path]:
    """The framework files of a unit type, keyed by the edition they were published for."""
    found: dict[int, Path] = {}
    for path in sorted((data_dir / "frameworks").glob(f"{unit_type}_*.csv")):
        match = FILE_PATTERN.match(path.name)
        if match and match["unit_type"] == unit_type:
            found[int(match["edition"])] = path
    return found


def resolve_framework_path(data_dir: Path, unit_type: str, edition: int) -> Path:
    """The file an edition uses: its own, else the latest published before it, else the earliest.

    Only the 2020 systems were published, so the sample's 2017-2019 editions use them; the run
    metadata records the file actually used.
    """
    files = framework_files(data_dir, unit_type)
    if not files:
        raise FrameworkError(f"{data_dir / 'frameworks'}: no framework file for unit type '{unit_type}'")
    earlier = [year for year in files if year <= edition]
    return files[max(earlier)] if earlier else files[min(files)]


def resolve_framework(data_dir: Path, unit_type: str, edition: int) -> Framework:
    return load_framework(resolve_framework_path(data_dir, unit_type, edition))
