"""domain/durations.py: calendar months between two days, compiled with the reader (mypyc) where setup.py can
build it; the compiled function must give what its source gives when interpreted."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.domain import durations, eligibility
from escape_fhir.fhir import readers


def _interpreted() -> Any:
    """The module's source run by the interpreter (whether or not the imported module is compiled)."""
    source = Path(durations.__file__).with_name("durations.py").read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "durations_interpreted"}
    exec(compile(source, "durations.py", "exec"), namespace)
    return namespace["calendar_months"]


def _days() -> list[date]:
    """Month ends, leap days and ordinary days over a few years, the boundaries the rule cares about."""
    days: set[date] = set()
    for year in (2019, 2020, 2023, 2024):
        for month in range(1, 13):
            first = date(year, month, 1)
            days.update(first + timedelta(days=d) for d in (-3, -2, -1, 0, 1, 14, 27, 28))
    return sorted(days)


def test_compiled_calendar_months_agree_with_the_source() -> None:
    plain = _interpreted()
    days = _days()
    for start in days[::3]:
        for end in days:
            assert durations.calendar_months(start, end) == plain(start, end), (start, end)


def test_calendar_months_examples() -> None:
    assert durations.calendar_months(date(2024, 1, 31), date(2024, 2, 29)) == (1, 0)
    assert durations.calendar_months(date(2023, 1, 31), date(2023, 2, 28)) == (1, 0)
    assert durations.calendar_months(date(2024, 3, 15), date(2024, 6, 14)) == (2, 30)
    assert durations.calendar_months(date(2024, 3, 15), date(2024, 6, 16)) == (3, 1)
    assert durations.calendar_months(date(2024, 6, 16), date(2024, 3, 15)) == (0, -93)


def test_eligibility_and_the_reader_count_months_with_it() -> None:
    assert eligibility.calendar_months is durations.calendar_months
    assert readers.calendar_months is durations.calendar_months  # type: ignore[attr-defined]


def test_calendar_months_compiled_with_the_reader() -> None:
    if readers.__file__.endswith(".py"):
        pytest.skip("the reader is not compiled here (no C compiler at setup, or ESCAPE_FHIR_PURE=1)")
    assert durations.__file__.endswith(".so"), durations.__file__
    assert type(durations.calendar_months).__name__ != "function"  # a mypyc native function
