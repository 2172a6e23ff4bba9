"""Red flags and exclusions: coded diagnoses that mean a referral is not for ESCAPE-pain.

ESCAPE-pain is for non-specific low back pain and for knee or hip osteoarthritis. A diagnosis that points
to a specific, serious or inflammatory cause is never "eligible": the ``red-flags`` criterion is not met,
naming the concept and where it was found (issue 9; docs/clinical-safety.md).

Sources of the built-in table:

* NICE NG59 (Low back pain and sciatica in over 16s, 2016, updated 2020), scope and recommendation 1.1.1:
  the guideline excludes serious spinal pathology (cancer, infection, fracture, cauda equina syndrome) and
  inflammatory causes such as spondyloarthritis, and tells the clinician to think about alternative
  diagnoses at every stage;
* NICE NG226 (Osteoarthritis in over 16s, 2022), recommendation 1.1.2 (carried over from CG177): atypical
  features (trauma, prolonged morning stiffness, rapid deterioration, a hot swollen joint) can mean another
  diagnosis; important differentials are gout, other inflammatory arthritides such as rheumatoid arthritis,
  septic arthritis and malignancy (bone pain).

The concept ids were checked against several independent public code sources (no SNOMED CT browser or
terminology server was available, nhs-standards.md 5). Without a terminology server the descendants of a
concept cannot be computed, so a descendant matches only when it is listed: the table lists the common
ones that could be confirmed, and a site adds its own codes from a file (``ESCAPE_FHIR_RED_FLAGS``, read
outside the domain by :mod:`escape_fhir.site_red_flags`). Infection of the spine (discitis, vertebral
osteomyelitis) and septic arthritis are in the guidelines but no concept id for them could be confirmed
from two sources: a site must add them (docs/clinical-safety.md, "Red flags").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from escape_fhir.domain.referral import Pathway
from escape_fhir.errors import FieldError, RedFlagInputError

BOTH = frozenset(Pathway)
BACK = frozenset({Pathway.BACK})
KNEE_HIP = frozenset({Pathway.KNEE_HIP})

NG59 = "NICE NG59 (low back pain and sciatica), scope and 1.1.1"
NG226 = "NICE NG226 (osteoarthritis), 1.1.2"


@dataclass(frozen=True)
class RedFlag:
    """One SNOMED CT concept that excludes a referral from the pathways it names."""

    code: str
    display: str
    pathways: frozenset[Pathway]
    meaning: str
    source: str


def _flag(code: str, display: str, pathways: frozenset[Pathway], meaning: str, source: str) -> RedFlag:
    return RedFlag(code, display, pathways, meaning, source)


#: The built-in red flags and exclusions, keyed by SNOMED CT concept id. The ValueSet ``red-flags`` in
#: ``profiles/`` is generated from this table (escape_fhir.fhir.conformance), never retyped.
RED_FLAGS: Mapping[str, RedFlag] = {
    f.code: f
    for f in (
        _flag(
            "192970008",
            "Cauda equina syndrome",
            BACK,
            "Compression of the cauda equina: a surgical emergency, not a case for group exercise.",
            NG59,
        ),
        _flag(
            "363346000",
            "Malignant neoplastic disease",
            BOTH,
            "Cancer: back or joint pain may be bone or spinal malignancy (NG59 serious spinal pathology; NG226 "
            "differential 'malignancy (bone pain)').",
            f"{NG59}; {NG226}",
        ),
        _flag(
            "94222008",
            "Secondary malignant neoplasm of bone",
            BOTH,
            "Bone metastasis: a common descendant of malignant neoplastic disease, listed because descendants "
            "cannot be computed here.",
            f"{NG59}; {NG226}",
        ),
        _flag(
            "125605004",
            "Fracture of bone",
            BOTH,
            "A fracture (of the spine, or of the joint after trauma) explains the pain and needs its own care.",
            f"{NG59}; {NG226} (history of trauma)",
        ),
        _flag(
            "9631008",
            "Ankylosing spondylitis",
            BACK,
            "Inflammatory spondyloarthritis: a specific cause of back pain, managed by rheumatology.",
            f"{NG59} (spondyloarthritis)",
        ),
        _flag(
            "69896004",
            "Rheumatoid arthritis",
            KNEE_HIP,
            "Inflammatory arthritis: an alternative diagnosis to osteoarthritis of the knee or hip.",
            NG226,
        ),
        _flag(
            "156370009",
            "Psoriatic arthritis",
            BOTH,
            "Inflammatory arthritis (a spondyloarthritis): an alternative diagnosis to osteoarthritis and a "
            "specific cause of back pain.",
            f"{NG226} (other inflammatory arthritides); {NG59} (spondyloarthritis)",
        ),
        _flag(
            "90560007",
            "Gout",
            KNEE_HIP,
            "Crystal arthritis: an alternative diagnosis to osteoarthritis of the knee or hip.",
            NG226,
        ),
    )
}

#: The columns of a site's red-flag file (CSV header or JSON object keys); ``pathway`` is ``knee-hip``,
#: ``back`` or ``both``.
SITE_COLUMNS = ("code", "display", "pathway")
SITE_SOURCE = "added by this site (ESCAPE_FHIR_RED_FLAGS)"


# SNOMED CT identifiers end in a Verhoeff check digit (SNOMED CT Technical Implementation Guide, "Check
# digit"): checking it catches a mistyped code in a site's list, which would otherwise never match and
# silently let a red flag through. Written here (the standard dihedral-group tables) since no maintained
# library for it fits.
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def is_sctid(code: str) -> bool:
    """A well-formed SNOMED CT concept id: 6-18 digits, no leading zero, a valid Verhoeff check digit."""
    if not (code.isdigit() and 6 <= len(code) <= 18 and code[0] != "0"):
        return False
    check = 0
    for i, digit in enumerate(reversed(code)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][int(digit)]]
    return check == 0


def _site_flag(row: object, where: str) -> tuple[RedFlag | None, list[FieldError]]:
    if not isinstance(row, Mapping):
        return None, [FieldError(where, "expected an object with code, display and pathway")]
    errors = [FieldError(f"{where}.{key}", "missing") for key in SITE_COLUMNS if not str(row.get(key) or "").strip()]
    unknown = sorted(str(k) for k in row if k not in SITE_COLUMNS)
    errors += [FieldError(f"{where}.{key}", "unknown column") for key in unknown]
    code, display, pathway = (str(row.get(k) or "").strip() for k in SITE_COLUMNS)
    if code and not is_sctid(code):
        errors.append(FieldError(f"{where}.code", f"{code!r} is not a SNOMED CT concept id (check digit)"))
    pathways = {"both": BOTH, "back": BACK, "knee-hip": KNEE_HIP}.get(pathway)
    if pathway and pathways is None:
        errors.append(FieldError(f"{where}.pathway", f"{pathway!r} is not knee-hip, back or both"))
    if errors or pathways is None:
        return None, errors
    return RedFlag(code, display, pathways, "A red flag or exclusion this site added.", SITE_SOURCE), []


def with_site_flags(rows: Iterable[object], base: Mapping[str, RedFlag] = RED_FLAGS) -> dict[str, RedFlag]:
    """The built-in table extended with a site's rows (each ``{code, display, pathway}``).

    A site row for a built-in code widens its pathways and keeps the built-in meaning and source; a site
    cannot remove a built-in red flag. Every bad row is reported at once (:class:`RedFlagInputError`).
    """
    flags = dict(base)
    errors: list[FieldError] = []
    for i, row in enumerate(rows):
        flag, problems = _site_flag(row, f"row {i + 1}")
        errors += problems
        if flag is None:
            continue
        known = flags.get(flag.code)
        if known is not None:
            flag = RedFlag(known.code, known.display, known.pathways | flag.pathways, known.meaning, known.source)
        flags[flag.code] = flag
    if errors:
        raise RedFlagInputError(errors)
    return flags
