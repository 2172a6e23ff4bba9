"""UCUM codes (https://ucum.org/ucum): a Quantity whose ``system`` is UCUM must carry a valid UCUM code.

FHIR R4 datatypes.html#Quantity: when ``system`` is ``http://unitsofmeasure.org``, ``code`` is a UCUM unit
code; the reference validator reports one that is not valid UCUM as an error. The grammar is ucumvert's
(a maintained UCUM parser built on the UCUM specification's own examples), not a hand-written one.

Speed: the 1,357 codes of R4's ``ucum-common`` value set are known valid without parsing (a frozenset from
``r4-terminology.json.gz``); any other code is parsed once per process (an LRU cache), and the parser is built
only when the first such code is met (about 0.2 s: importing ucumvert and building its parser). A few of
those common codes hold a space inside an annotation (``{# of fetuses}``), which ucumvert's grammar refuses;
FHIR lists them, so they are accepted.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from escape_fhir.validation.coredata import core_terminology

__all__ = ["UCUM", "ucum_problem"]

UCUM = "http://unitsofmeasure.org"
_lock = threading.Lock()


def ucum_problem(code: str) -> str | None:
    """Why ``code`` is not a valid UCUM unit code, or None when it is."""
    if code in core_terminology().ucum_common:
        return None
    return _parsed(code)


@functools.lru_cache(maxsize=4096)
def _parsed(code: str) -> str | None:
    from ucumvert import InvalidUcumError, parse_ucum

    if not code or code != code.strip():
        return "a UCUM code has no leading or trailing whitespace and is not empty"
    try:
        with _lock:  # lark parsers are not documented as thread safe
            parse_ucum(code, _parser())
    except InvalidUcumError as exc:
        return str(exc).splitlines()[0]
    except RecursionError:
        return "the code is nested too deeply to be read"
    return None


@functools.cache
def _parser() -> Any:
    from ucumvert import get_ucum_parser

    return get_ucum_parser()
