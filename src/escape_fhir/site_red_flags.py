"""A site's own red flags and exclusions, read from the file ``ESCAPE_FHIR_RED_FLAGS`` names.

The built-in table (:data:`escape_fhir.domain.red_flags.RED_FLAGS`) cannot list every descendant of its
concepts without a terminology server, and sites exclude more than the national guidance does; so a site
lists extra SNOMED CT concepts in a file, one row each with ``code``, ``display`` and ``pathway``
(``knee-hip``, ``back`` or ``both``):

* CSV with that header row (``.csv``), as a spreadsheet exports it;
* JSON (``.json``): a list of objects with those keys.

The domain does no I/O, so the file is read here and the merged table is passed to
:func:`escape_fhir.domain.assess` as ``red_flags=``. Every bad row is named (``RedFlagInputError``, exit 2
on the command line).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from escape_fhir.domain.red_flags import RED_FLAGS, RedFlag, with_site_flags
from escape_fhir.errors import FieldError, RedFlagInputError

ENV_VAR = "ESCAPE_FHIR_RED_FLAGS"


def _rows(path: Path, text: str) -> list[object]:
    if path.suffix.lower() == ".json":
        try:
            rows = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise RedFlagInputError([FieldError(str(path), f"not valid JSON: {exc}")]) from None
        if not isinstance(rows, list):
            raise RedFlagInputError([FieldError(str(path), "expected a JSON list of {code, display, pathway}")])
        return rows
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    raise RedFlagInputError([FieldError(str(path), "a red-flag list must be a .csv or .json file")])


def load_red_flags(path: Path) -> dict[str, RedFlag]:
    """The built-in red flags with the site's rows from ``path`` added."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise RedFlagInputError([FieldError(str(path), f"cannot read: {exc}")]) from None
    return with_site_flags(_rows(path, text))


def red_flags_from_env(environ: Mapping[str, str] | None = None) -> dict[str, RedFlag]:
    """The red flags for this process: the built-in table, plus the site's file when ``ESCAPE_FHIR_RED_FLAGS``
    names one."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return load_red_flags(Path(value)) if value else dict(RED_FLAGS)
