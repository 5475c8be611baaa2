"""The indicator systems of the appendix and the loader's validation."""

from pathlib import Path

import polars as pl
import pytest

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.frameworks import FrameworkError, load_framework, resolve_framework, resolve_framework_path

DATA = REPO_ROOT / "data"
HEADER = "code,parent_code,name_zh,name_en,weight\n"


@pytest.mark.parametrize(
    ("unit_type", "counts", "level1_weights"),
    [
        (
            "city",
            {1: 4, 2: 12, 3: 46},
            {"infra": 0.20, "service": 0.35, "governance": 0.20, "industry": 0.25},
        ),
        ("county", {1: 3, 2: 9, 3: 32}, {"infra": 0.20, "service_governance": 0.40, "industry": 0.40}),
    ],
)
def test_2020_systems_match_the_appendix(
    unit_type: str, counts: dict[int, int], level1_weights: dict[str, float]
) -> None:
    framework = load_framework(DATA / "frameworks" / f"{unit_type}_2020.csv")
    assert dict(framework.nodes.group_by("level").len().sort("level").iter_rows()) == counts
    assert framework.nodes.filter(pl.col("is_leaf"))["level"].unique().to_list() == [3]
    assert (
        dict(framework.nodes.filter(pl.col("level") == 1).select("code", "weight").iter_rows())
        == level1_weights
    )
    assert framework.nodes.filter(pl.col("is_leaf"))["effective_weight"].sum() == pytest.approx(1.0)


def test_effective_weight_is_the_product_down_the_tree() -> None:
    nodes = load_framework(DATA / "frameworks" / "city_2020.csv").nodes
    weight = dict(nodes.select("code", "effective_weight").iter_rows())
    # 产业融合 25% x 产业数字化 70% x 农业 12.5%
    assert weight["industry_sectors_agriculture"] == pytest.approx(0.25 * 0.70 * 0.125)
    # 城市服务 35% x 建设运营 65% x 营商环境数字化 15%
    assert weight["service_build_business_env"] == pytest.approx(0.35 * 0.65 * 0.15)


def write(tmp_path: Path, body: str, name: str = "city_2020.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "a,,A,A,0.5\nb,,B,B,0.5\na,,A2,A2,0.0\n",
            "line 4, node 'a': duplicate code (first defined on line 2)",
        ),
        ("a,,A,A,1.5\n", "line 2, node 'a', column weight: value 1.5 is not in (0, 1]"),
        ("a,,A,A,0\nb,,B,B,1\n", "line 2, node 'a', column weight: value 0.0 is not in (0, 1]"),
        ("a,,A,A,x\n", "line 2, node 'a', column weight: value 'x' is not a number"),
        ("a,,A,A,0.6\nb,,B,B,0.3\n", "weights of the level-1 nodes (a, b) sum to 0.9, not 1"),
        (
            "a,,A,A,1\na1,a,A1,A1,0.5\na2,a,A2,A2,0.4\n",
            "weights of the children of 'a' (a1, a2) sum to 0.9, not 1",
        ),
        ("a,,A,A,1\nb,zz,B,B,1\n", "line 3, node 'b': parent 'zz' is not defined (orphan node)"),
        ("a,,A,A,1\nb,c,B,B,1\nc,b,C,C,1\n", "node 'b': cycle in parent links (b -> c -> b)"),
        ("Bad-Code,,A,A,1\n", "node 'Bad-Code': code must be lower-case ASCII"),
    ],
)
def test_invalid_trees_are_refused_naming_file_and_node(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(FrameworkError) as error:
        load_framework(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "city_2020.csv"
    path.write_text("code,parent_code,name_zh,weight\na,,A,1\n", encoding="utf-8")
    with pytest.raises(FrameworkError, match="missing column\\(s\\) name_en"):
        load_framework(path)


def test_any_depth(tmp_path: Path) -> None:
    path = write(tmp_path, "a,,A,A,1\nb,a,B,B,1\nc,b,C,C,0.5\nd,b,D,D,0.5\ne,d,E,E,1\n")
    framework = load_framework(path)
    assert framework.depth == 4
    assert framework.leaf_codes == ["c", "e"]


def test_an_edition_uses_its_own_file_else_the_latest_before_else_the_earliest(tmp_path: Path) -> None:
    folder = tmp_path / "frameworks"
    folder.mkdir()
    for year in (2018, 2020):
        (folder / f"city_{year}.csv").write_text(HEADER + "a,,A,A,1\n", encoding="utf-8")
    assert resolve_framework_path(tmp_path, "city", 2020).name == "city_2020.csv"
    assert resolve_framework_path(tmp_path, "city", 2019).name == "city_2018.csv"
    assert resolve_framework_path(tmp_path, "city", 2025).name == "city_2020.csv"
    assert resolve_framework_path(tmp_path, "city", 2015).name == "city_2018.csv"
    with pytest.raises(FrameworkError, match="no framework file for unit type 'county'"):
        resolve_framework_path(tmp_path, "county", 2020)


def test_sample_editions_before_2020_use_the_2020_systems() -> None:
    framework = resolve_framework(DATA, "city", 2017)
    assert framework.source_file.name == "city_2020.csv"
    assert framework.version.startswith("city_2020.csv@")
