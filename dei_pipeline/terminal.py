"""Tables for the terminal, laid out by rich: columns line up on display width (a Chinese character
takes two columns), numbers are right-aligned, and the text is plain (no colour codes, no trailing
blanks), so it reads the same in a terminal, a log file and a test."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table

# A number as the callers format them (1,234  -0.5  12.0%  3.1x  1e-05), or "-" for none.
_NUMBER = re.compile(r"^[-+]?(\d[\d,]*)?(\.\d+)?(e[-+]?\d+)?[%x]?$|^-$")


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]], markdown: bool = False) -> str:
    """The rows (cells already formatted as text) under the header: as a Markdown table (``| a | b |``)
    when ``markdown``, else as columns under a rule."""
    rows = [list(row) for row in rows]
    table = Table(box=box.MARKDOWN if markdown else box.SIMPLE_HEAD, show_edge=markdown, pad_edge=markdown)
    for i, name in enumerate(header):
        numeric = (
            bool(rows) and all(_NUMBER.match(row[i]) for row in rows) and any(row[i] != "-" for row in rows)
        )
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Wide enough that rich never wraps or shrinks a column; plain text, as a file or pipe would get.
    out = io.StringIO()
    Console(file=out, width=1_000, color_system=None, highlight=False, markup=False, emoji=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n")


def frame_table(frame: pl.DataFrame, markdown: bool = False, decimals: int = 1) -> str:
    """A frame as :func:`text_table`, its floats to ``decimals`` places and nulls as "-"."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)

    return text_table(frame.columns, ([cell(value) for value in row] for row in frame.iter_rows()), markdown)
