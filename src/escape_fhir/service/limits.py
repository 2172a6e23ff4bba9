"""The server's limits on work a request may cause, and strict parsing of the numbers in URLs and headers.

Each limit answers with a 4xx OperationOutcome naming it (README "Server", "Limits"). Numbers from URLs and
headers are parsed strictly: ASCII digits only, a bounded number of them. ``str.isdigit`` is not enough: it
accepts superscripts and other Unicode digits (``"²".isdigit()`` is True) that ``int()`` then refuses, and
an unbounded digit string becomes an integer no database column holds.
"""

from __future__ import annotations

import re

from escape_fhir.errors import Issue
from escape_fhir.fhir.bounds import MAX_CONTAINERS, MAX_DEPTH
from escape_fhir.service.outcomes import MAX_ISSUES, OutcomeError, Problem

__all__ = [
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_ENTRIES",
    "MAX_ISSUES",
    "MAX_SEARCH_VALUES",
    "ascii_int",
    "too_many",
]

# MAX_DEPTH (elements nested) and MAX_CONTAINERS (JSON objects and arrays) are checked as a document is read
# (fhir/bounds.py); MAX_ISSUES caps every OperationOutcome answer (service/outcomes.py).
#: Entries of one Bundle (a referral message has about 20; BaRS messages stay far below this).
MAX_ENTRIES = 1000
#: Values of all OR'd (comma-separated) search parameters of one search together.
MAX_SEARCH_VALUES = 100
#: Digits of a version id, ``_count`` or ``_offset``: a version id is a 64-bit integer at most.
MAX_DIGITS = 18

_ASCII_DIGITS = re.compile(r"[0-9]+")


def ascii_int(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of ``text`` when it is 1..``max_digits`` ASCII digits, else None."""
    if len(text) > max_digits or not _ASCII_DIGITS.fullmatch(text):
        return None
    return int(text)


def too_many(what: str, limit: int, location: str, problem: Problem = Problem.BAD_REQUEST) -> OutcomeError:
    """The refusal of a request past one of the limits above."""
    text = f"too many {what}: at most {limit} are accepted (a limit of this server)"
    return OutcomeError(problem, [Issue("error", "too-costly", text, location)])
