"""The edition report, looked at as a person would: materialized by Dagster over the sample, opened in
headless Chromium (driven by Playwright), screenshotted, and read for the white paper's key numbers;
its chart PNGs, drawn on request, looked at pixel by pixel.

Chromium and a CJK font come from `make browser` (a prerequisite of `make test`); without them the
browser tests fail and say so rather than being skipped, so that CI cannot pass without looking.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing.context import BaseContext
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page

from dei_pipeline.browser import chromium, find_chromium, pixel_summary
from dei_pipeline.defs.report_assets import edition_report, report_pngs
from dei_pipeline.published import load_published
from dei_pipeline.report import charts as charts_module
from dei_pipeline.report import publish, tables
from dei_pipeline.report.charts import (
    SOURCE_PREFIX,
    BarSeries,
    edition_charts,
    horizontal_bars,
    render,
    tier_colors,
)
from dei_pipeline.report.html import render_report
from dei_pipeline.report.publish import PNG_SCALE, write_edition_report, write_edition_reports
from dei_pipeline.scalars import number
from dei_pipeline_tests.conftest import Project

CHARTS_OF_AN_EDITION_WITH_A_PREDECESSOR = {
    "top_cities",
    "tier_distribution",
    "level1_by_tier",
    "industry_averages",
    "regions",
    "movers",
}


def require_browser() -> None:
    if find_chromium() is None:
        pytest.fail(
            "no Chromium on PATH: run `make browser` (make test does) to install chromium and fonts-wqy-microhei"
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    with chromium() as running:
        yield running


def open_report(browser: Browser, html: Path, width: int, height: int) -> Page:
    """A new page showing the report, once it and its fonts have loaded."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_function("document.fonts.status === 'loaded'")
    return page


def _report_metadata(sample: Project, edition: int = 2020) -> Mapping[str, dg.MetadataValue]:
    """The metadata of one edition's materialization of the report."""
    records = sample.instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("edition_report"), asset_partitions=[str(edition)]), limit=1
    ).records
    assert records and records[0].asset_materialization is not None
    return records[0].asset_materialization.metadata


# ------------------------------------------------------------------------------------ the asset


def test_asset_writes_a_page_per_edition_and_an_svg_per_chart(sample: Project) -> None:
    for year in (2017, 2018, 2019, 2020):
        assert (sample.reports / f"{year}.html").is_file(), year
    svgs_2020 = {path.stem for path in (sample.reports / "2020").glob("*.svg")}
    assert CHARTS_OF_AN_EDITION_WITH_A_PREDECESSOR <= svgs_2020
    html = (sample.reports / "2020.html").read_text(encoding="utf-8")
    for name in svgs_2020:  # the file is the chart on the page
        svg = (sample.reports / "2020" / f"{name}.svg").read_text(encoding="utf-8")
        assert f'<figure id="chart-{name}">{svg}<figcaption>' in html, name
        assert f"SVG: 2020/{name}.svg</figcaption>" in html, name
    # The first edition has nothing to compare with: no movers chart.
    assert "movers" not in {path.stem for path in (sample.reports / "2017").glob("*.svg")}
    # PNGs are drawn on request only (report_pngs), not by the runs that made the sample.
    assert not list(sample.reports.glob("*/*.png"))
    assert not list(sample.reports.glob(".*.tmp")), "staging files left behind"


def test_editions_drawn_in_worker_processes_are_those_drawn_in_one(
    sample: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Editions spread over worker processes give the same pages and SVG files, in edition order."""
    rows = [sample.edition_rows(year) for year in (2018, 2019, 2020)]
    alone = [write_edition_report(edition, tmp_path / "alone") for edition in rows]
    pools: list[int] = []

    class RecordedPool(ProcessPoolExecutor):
        def __init__(self, workers: int, mp_context: BaseContext) -> None:
            pools.append(workers)
            super().__init__(workers, mp_context=mp_context)

    monkeypatch.setattr(publish, "ProcessPoolExecutor", RecordedPool)
    monkeypatch.setattr(publish, "MIN_EDITIONS_PER_WORKER", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # two workers on any machine
    spread = write_edition_reports(rows, tmp_path / "spread")
    assert pools == [2]
    assert [page.survey_year for page in spread] == [2018, 2019, 2020]
    for one, other in zip(alone, spread, strict=True):
        assert one.chart_names == other.chart_names
        assert one.html_path.read_text(encoding="utf-8") == other.html_path.read_text(encoding="utf-8")
        for name in one.chart_names:
            assert (one.html_path.parent / str(one.survey_year) / f"{name}.svg").read_bytes() == (
                other.html_path.parent / str(other.survey_year) / f"{name}.svg"
            ).read_bytes()


def test_a_few_editions_are_drawn_in_this_process(
    sample: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A worker's start costs about an edition's drawing: fewer editions than MIN_EDITIONS_PER_WORKER per
    worker are drawn without one."""

    def no_pool(*args: object, **options: object) -> None:
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(publish, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    rows = [sample.edition_rows(year) for year in (2017, 2018, 2019, 2020)]
    assert len(rows) < 2 * publish.MIN_EDITIONS_PER_WORKER
    assert [page.survey_year for page in write_edition_reports(rows, tmp_path)] == [2017, 2018, 2019, 2020]


def test_metadata_shows_the_top_of_the_ranking_as_a_markdown_table(sample: Project) -> None:
    metadata = _report_metadata(sample)
    markdown = str(metadata["top_of_ranking"].value)
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in markdown.splitlines()]
    assert rows[0] == ["edition", "rank", "city", "province", "score", "tier"]
    assert set("".join(rows[1])) <= {"-", ":"}, "the header rule of a Markdown table"
    assert rows[2] == ["2020", "1", "上海", "上海", "90.5", "一线"], "the 2020 edition's own top row"
    assert len(rows) == 12
    assert str(metadata["chart_svgs"].value).split()[0].isdigit(), metadata["chart_svgs"].value
    assert metadata["report"].value == str(sample.reports / "2020.html"), "the 2020 partition's own page"


def test_report_is_one_self_contained_file(sample: Project) -> None:
    html = (sample.reports / "2020.html").read_text(encoding="utf-8")
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", html), (
        "the page loads or links an external resource"
    )
    without_namespaces = re.sub(
        r'xmlns(:xlink)?="http://www\.w3\.org/[^"]+"', "", html
    )  # names, not resources
    assert not re.search(r"url\((?!#)|@import|https?://", without_namespaces), (
        "the page loads or links an external resource"
    )
    assert html.count("<svg") >= len(CHARTS_OF_AN_EDITION_WITH_A_PREDECESSOR)


# ------------------------------------------------------------------------------ in the browser


def test_cjk_font_is_installed_for_chinese_text() -> None:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        pytest.fail("fc-list missing: install fontconfig (make browser)")
    families = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=True
    ).stdout
    assert families.strip(), (
        "no font with Chinese glyphs: Chinese would render as boxes (make browser installs fonts-wqy-microhei)"
    )


def test_report_in_headless_chromium_shows_the_white_papers_numbers(
    sample: Project, browser: Browser, tmp_path: Path
) -> None:
    page = open_report(browser, sample.reports / "2020.html", 1400, 3000)
    screenshot = tmp_path / "report_2020.png"
    page.screenshot(path=screenshot, full_page=True)
    pixels = pixel_summary(screenshot)
    assert not pixels.looks_blank, pixels
    assert pixels.width == 1400 and pixels.height > 3000, pixels

    text = page.inner_text("body")
    whitespace = r"\s+"
    assert re.search(whitespace.join(["1", "上海", "上海", "90.5", "一线"]), text), (
        "上海 90.5 is not ranked first on the page"
    )
    assert re.search(whitespace.join(["148", "雅安", "四川", "35.7", "四线"]), text), (
        "the last city of the ranking"
    )
    assert re.search(r"57\.3\s+平均得分", text), "the mean score 57.3"
    assert re.search(whitespace.join(["2020", "6", "29", "69", "26", "18", "148"]), text), (
        "the 2020 tier counts"
    )
    assert re.search(whitespace.join(["1", "广东", "深圳市南山区", "85.8"]), text)
    assert re.search(whitespace.join(["1", "江苏", "江阴市", "72.3"]), text)
    assert re.search(whitespace.join(["金融", "59.9", "94.9"]), text), "the finance industry averages"
    assert re.search(whitespace.join(["数据及信息化基础设施"] + [r"\d+\.\d"] * 5 + ["68.3"]), text), (
        "level-1 averages by tier"
    )
    assert re.search(whitespace.join(["长三角", "41/41", "70.6"]), text), "the Yangtze delta rollup"
    assert re.search(whitespace.join(["乌鲁木齐", "70", "52", "↑18"]), text), "the biggest riser since 2019"
    assert "SYNTHETIC SAMPLE" in text
    # Every chart is drawn: an SVG laid out with a real size, captioned with its title.
    drawn = page.eval_on_selector_all(
        "figure",
        "figures => figures.map(f => [f.querySelector('figcaption').innerText, "
        "f.querySelector('svg').getBoundingClientRect().height])",
    )
    assert len(drawn) >= len(CHARTS_OF_AN_EDITION_WITH_A_PREDECESSOR)
    assert all(height > 100 and caption for caption, height in drawn), drawn
    # Every table of contents entry leads to a section on the page.
    anchors = page.eval_on_selector_all("nav.toc a", "links => links.map(a => a.getAttribute('href'))")
    assert anchors and all(page.locator(anchor).count() == 1 for anchor in anchors), anchors


def test_chart_pngs_are_sharp_non_blank_images_of_their_charts(drawn: Path) -> None:
    html = (drawn / "2020.html").read_text(encoding="utf-8")
    pngs = sorted((drawn / "2020").glob("*.png"))
    assert {png.stem for png in pngs} >= CHARTS_OF_AN_EDITION_WITH_A_PREDECESSOR
    for png in pngs:
        size = re.search(rf'<figure id="chart-{png.stem}"><svg [^>]*width="([\d.]+)" height="([\d.]+)"', html)
        assert size is not None, f"{png.name} has no chart in the report"
        pixels = pixel_summary(png)
        assert (pixels.width, pixels.height) == (
            round(PNG_SCALE * float(size.group(1))),
            round(PNG_SCALE * float(size.group(2))),
        ), (png.name, pixels)
        assert not pixels.looks_blank and pixels.background == "#ffffff", (png.name, pixels)


def test_top_cities_png_is_coloured_by_tier(sample: Project, drawn: Path) -> None:
    rows = sample.edition_rows(2020)
    colours: dict[str, int] = {}
    with Image.open(drawn / "2020" / "top_cities.png") as image:
        for n, colour in image.convert("RGB").getcolors(1 << 20) or []:
            assert isinstance(colour, tuple), "an RGB image's colours are (red, green, blue)"
            r, g, b = colour
            colours[f"#{r:02x}{g:02x}{b:02x}"] = n
    fills = {code: fill for code, (fill, _) in tier_colors(rows).items()}
    # The 2020 top twenty are six first-tier and fourteen new-first-tier cities: both fills cover whole bars.
    assert colours.get(fills["tier1"], 0) > 10_000 and colours.get(fills["new_tier1"], 0) > colours.get(
        fills["tier1"], 0
    ), colours
    assert colours.get(fills["tier4"], 0) == 0, "no fourth-tier city is in the top twenty"


def test_first_edition_says_there_is_nothing_to_compare(sample: Project, browser: Browser) -> None:
    text = open_report(browser, sample.reports / "2017.html", 1400, 1200).inner_text("body")
    assert "无可比较的上一版" in text and "No earlier edition to compare with" in text
    assert "本年度无县域数据" in text  # the sample has counties from 2019 on
    assert re.search(r"1\s+上海\s+上海\s+85\.0\s+新一线", text)


# ------------------------------------------------------------------- without a browser, with marts


@pytest.fixture(scope="module")
def drawn(sample: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reports folder of a private copy of the sample, after its 2020 report and then the PNGs of
    that report were materialized again, without a browser, over the charts of an earlier run."""
    resource = sample.private_copy(tmp_path_factory.mktemp("drawn"))
    reports = resource.reports_path
    earlier = reports / "2020"
    earlier.mkdir(parents=True)
    (earlier / "movers.png").write_bytes(b"an old chart")
    (earlier / "retired_chart.png").write_bytes(b"a chart the report no longer has")
    (earlier / "retired_chart.svg").write_text("<svg/>", encoding="utf-8")
    instance = dg.DagsterInstance.ephemeral()
    empty = tmp_path_factory.mktemp("empty-path")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", str(empty))  # no browser to be found
        env.setenv("DEI_CHROMIUM", str(empty / "no-such-browser"))
        report = dg.materialize(
            [edition_report], partition_key="2020", instance=instance, resources={"warehouse": resource}
        )
        assert report.success
        # A new report replaces its chart folder whole: no file of the earlier run is left to
        # contradict it, PNGs included (they are drawn again on request).
        assert sorted(path.name for path in earlier.iterdir()) == sorted(
            f"{name}.svg" for name in edition_charts(sample.edition_rows(2020, resource.warehouse_file))
        )
        pngs = dg.materialize(
            [report_pngs], partition_key="2020", instance=instance, resources={"warehouse": resource}
        )
    assert pngs.success
    metadata = pngs.asset_materializations_for_node("report_pngs")[0].metadata
    assert str(metadata["chart_pngs"].value) == (
        f"{len(list(earlier.glob('*.svg')))} PNG(s) at 2× rendered offline with vl-convert"
    )
    return reports


def test_a_png_is_drawn_for_every_chart_of_the_report(drawn: Path) -> None:
    assert (
        {png.stem for png in (drawn / "2020").glob("*.png")}
        == {svg.stem for svg in (drawn / "2020").glob("*.svg")}
        >= CHARTS_OF_AN_EDITION_WITH_A_PREDECESSOR
    )
    assert not pixel_summary(drawn / "2020" / "movers.png").looks_blank
    assert not list(drawn.glob("*/.*.tmp")), "staging files left behind"


def test_pngs_of_an_edition_without_a_report_are_refused_with_what_to_do(
    sample: Project, tmp_path: Path
) -> None:
    resource = sample.private_copy(tmp_path)  # the warehouse without its reports folder
    result = dg.materialize(
        [report_pngs],
        partition_key="2019",
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": resource},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    error = failure.step_failure_data.error
    while error is not None and error.cause is not None:  # the asset's own error, under Dagster's
        error = error.cause
    assert error is not None
    reports = resource.reports_path
    assert (
        f"{reports / '2019.html'}: no report with charts for edition 2019 (no SVG files in {reports / '2019'}); "
        "materialize edition_report for it first" in error.message
    ), error.message


def test_rank_uncertainty_intervals_are_shown_where_the_mart_exists(sample: Project) -> None:
    rows = sample.edition_rows(2020)  # the analysis job has written marts.rank_uncertainty
    assert rows.rank_intervals.rows is not None, rows.rank_intervals.note
    charts = edition_charts(rows)
    assert "rank_uncertainty" in charts
    html = render_report(rows, charts, None)
    assert "Monte Carlo" in html and "chart-rank_uncertainty" in html


def test_without_intervals_for_the_edition_the_report_says_why(sample: Project, tmp_path: Path) -> None:
    warehouse = sample.private_copy(tmp_path).warehouse_file
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM marts.rank_uncertainty WHERE survey_year = 2020 AND unit_type = 'city'")
    rows = sample.edition_rows(2020, warehouse)
    assert rows.rank_intervals.rows is None
    assert "rank_uncertainty" not in edition_charts(rows)
    assert "marts.rank_uncertainty has no city rows for 2020" in render_report(
        rows, edition_charts(rows), None
    )


# --------------------------------------------------------------------- the figures against the paper


def test_level1_averages_by_tier_reproduce_the_published_averages(sample: Project) -> None:
    published = load_published(sample.resource.data_path, 2020)
    assert published is not None
    expected = dict(published.level1_averages.select("node_code", "average").iter_rows())
    table = tables.level1_by_tier(sample.edition_rows(2020))
    assert table["node_code"].to_list() == ["infra", "service", "governance", "industry"]
    for node, mean in table.select("node_code", "all_cities").iter_rows():
        assert round(mean, 1) == expected[node], node
    # Higher tiers score higher in every domain, as the white paper's charts show.
    for record in table.iter_rows(named=True):
        by_tier = [record[t] for t in ("tier1", "new_tier1", "tier2", "tier3", "tier4")]
        assert by_tier == sorted(by_tier, reverse=True), record


def test_industry_averages_reproduce_the_published_ones(sample: Project) -> None:
    table = tables.industry_averages(sample.edition_rows(2020))
    assert table.height == 10
    assert number((table["average"] - table["published_average"]).abs().max()) < 0.05
    assert number((table["top10_average"] - table["published_top10_average"]).abs().max()) < 0.05
    assert table["name_zh"][0] == "金融"


def test_movers_are_risers_then_fallers_among_returning_cities(sample: Project) -> None:
    # Movers are ranked by their rank change among the cities ranked in both editions.
    rows = sample.edition_rows(2020)
    moved = tables.movers(rows)
    changes = moved["cohort_rank_change"].to_list()
    risers = [c for c in changes if c > 0]
    fallers = [c for c in changes if c < 0]
    assert (
        changes == risers + fallers
        and risers == sorted(risers, reverse=True)
        and fallers == sorted(fallers, reverse=True)
    )
    returning = rows.city_changes.filter(pl.col("status") == "returning")
    assert (
        risers[0] == returning["cohort_rank_change"].max()
        and fallers[-1] == returning["cohort_rank_change"].min()
    )
    assert len(risers) == len(fallers) == tables.MOVERS_PER_SIDE


# ------------------------------------------------------------------------------ charts and page


def _svg_text(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_charts_carry_bilingual_titles_sources_and_values_on_their_marks(sample: Project) -> None:
    charts = edition_charts(sample.edition_rows(2020))
    for chart in charts.values():
        texts = _svg_text(chart.svg)
        assert (
            chart.title in texts
            and re.search(r"[\u4e00-\u9fff]", chart.title)
            and re.search(r"[A-Za-z]{4}", chart.title)
        ), chart.name
        assert any(text.startswith(SOURCE_PREFIX) for text in texts), f"{chart.name} has no source line"
    top = _svg_text(charts["top_cities"].svg)
    assert {"1. 上海", "90.5", "20. 厦门", "一线", "新一线"} <= set(top), (
        "bar labels, values on the bars and the tier legend"
    )
    assert "全国城市平均 57.3" in _svg_text(charts["regions"].svg), "the national mean as a reference line"
    assert "综合平均 68.3" in _svg_text(charts["level1_by_tier"].svg), (
        "the all-city mean of the infrastructure panel"
    )
    assert {"+18", "第70→52名  +6.4分"} <= set(_svg_text(charts["movers"].svg)), (
        "乌鲁木齐's rise and its annotation"
    )
    tiers = _svg_text(charts["tier_distribution"].svg)
    assert {"148", "69", "6"} <= set(tiers), (
        "2020's total, its largest tier count and its thin first-tier segment"
    )


def test_every_chart_spec_is_valid_vega_lite(sample: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline draws the charts without Altair's schema validation (it costs about as much as a
    simple chart's drawing): every chart of every sample edition is validated here instead."""
    monkeypatch.setattr(charts_module, "VALIDATE_SPECS", True)
    for year in (2017, 2018, 2019, 2020):
        assert edition_charts(sample.edition_rows(year)), year


def test_labels_are_escaped_in_svg() -> None:
    chart = render(
        "x",
        "A <b> & C",
        "sub",
        horizontal_bars(["<script>"], [BarSeries("s", "#000000", [1.0])], "axis"),
        "source",
    )
    assert (
        "<script>" not in chart.svg and "&lt;script&gt;" in chart.svg and "A &lt;b&gt; &amp; C" in chart.svg
    )


def test_page_escapes_every_value_it_shows(sample: Project) -> None:
    rows = replace(sample.edition_rows(2017), data_note="<script>alert(1)</script> & more")
    html = render_report(rows, {}, None)
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
