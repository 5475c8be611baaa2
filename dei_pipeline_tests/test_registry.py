"""Tests of data/registry/ and its loader, dei_pipeline.registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from dei_pipeline.registry import REGISTRY_FILES, Registry, RegistryError, gdp_for_year, load_registry, units

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

# Cities with no first_published GDP for 2017-2018 (all of Inner Mongolia and Jiangxi are absent from
# that source for those years): 呼和浩特, 包头, 鄂尔多斯, 南昌, 九江, 赣州.
FIRST_PUBLISHED_GAP = ["150100", "150200", "150600", "360100", "360400", "360700"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(DATA_DIR)


# ---------------------------------------------------------------- content


def test_148_cities_with_unique_six_digit_codes(registry: Registry) -> None:
    cities = registry.cities
    assert cities.height == 148
    assert cities["unit_code"].n_unique() == 148
    assert cities["name_zh"].n_unique() == 148
    assert cities["unit_code"].str.contains(r"^\d{4}00$").all()
    assert cities["unit_code"].to_list() == sorted(cities["unit_code"].to_list())


@pytest.mark.parametrize(
    ("name_zh", "unit_code", "name_en", "province_zh"),
    [
        ("上海", "310000", "Shanghai", "上海"),
        ("苏州", "320500", "Suzhou", "江苏"),
        ("吉林", "220200", "Jilin", "吉林"),
        ("海口", "460100", "Haikou", "海南"),
        ("拉萨", "540100", "Lhasa", "西藏"),
        ("呼和浩特", "150100", "Hohhot", "内蒙古"),
        ("乌鲁木齐", "650100", "Urumqi", "新疆"),
        ("西安", "610100", "Xi'an", "陕西"),
    ],
)
def test_city_codes_and_names(
    registry: Registry, name_zh: str, unit_code: str, name_en: str, province_zh: str
) -> None:
    row = registry.cities.filter(pl.col("name_zh") == name_zh)
    assert row.select("unit_code", "name_en", "province_zh").rows() == [(unit_code, name_en, province_zh)]


def test_100_counties_split_50_50(registry: Registry) -> None:
    counties = registry.counties
    assert counties.height == 100
    assert counties["unit_code"].n_unique() == 100
    kinds = dict(counties.group_by("kind").len().iter_rows())
    assert kinds == {"district": 50, "county": 50}


def test_county_rows_as_printed(registry: Registry) -> None:
    by_name = registry.counties.filter(pl.col("name_zh").is_in(["深圳市南山区", "准格尔旗", "长沙县"])).sort(
        "name_zh"
    )
    assert by_name.select(
        "name_zh", "unit_code", "name_en", "kind", "city_code", "city_name_zh", "province_zh"
    ).rows() == [
        ("准格尔旗", "150622", "Jungar Banner", "county", "150600", "鄂尔多斯", "内蒙古"),
        ("深圳市南山区", "440305", "Nanshan District, Shenzhen", "district", "440300", "深圳", "广东"),
        ("长沙县", "430121", "Changsha County", "county", "430100", "长沙", "湖南"),
    ]


def test_region_member_counts(registry: Registry) -> None:
    listed = registry.region_members.group_by("region_code").agg(
        pl.len().alias("n"), pl.col("unit_code").is_not_null().sum().alias("n_scored")
    )
    counts = {row["region_code"]: (row["n"], row["n_scored"]) for row in listed.iter_rows(named=True)}
    assert counts == {
        "jingjinji": (13, 13),
        "yangtze_delta": (41, 41),
        "greater_bay": (11, 9),
        "chengyu": (16, 16),
    }
    published = dict(registry.regions.select("region_code", "n_members_published").iter_rows())
    assert {code: n for code, (n, _) in counts.items()} == published


def test_unscored_bay_area_members_are_hong_kong_and_macao(registry: Registry) -> None:
    unscored = registry.region_members.filter(pl.col("unit_code").is_null())
    assert sorted(unscored["member_name_zh"].to_list()) == ["澳门", "香港"]


def test_region_member_codes_are_cities(registry: Registry) -> None:
    codes = registry.region_members.drop_nulls("unit_code")["unit_code"]
    assert codes.is_in(registry.cities["unit_code"].to_list()).all()


def test_gdp_revised_complete_2017_2019(registry: Registry) -> None:
    revised = registry.city_gdp.filter(pl.col("vintage") == "revised")
    per_year = dict(revised.group_by("year").agg(pl.col("unit_code").n_unique()).iter_rows())
    assert per_year == {2017: 148, 2018: 148, 2019: 148}


def test_gdp_first_published_complete_except_known_gap(registry: Registry) -> None:
    first = registry.city_gdp.filter(pl.col("vintage") == "first_published")
    assert first.filter(pl.col("year") == 2019).height == 148
    all_codes = set(registry.cities["unit_code"].to_list())
    for year in (2017, 2018):
        present = set(first.filter(pl.col("year") == year)["unit_code"].to_list())
        assert sorted(all_codes - present) == FIRST_PUBLISHED_GAP


def test_gdp_for_year(registry: Registry) -> None:
    gdp = gdp_for_year(registry, 2019, "revised")
    assert gdp.columns == ["unit_code", "gdp_100m_yuan"]
    assert gdp.height == 148
    assert (gdp["gdp_100m_yuan"] > 0).all()
    assert gdp_for_year(registry, 2018, "first_published").height == 148 - len(FIRST_PUBLISHED_GAP)
    with pytest.raises(ValueError, match="unknown GDP vintage"):
        gdp_for_year(registry, 2019, "final")
    with pytest.raises(ValueError, match="no revised GDP for 2030"):
        gdp_for_year(registry, 2030, "revised")


def test_code_change_haimen(registry: Registry) -> None:
    haimen = registry.counties.filter(pl.col("name_zh") == "海门市")
    assert haimen.select("unit_code", "city_code", "kind").rows() == [("320684", "320600", "county")]
    change = registry.code_changes.filter(pl.col("unit_code") == "320684")
    assert change.select("unit_type", "name_zh", "current_code", "current_name_zh", "change_year").rows() == [
        ("county", "海门市", "320614", "南通市海门区", 2020)
    ]


def test_units_one_row_per_unit(registry: Registry) -> None:
    table = units(registry)
    assert table.columns == ["unit_type", "unit_code", "name_zh", "name_en", "province_zh", "kind"]
    assert table.height == 248
    assert table["unit_code"].n_unique() == 248
    assert dict(table.group_by("kind").len().iter_rows()) == {"city": 148, "district": 50, "county": 50}


def test_version_is_short_sha_and_tracks_content(registry: Registry, tmp_path: Path) -> None:
    assert len(registry.version) == 12
    int(registry.version, 16)
    copy = _copy_registry(tmp_path)
    assert load_registry(copy).version == registry.version
    path = copy / "registry" / "regions.csv"
    path.write_text(
        path.read_text(encoding="utf-8").replace("Chengdu-Chongqing", "Cheng-Yu"), encoding="utf-8"
    )
    assert load_registry(copy).version != registry.version


# ---------------------------------------------------------------- validator messages


def _copy_registry(tmp_path: Path) -> Path:
    target = tmp_path / "data" / "registry"
    target.mkdir(parents=True)
    for name in REGISTRY_FILES:
        shutil.copy(DATA_DIR / "registry" / name, target / name)
    return tmp_path / "data"


def _edit_line(path: Path, line: int, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the 1-based ``line`` of ``path`` (must occur there)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def _line_of(path: Path, prefix: str) -> int:
    lines = path.read_text(encoding="utf-8").split("\n")
    return next(i for i, text in enumerate(lines, start=1) if text.startswith(prefix))


@pytest.mark.parametrize(
    ("file", "prefix", "old", "new", "column", "value", "rule"),
    [
        (
            "cities.csv",
            "320500,苏州",
            "320500",
            "32050",
            "unit_code",
            "32050",
            "is not a 6-digit GB/T 2260 code",
        ),
        ("cities.csv", "320500,苏州", "苏州,", "无锡,", "name_zh", "无锡", "must be unique in the file"),
        ("counties.csv", "320684,海门市", ",county,", ",town,", "kind", "town", "is not a county kind"),
        (
            "counties.csv",
            "320684,海门市",
            "320684",
            "320281",
            "unit_code",
            "320281",
            "must be unique in the file",
        ),
        (
            "region_members.csv",
            "chengyu,成都",
            "510100",
            "510122",
            "unit_code",
            "510122",
            "is not the unit_code of a city",
        ),
        (
            "region_members.csv",
            "chengyu,成都",
            "510100",
            "500000",
            "unit_code",
            "500000",
            "the city that member_name_zh names",
        ),
        (
            "city_gdp.csv",
            "110000,2019,revised",
            ",2019,revised,",
            ",2019,final,",
            "vintage",
            "final",
            "is not a GDP vintage",
        ),
        (
            "city_gdp.csv",
            "110000,2019,revised",
            ",35445.10,",
            ",-35445.10,",
            "gdp_100m_yuan",
            "-35445.10",
            "is not a GDP figure > 0",
        ),
        (
            "city_gdp.csv",
            "110000,2019,revised",
            ",2019,revised,",
            ",2018,revised,",
            "unit_code,year,vintage",
            "110000,2018,revised",
            "is a duplicate of line",
        ),
    ],
)
def test_validator_message_names_file_line_column_value_rule(
    tmp_path: Path, file: str, prefix: str, old: str, new: str, column: str, value: str, rule: str
) -> None:
    data_dir = _copy_registry(tmp_path)
    path = data_dir / "registry" / file
    line = _line_of(path, prefix)
    _edit_line(path, line, old, new)
    with pytest.raises(RegistryError) as caught:
        load_registry(data_dir)
    message = str(caught.value)
    assert message.startswith(f"{path} line {line}, column {column}: value {value!r}")
    assert rule in message


def test_validator_missing_column(tmp_path: Path) -> None:
    data_dir = _copy_registry(tmp_path)
    path = data_dir / "registry" / "cities.csv"
    _edit_line(path, 1, ",name_en,", ",english,")
    with pytest.raises(RegistryError, match=r"cities\.csv line 1, column name_en: .*required column"):
        load_registry(data_dir)


def test_registry_error_is_value_error() -> None:
    assert issubclass(RegistryError, ValueError)
