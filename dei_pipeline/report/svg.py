"""Chart primitives: numbers in, a self-contained SVG string out.

Inline SVG keeps the report one file that opens offline, needs no plotting library, and leaves the
Chinese text to the browser, which draws it with the system's CJK font (Noto Sans CJK on Debian:
``fonts-noto-cjk``). Every chart has a title, a subtitle with units and source, labelled axes and
values printed on the marks, so it reads at a glance on a slide as well as in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

FONT_FAMILY = ("'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',"
               "'WenQuanYi Micro Hei',sans-serif")
TEXT = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"
AXIS = "#9aa5b1"
TITLE_SIZE = 18
SUBTITLE_SIZE = 12
LABEL_SIZE = 13
VALUE_SIZE = 12
HEADER_HEIGHT = 58  # title + subtitle band above every plot


@dataclass(frozen=True)
class Chart:
    """One chart: ``name`` is the file stem of its PNG (``<edition>/<name>.png``)."""

    name: str
    title: str
    svg: str
    width: int
    height: int


@dataclass(frozen=True)
class BarSeries:
    label: str
    color: str
    values: Sequence[float | None]
    colors: Sequence[str] | None = None  # one colour per bar (e.g. by tier) instead of ``color``


@dataclass(frozen=True)
class ReferenceLine:
    value: float
    label: str


@dataclass(frozen=True)
class Segment:
    label: str
    color: str
    text_color: str = "#ffffff"


@dataclass(frozen=True)
class Panel:
    title: str
    labels: Sequence[str]
    values: Sequence[float | None]
    colors: Sequence[str]
    reference: ReferenceLine | None = None


def one_decimal(value: float) -> str:
    return f"{value:.1f}"


def text_width(text: str, size: float) -> float:
    """Approximate rendered width: CJK characters are square, Latin ones about 0.6 em."""
    return sum(size if ord(char) >= 0x2E80 else 0.6 * size for char in text)


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw_step = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    top = math.ceil(maximum / step - 1e-9) * step
    return [round(i * step, 10) for i in range(int(round(top / step)) + 1)]


def _number(value: float) -> str:
    return f"{value:g}"


def _text(x: float, y: float, content: str, size: float = LABEL_SIZE, anchor: str = "start", fill: str = TEXT,
          weight: str = "normal", baseline: str = "middle") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}" dominant-baseline="{baseline}">{escape(content)}</text>')


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = AXIS, width: float = 1, dash: str | None = None) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{width}"{dashed}/>'


def _rect(x: float, y: float, width: float, height: float, fill: str, label: str | None = None) -> str:
    tooltip = f"<title>{escape(label)}</title>" if label else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" height="{max(height, 0):.1f}" fill="{fill}">{tooltip}</rect>'


def _document(name: str, title: str, subtitle: str, width: int, height: int, body: list[str], source: str) -> Chart:
    """Wrap the marks in an <svg> with a white background, the title, the subtitle and, in a line of
    its own at the bottom, the source."""
    if source:
        body = [*body, _text(16, height + 8, source, SUBTITLE_SIZE - 1, fill=MUTED)]
        height += 22
    svg = "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="{escape(FONT_FAMILY)}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(16, 24, title, TITLE_SIZE, weight="bold"),
        _text(16, 46, subtitle, SUBTITLE_SIZE, fill=MUTED),
        *body,
        "</svg>",
    ])
    return Chart(name, title, svg, width, height)


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> tuple[list[str], float]:
    """A one-line legend of (label, colour) swatches starting at (x, y); returns marks and its width."""
    marks, cursor = [], x
    for label, color in items:
        marks.append(_rect(cursor, y - 6, 12, 12, color))
        marks.append(_text(cursor + 17, y, label, VALUE_SIZE))
        cursor += 17 + text_width(label, VALUE_SIZE) + 18
    return marks, cursor - x


def horizontal_bars(name: str, title: str, subtitle: str, categories: Sequence[str], series: Sequence[BarSeries],
                    axis_title: str, references: Sequence[ReferenceLine] = (), domain_max: float | None = None,
                    value_format: Callable[[float], str] = one_decimal, width: int = 900,
                    legend: Sequence[tuple[str, str]] | None = None, source: str = "") -> Chart:
    """Grouped horizontal bars, one group per category (top to bottom), values printed at the bar ends.
    The legend names the series, or lists ``legend`` (label, colour) pairs when bars are coloured singly."""
    bar_height, bar_gap, group_gap = 18, 3, 14
    label_width = max(text_width(c, LABEL_SIZE) for c in categories) + 20
    left, right = 16 + label_width, 70
    legend_items = list(legend) if legend is not None else ([(s.label, s.color) for s in series] if len(series) > 1 else [])
    legend_height = 26 if legend_items else 0
    top = HEADER_HEIGHT + legend_height + 8
    group_height = len(series) * bar_height + (len(series) - 1) * bar_gap
    plot_height = len(categories) * (group_height + group_gap)
    height = int(top + plot_height + 54)
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(domain_max if domain_max is not None else max([*values, *(r.value for r in references), 1.0]))
    plot_width = width - left - right
    scale = plot_width / ticks[-1]

    body: list[str] = []
    if legend_items:
        body += _legend(legend_items, left, HEADER_HEIGHT + 10)[0]
    for tick in ticks:
        x = left + tick * scale
        body.append(_line(x, top - 4, x, top + plot_height, GRID))
        body.append(_text(x, top + plot_height + 14, _number(tick), VALUE_SIZE, "middle", MUTED))
    for index, category in enumerate(categories):
        group_top = top + index * (group_height + group_gap) + group_gap / 2
        body.append(_text(left - 10, group_top + group_height / 2, category, LABEL_SIZE, "end"))
        for position, bars in enumerate(series):
            value = bars.values[index]
            y = group_top + position * (bar_height + bar_gap)
            if value is None:
                body.append(_text(left + 4, y + bar_height / 2, "无数据", VALUE_SIZE, fill=MUTED))
                continue
            color = bars.colors[index] if bars.colors is not None else bars.color
            body.append(_rect(left, y, value * scale, bar_height, color, f"{category} {bars.label}: {value_format(value)}"))
            body.append(_text(left + value * scale + 5, y + bar_height / 2, value_format(value), VALUE_SIZE))
    for reference in references:
        x = left + reference.value * scale
        body.append(_line(x, top - 6, x, top + plot_height, "#c0392b", 1.5, "6 4"))
        body.append(_text(x, top - 12, f"{reference.label} {value_format(reference.value)}", VALUE_SIZE, "middle", "#c0392b"))
    body.append(_line(left, top + plot_height, left + plot_width, top + plot_height, AXIS))
    body.append(_line(left, top - 4, left, top + plot_height, AXIS))
    body.append(_text(left + plot_width / 2, top + plot_height + 36, axis_title, LABEL_SIZE, "middle", MUTED))
    return _document(name, title, subtitle, width, height, body, source)


def stacked_columns(name: str, title: str, subtitle: str, categories: Sequence[str], segments: Sequence[Segment],
                    values: Sequence[Sequence[int]], axis_title: str, category_axis_title: str, width: int = 760, source: str = "") -> Chart:
    """Stacked columns, first segment at the bottom; counts inside segments tall enough, totals on top."""
    legend_width = max(text_width(s.label, LABEL_SIZE) for s in segments) + 56
    left, right, top = 64, legend_width + 16, HEADER_HEIGHT + 26
    plot_height = 340
    height = top + plot_height + 62
    totals = [sum(column) for column in values]
    ticks = nice_ticks(max([*totals, 1]))
    scale = plot_height / ticks[-1]
    plot_width = width - left - right
    band = plot_width / max(len(categories), 1)
    column_width = min(band * 0.6, 90)
    bottom = top + plot_height

    body: list[str] = []
    for tick in ticks:
        y = bottom - tick * scale
        body.append(_line(left, y, left + plot_width, y, GRID))
        body.append(_text(left - 8, y, _number(tick), VALUE_SIZE, "end", MUTED))
    for index, category in enumerate(categories):
        x = left + index * band + (band - column_width) / 2
        cursor: float = bottom
        for segment, count in zip(segments, values[index], strict=True):
            segment_height = count * scale
            cursor -= segment_height
            body.append(_rect(x, cursor, column_width, segment_height, segment.color, f"{category} {segment.label}: {count}"))
            if segment_height >= 15:
                body.append(_text(x + column_width / 2, cursor + segment_height / 2, str(count), VALUE_SIZE, "middle", segment.text_color))
            elif count > 0:  # too thin to hold its number: print it beside the column
                body.append(_text(x + column_width + 5, cursor + segment_height / 2, str(count), VALUE_SIZE, fill=TEXT))
        body.append(_text(x + column_width / 2, cursor - 10, f"{totals[index]}", LABEL_SIZE, "middle", weight="bold"))
        body.append(_text(x + column_width / 2, bottom + 16, category, LABEL_SIZE, "middle"))
    body.append(_line(left, bottom, left + plot_width, bottom, AXIS))
    body.append(_line(left, top, left, bottom, AXIS))
    body.append(f'<text transform="translate(18 {top + plot_height / 2:.1f}) rotate(-90)" font-size="{LABEL_SIZE}" '
                f'text-anchor="middle" fill="{MUTED}">{escape(axis_title)}</text>')
    body.append(_text(left + plot_width / 2, bottom + 42, category_axis_title, LABEL_SIZE, "middle", MUTED))
    # Legend top tier first, as the columns are read from the top.
    legend_x = left + plot_width + 24
    for position, segment in enumerate(reversed(segments)):
        y = top + 10 + position * 24
        body.append(_rect(legend_x, y - 7, 14, 14, segment.color))
        body.append(_text(legend_x + 20, y, segment.label, LABEL_SIZE))
    return _document(name, title, subtitle, width, height, body, source)


def column_panels(name: str, title: str, subtitle: str, panels: Sequence[Panel], axis_title: str,
                  domain_max: float = 100.0, per_row: int = 2, width: int = 960, source: str = "") -> Chart:
    """Small multiples: one panel of vertical bars per item, all on the same 0..domain_max scale so the
    panels compare, each with an optional dashed reference line (e.g. the all-city average)."""
    panel_width = (width - 32) / per_row
    panel_height, plot_height = 290, 200
    rows = math.ceil(len(panels) / per_row)
    height = int(HEADER_HEIGHT + rows * panel_height + 10)
    ticks = nice_ticks(domain_max, 5)
    body: list[str] = []
    for index, panel in enumerate(panels):
        origin_x = 16 + (index % per_row) * panel_width
        origin_y = HEADER_HEIGHT + (index // per_row) * panel_height
        left, top = origin_x + 50, origin_y + 40
        plot_width = panel_width - 70
        bottom = top + plot_height
        scale = plot_height / ticks[-1]
        body.append(_text(origin_x + 8, origin_y + 18, panel.title, LABEL_SIZE + 1, weight="bold"))
        for tick in ticks:
            y = bottom - tick * scale
            body.append(_line(left, y, left + plot_width, y, GRID))
            body.append(_text(left - 6, y, _number(tick), VALUE_SIZE - 1, "end", MUTED))
        band = plot_width / len(panel.labels)
        bar_width = band * 0.62
        for position, (label, value, color) in enumerate(zip(panel.labels, panel.values, panel.colors, strict=True)):
            x = left + position * band + (band - bar_width) / 2
            body.append(_text(x + bar_width / 2, bottom + 14, label, VALUE_SIZE, "middle"))
            if value is None:
                body.append(_text(x + bar_width / 2, bottom - 10, "无", VALUE_SIZE, "middle", MUTED))
                continue
            body.append(_rect(x, bottom - value * scale, bar_width, value * scale, color, f"{panel.title} {label}: {value:.1f}"))
            body.append(_text(x + bar_width / 2, bottom - value * scale - 9, f"{value:.1f}", VALUE_SIZE, "middle"))
        if panel.reference is not None:
            y = bottom - panel.reference.value * scale
            body.append(_line(left, y, left + plot_width, y, "#c0392b", 1.5, "6 4"))
            body.append(_text(left + plot_width, y - 8, f"{panel.reference.label} {panel.reference.value:.1f}",
                              VALUE_SIZE, "end", "#c0392b"))
        body.append(_line(left, bottom, left + plot_width, bottom, AXIS))
        body.append(_line(left, top, left, bottom, AXIS))
        body.append(f'<text transform="translate({origin_x + 12:.1f} {top + plot_height / 2:.1f}) rotate(-90)" '
                    f'font-size="{VALUE_SIZE}" text-anchor="middle" fill="{MUTED}">{escape(axis_title)}</text>')
    return _document(name, title, subtitle, width, height, body, source)


def diverging_bars(name: str, title: str, subtitle: str, labels: Sequence[str], values: Sequence[int],
                   annotations: Sequence[str], axis_title: str, positive_color: str = "#2b8a3e",
                   negative_color: str = "#c92a2a", width: int = 900, source: str = "") -> Chart:
    """Bars left (negative) and right (positive) of a zero line, one row per label, top to bottom,
    with each value and an annotation (e.g. "46→30") printed beside its bar."""
    row_height = 24
    label_width = max(text_width(label, LABEL_SIZE) for label in labels) + 20
    annotation_width = max(text_width(a, VALUE_SIZE) for a in annotations) + 70
    left, right, top = 16 + label_width, annotation_width, HEADER_HEIGHT + 14
    plot_width = width - left - right
    plot_height = len(labels) * row_height
    height = top + plot_height + 56
    extent = nice_ticks(max([abs(v) for v in values] + [1]), 4)[-1]
    zero = left + plot_width / 2
    scale = (plot_width / 2) / extent
    body: list[str] = []
    for tick in nice_ticks(extent, 4):
        for signed in {tick, -tick}:
            x = zero + signed * scale
            body.append(_line(x, top, x, top + plot_height, GRID))
            body.append(_text(x, top + plot_height + 14, f"{signed:+g}" if signed else "0", VALUE_SIZE, "middle", MUTED))
    for index, (label, value, note) in enumerate(zip(labels, values, annotations, strict=True)):
        y = top + index * row_height + 3
        bar_height = row_height - 6
        color = positive_color if value >= 0 else negative_color
        x = zero if value >= 0 else zero + value * scale
        body.append(_text(left - 10, y + bar_height / 2, label, LABEL_SIZE, "end"))
        body.append(_rect(x, y, abs(value) * scale, bar_height, color, f"{label}: {value:+d} ({note})"))
        value_x = zero + value * scale + (5 if value >= 0 else -5)
        body.append(_text(value_x, y + bar_height / 2, f"{value:+d}", VALUE_SIZE, "start" if value >= 0 else "end", color, "bold"))
        body.append(_text(left + plot_width + 12, y + bar_height / 2, note, VALUE_SIZE, fill=MUTED))
    body.append(_line(zero, top - 4, zero, top + plot_height, TEXT, 1.2))
    body.append(_text(zero, top + plot_height + 36, axis_title, LABEL_SIZE, "middle", MUTED))
    return _document(name, title, subtitle, width, height, body, source)


def interval_dots(name: str, title: str, subtitle: str, labels: Sequence[str], points: Sequence[float],
                  lows: Sequence[float], highs: Sequence[float], axis_title: str, width: int = 900, source: str = "") -> Chart:
    """One row per label: a dot at the point estimate and a whisker from low to high. The axis runs
    from 1 on the left (ranks: smaller is better)."""
    row_height = 20
    label_width = max(text_width(label, LABEL_SIZE) for label in labels) + 20
    left, right, top = 16 + label_width, 90, HEADER_HEIGHT + 14
    plot_width = width - left - right
    plot_height = len(labels) * row_height
    height = top + plot_height + 56
    ticks = nice_ticks(max([*highs, *points, 1.0]))
    lowest = 1.0
    scale = plot_width / (ticks[-1] - lowest) if ticks[-1] > lowest else 1.0
    body: list[str] = []
    for tick in [lowest, *[t for t in ticks if t > lowest]]:
        x = left + (tick - lowest) * scale
        body.append(_line(x, top, x, top + plot_height, GRID))
        body.append(_text(x, top + plot_height + 14, _number(tick), VALUE_SIZE, "middle", MUTED))
    for index, (label, point, low, high) in enumerate(zip(labels, points, lows, highs, strict=True)):
        y = top + index * row_height + row_height / 2
        body.append(_text(left - 10, y, label, LABEL_SIZE, "end"))
        body.append(_line(left + (low - lowest) * scale, y, left + (high - lowest) * scale, y, "#2f6db5", 3))
        body.append(f'<circle cx="{left + (point - lowest) * scale:.1f}" cy="{y:.1f}" r="4.5" fill="#0b3c73">'
                    f"<title>{escape(label)}: {point:g} ({low:g}–{high:g})</title></circle>")
        body.append(_text(left + plot_width + 10, y, f"{low:g}–{high:g}", VALUE_SIZE, fill=MUTED))
    body.append(_line(left, top + plot_height, left + plot_width, top + plot_height, AXIS))
    body.append(_text(left + plot_width / 2, top + plot_height + 36, axis_title, LABEL_SIZE, "middle", MUTED))
    return _document(name, title, subtitle, width, height, body, source)
