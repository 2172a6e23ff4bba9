"""The time range a FHIR date, dateTime or instant names (search.html#date: "the precision of the value
gives the range"). Ranges are half-open, ``[low, high)``, naive UTC, so that the database compares them
without time zones. A value with no zone is taken as UTC (the server's clock and ``meta.lastUpdated`` are).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,  # \d would also take other scripts' digits
)


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """``[low, high)`` of a FHIR date/dateTime/instant, or None when ``text`` is not one (or not a real date)."""
    match = _DATE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        micro = int((fraction or ".0")[1:7].ljust(6, "0"))
        start = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0), micro
        )
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            start -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    except (ValueError, OverflowError):
        return None
    return start, _range_end(start, month is None, day is None, hour is None, second is None, fraction)


def _range_end(
    start: datetime, by_year: bool, by_month: bool, by_day: bool, by_minute: bool, fraction: str | None
) -> datetime:
    """The end of the range a value of that precision names; past year 9999 (the end of Python's and the
    databases' calendar) the range is open-ended, so ``le9999`` and ``eq9999-12-31`` still work."""
    try:
        if by_year:
            return start.replace(year=start.year + 1)
        if by_month:
            return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        if by_day:
            return start + timedelta(days=1)
        if by_minute:
            return start + timedelta(minutes=1)
        if fraction:
            return start + timedelta(milliseconds=1) if len(fraction) <= 4 else start + timedelta(microseconds=1)
        return start + timedelta(seconds=1)
    except (ValueError, OverflowError):
        return datetime.max
