"""Calendar months between two days: the duration rule's arithmetic, apart from the rules that use it so that
setup.py can compile it with the reader (mypyc); :mod:`escape_fhir.domain.eligibility` and the FHIR reader
both count months with it. Plain Python where it is not compiled, with the same results.
"""

from __future__ import annotations

from datetime import date


def calendar_months(start: date, end: date) -> tuple[int, int]:
    """Whole calendar months from ``start`` to ``end``, and the days left over.

    A month is complete on the same day of a later month, or on its last day when that month is shorter
    (31 January + 1 month = 28 or 29 February).
    """
    months = (end.year - start.year) * 12 + end.month - start.month
    if months <= 0:
        return 0, (end - start).days
    shifted = _plus_months(start, months)
    if shifted > end:
        months -= 1
        shifted = _plus_months(start, months)
    return months, (end - shifted).days


def _plus_months(start: date, months: int) -> date:
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - date(year, month, 1)).days
    return date(year, month, min(start.day, last_day))
