"""Python values of polars aggregates, narrowed to what the caller expects.

polars types ``Series.max()``, ``.min()``, ``.mean()`` and ``.item()`` as any Python literal (a number,
a date, text, bytes, a list, or None). These say which one is meant, and fail loudly on another."""

from __future__ import annotations

from decimal import Decimal


def number(value: object) -> float:
    """``value``, an int, float or Decimal (not a bool, not None), as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def number_or_none(value: object) -> float | None:
    """``value`` as a float, None (the aggregate of no values) as None."""
    return None if value is None else number(value)


def integer(value: object) -> int:
    """``value``, an int (not a bool, not None)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value
