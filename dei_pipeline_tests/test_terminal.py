"""Terminal tables line up on display width, whatever mix of Chinese and Latin text they hold."""

from rich.cells import cell_len

from dei_pipeline.terminal import text_table


def test_columns_line_up_on_display_width_with_numbers_right_aligned() -> None:
    lines = text_table(
        ["name", "score"], [["上海", "90.5"], ["Wuxi", "-"], ["数据及信息化基础设施", "7.0"]]
    ).splitlines()
    assert lines == [
        "name                   score",
        "────────────────────────────",
        "上海                    90.5",
        "Wuxi                       -",
        "数据及信息化基础设施     7.0",
    ]
    assert len({cell_len(line) for line in lines}) == 1


def test_a_markdown_table_keeps_text_left_and_puts_no_blanks_at_line_ends() -> None:
    assert text_table(
        ["rank", "name_zh", "note"], [["1", "上海", "a [b]"], ["10", "武汉", ""]], markdown=True
    ).splitlines() == [
        "| rank | name_zh | note  |",
        "|------|---------|-------|",
        "|    1 | 上海    | a [b] |",
        "|   10 | 武汉    |       |",
    ]
