"""The server's limits on work a request may cause, and strict parsing of the numbers in URLs and headers.

Each limit answers with a 4xx OperationOutcome naming it (README "Server", "Limits"). Numbers from URLs and
headers are parsed strictly: ASCII digits only, a bounded number of them. ``str.isdigit`` is not enough: it
accepts superscripts and other Unicode digits (``"²".isdigit()`` is True) that ``int()`` then refuses, and
an unbounded digit string becomes an integer no database column holds.
"""

from __future__ import annotations

import re

from escape_fhir.errors import Issue
from escape_fhir.service.outcomes import OutcomeError, Problem

#: Nesting of FHIR elements (JSON objects, XML elements) a resource may have. Real FHIR nests far less
#: (a Bundle entry's QuestionnaireResponse item tree is about 10-20 deep); extensions nested 300 deep are
#: still valid FHIR and must validate. The same number for JSON and XML (fhir/depth.py).
MAX_DEPTH = 400
#: Entries of one Bundle (a referral message has about 20; BaRS messages stay far below this).
MAX_ENTRIES = 1000
#: Issues in one OperationOutcome answer; the rest are counted in a last issue.
MAX_ISSUES = 500
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
