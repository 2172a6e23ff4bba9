"""The codes and words that senders use for the facts of a referral, as tables.

Each table maps a sender's code (or word) to the referral input format's value. Adding a code a sender uses
is adding a row. Sources:

* SNOMED CT body structures: knee region 72696002, knee joint 49076000, right knee region 6757004, left
  knee region 82169009, hip region 29836001, hip joint 24136001, right hip region 287579007, left hip region
  287679003, lower back 37822005; each checked against several published FHIR value sets and concept maps
  (public IGs of body-site value sets), as nhs-standards.md section 5 checks its codes.
* Laterality: FHIR R4 ValueSet ``bodysite-laterality`` (419161000 unilateral left, 419465000 unilateral
  right, 51440002 bilateral) and the SNOMED CT side qualifiers 7771000 left, 24028007 right.
* Diagnoses: nhs-standards.md section 5 (osteoarthritis of knee 239873007 and of hip 239872002; low back
  pain codes and sciatica).
* Source of referral: UK Core ValueSet ``UKCore-SourceOfServiceRequest`` (SNOMED CT descendants of
  309013001 |Referred by person| and 306098008 |Self-referral|), for
  ``Extension-UKCore-SourceOfServiceRequest``.
* Referrer roles: SNOMED CT occupations 62247001 general practitioner and 36682004 physiotherapist;
  the SDS job role codes of UK Core ``UKCore-SDSJobRoleName`` (R0260 general medical practitioner, R0270
  salaried GP, R1110-R1140 physiotherapists) and NHS England's SDS job role code system, whose codes are
  ``S...:G...:R....`` with the job role last.
"""

from __future__ import annotations

import re
from typing import Final

from escape_fhir.domain.referral import LOW_BACK_PAIN_CODES, OSTEOARTHRITIS_CODES, SCIATICA_CODE, Site

# --- affected sites -----------------------------------------------------------------------------------

#: SNOMED CT body structure -> (joint, side or None). The joint is "knee", "hip" or "lower-back".
BODY_STRUCTURES: Final[dict[str, tuple[str, str | None]]] = {
    "72696002": ("knee", None),
    "49076000": ("knee", None),
    "6757004": ("knee", "right"),
    "82169009": ("knee", "left"),
    "29836001": ("hip", None),
    "24136001": ("hip", None),
    "287579007": ("hip", "right"),
    "287679003": ("hip", "left"),
    "37822005": ("lower-back", None),
}
#: SNOMED CT laterality -> the sides it names.
LATERALITY: Final[dict[str, tuple[str, ...]]] = {
    "419161000": ("left",),
    "7771000": ("left",),
    "419465000": ("right",),
    "24028007": ("right",),
    "51440002": ("left", "right"),
}
#: Diagnoses that name their joint (an osteoarthritis code of the knee says the knee is affected).
DIAGNOSIS_JOINTS: Final[dict[str, str]] = {
    "239873007": "knee",
    "239872002": "hip",
    **{code: "lower-back" for code in LOW_BACK_PAIN_CODES if code not in ("161891005", "134407002")},
}

#: Words in free text: a joint, and the side words just before it ("left", "both"; "knees" is both knees).
_SIDE_WORDS: Final = {"left": ("left",), "right": ("right",), "both": ("left", "right"), "bilateral": ("left", "right")}
#: The joint words; each must also start a word (``\b``), which :func:`sites_in_text` checks on the character
#: before the match: a pattern that starts with ``\b`` is tried at every position of the text, one that starts
#: with a word is scanned for its first letters (a third quicker on a note). No match can hide another: the
#: only non-word character inside one is the space of "low(er) back", and "back" starts no joint word.
_JOINTS: Final = re.compile(r"(knees|hips|knee(?:caps?)?|hip|low(?:er)? back|lumbar|lumbago)(?![a-z])")
_JOINT_OF: Final = {"knees": ("knee", ("left", "right")), "hips": ("hip", ("left", "right")), "knee": ("knee", None)}
_WORD: Final = re.compile(r"[a-z]+")
_JOINT_STEMS: Final = ("knee", "hip", "back", "lumba")
#: What each joint word starts with: :func:`sites_in_text` looks for these.
_SCAN_STEMS: Final = ("knee", "hip", "low", "lumba")


#: Each site by its value: a dict lookup, where ``Site(value)`` is a call into the Enum machinery (Python).
SITE_OF_VALUE: Final[dict[str, Site]] = {site.value: site for site in Site}


def sites_of(joint: str, sides: tuple[str, ...] | None) -> list[Site]:
    """The referral's sites for a joint and its sides (no side: the joint with its side not stated)."""
    if joint == "lower-back":
        return [SITE_OF_VALUE["lower-back"]]
    if not sides:
        return [SITE_OF_VALUE[joint]]
    return [SITE_OF_VALUE[f"{side}-{joint}"] for side in sides]


def sites_in_text(text: str) -> list[Site]:
    """Sites named in free text ("right knee", "both hips", "OA L knee"): each joint, with the side words
    just before it.

    Found with str methods, as :data:`_JOINTS` (with ``\\b`` before it) finds them: each joint word that starts
    a word and is not followed by a letter ``a-z``; the side words are the ``[a-z]+`` runs of the 24 characters
    before it (the last 3), nearest first. At most one joint word can match at a position, and none starts
    inside another, so looking for each word's stem separately and taking them in text order finds the same."""
    lowered = text.lower()
    found: list[Site] = []
    if not ("knee" in lowered or "hip" in lowered or "back" in lowered or "lumba" in lowered):
        return found  # every joint word holds one of these (_JOINT_STEMS)
    words: list[tuple[int, str]] = []
    for stem in _SCAN_STEMS:
        at = lowered.find(stem)
        while at >= 0:
            word = _joint_word(lowered, at, stem)
            if word and (at == 0 or not _word_char(lowered[at - 1])):
                words.append((at, word))
            at = lowered.find(stem, at + 1)
    if len(words) > 1:
        words.sort()
    for start, word in words:
        joint, plural_sides = _JOINT_OF.get(word) or (
            ("knee", None) if word.startswith("knee") else ("hip", None) if word == "hip" else ("lower-back", None)
        )
        sides = _side_before(lowered, start)
        found += [s for s in sites_of(joint, sides or plural_sides) if s not in found]
    return found


def _word_char(char: str) -> bool:
    """A word character as re's ``\\b`` sees it (alphanumerics and ``_``)."""
    return char.isalnum() or char == "_"


def _letter_at(text: str, i: int) -> bool:
    """Whether ``text[i]`` exists and is one of ``a-z`` (what ``(?![a-z])`` refuses)."""
    return i < len(text) and 97 <= ord(text[i]) <= 122


def _has_at(text: str, i: int, part: str) -> bool:
    """``text.startswith(part, i)``, written as a bounded ``find`` (compiled, a C call; ``startswith`` with a
    start is a Python method call)."""
    return not part or text.find(part, i, i + len(part)) == i


def _joint_word(lowered: str, at: int, stem: str) -> str:
    """The joint word of :data:`_JOINTS` at ``at``, where ``stem`` (one of :data:`_JOINT_STEMS`) is, or ""."""
    after = at + len(stem)
    if stem == "knee":
        for tail in ("caps", "cap", "s", ""):
            if _has_at(lowered, after, tail) and not _letter_at(lowered, after + len(tail)):
                return "knee" + tail
    elif stem == "hip":
        for tail in ("s", ""):
            if _has_at(lowered, after, tail) and not _letter_at(lowered, after + len(tail)):
                return "hip" + tail
    elif stem == "low":
        for tail in ("er back", " back"):
            if _has_at(lowered, after, tail) and not _letter_at(lowered, after + len(tail)):
                return "low" + tail
    else:  # "lumba"
        for tail in ("r", "go"):
            if _has_at(lowered, after, tail) and not _letter_at(lowered, after + len(tail)):
                return "lumba" + tail
    return ""


def _side_before(lowered: str, start: int) -> tuple[str, ...] | None:
    """The sides of the nearest side word among the last 3 ``[a-z]+`` runs of ``lowered[start - 24:start]``."""
    low = max(0, start - 24)
    i = start - 1
    for _ in range(3):
        while i >= low and not 97 <= ord(lowered[i]) <= 122:
            i -= 1
        if i < low:
            return None
        end = i + 1
        while i >= low and 97 <= ord(lowered[i]) <= 122:
            i -= 1
        sides = _SIDE_WORDS.get(lowered[i + 1 : end])
        if sides is not None:
            return sides
    return None


# --- pathway -----------------------------------------------------------------------------------------

#: Diagnosis codes that tell the pathway on their own.
PATHWAY_OF_DIAGNOSIS: Final[dict[str, str]] = {
    **dict.fromkeys(OSTEOARTHRITIS_CODES, "knee-hip"),
    **dict.fromkeys(LOW_BACK_PAIN_CODES, "back"),
    SCIATICA_CODE: "back",
}
PROGRAMME_WORDS: Final = re.compile(r"escape[\s-]*pain", re.IGNORECASE)


def programme_in(text: str) -> re.Match[str] | None:
    """``PROGRAMME_WORDS.search(text)``. An ASCII text matches it only where its lower-case form has "escape"
    (the case-blind pattern matches no other ASCII character for those letters): such a text without it is
    answered with a substring test, far cheaper than the case-blind search of every position."""
    if text.isascii() and "escape" not in text.lower():
        return None
    return PROGRAMME_WORDS.search(text)


#: Words after the programme's name that tell the pathway ("ESCAPE-pain for backs", "ESCAPE-pain knees").
PATHWAY_WORDS: Final = (
    (re.compile(r"\b(knees?|hips?|osteoarthritis)\b", re.IGNORECASE), "knee-hip"),
    (re.compile(r"\b(backs?|low(er)? back|lumbar)\b", re.IGNORECASE), "back"),
)


def pathways_in_text(text: str) -> set[str]:
    return {pathway for pattern, pathway in PATHWAY_WORDS if pattern.search(text)}


# --- source of referral --------------------------------------------------------------------------------

#: UKCore-SourceOfServiceRequest codes -> referral source. Codes not listed are "other" unless their
#: display says self-referral (the value set's self-referral branch is large and grows).
SOURCE_OF_SERVICE_REQUEST: Final[dict[str, str]] = {
    "108161000000109": "gp",  # Referred by general practitioner
    "185359002": "gp",  # Referred by another GP
    "2021000124102": "gp",  # Referred by primary care physician
    "185370009": "physiotherapy",  # Referred by physiotherapist
    "1991000124105": "self-referral",  # Referred by self
    "306098008": "self-referral",  # Self-referral
    "310434002": "self-referral",  # Self-referral to service
    "760081000000107": "self-referral",  # Physiotherapy self-referral
    "183696002": "self-referral",  # Orthopaedic self-referral
    "183700005": "self-referral",  # Rheumatology self-referral
}


_SELF_REFERRAL: Final = re.compile(r"self[\s-]*referr", re.IGNORECASE)


def source_of(code: str | None, display: str | None) -> str | None:
    if code in SOURCE_OF_SERVICE_REQUEST:
        return SOURCE_OF_SERVICE_REQUEST[code]
    if isinstance(display, str) and _SELF_REFERRAL.search(display):
        return "self-referral"
    return "other" if code else None


# --- referrer role ----------------------------------------------------------------------------------------

SNOMED_ROLES: Final[dict[str, str]] = {"62247001": "gp", "36682004": "physiotherapist"}
#: SDS job roles (UK Core UKCore-SDSJobRoleName; the R code of NHS England's S:G:R job role codes).
SDS_JOB_ROLES: Final[dict[str, str]] = {
    "R0260": "gp",
    "R0270": "gp",
    "R1110": "physiotherapist",
    "R1120": "physiotherapist",
    "R1130": "physiotherapist",
    "R1140": "physiotherapist",
}
SDS_JOB_ROLE_SYSTEMS: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-SDSJobRoleName",
    "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode",
    "https://fhir.nhs.uk/CodeSystem/England-SDS-JobRoleCode",
)
#: Words of a role's display or text, in order (the first match wins).
ROLE_WORDS: Final = (
    (re.compile(r"orthop(a)?edic", re.IGNORECASE), "orthopaedic-surgeon"),
    (re.compile(r"\b(msk|musculo-?skeletal)\b", re.IGNORECASE), "msk-practitioner"),
    (re.compile(r"physio", re.IGNORECASE), "physiotherapist"),
    (re.compile(r"\b(gp|general (medical )?practitioner|family (doctor|physician))\b", re.IGNORECASE), "gp"),
    (re.compile(r"\bnurse\b", re.IGNORECASE), "nurse"),
)
#: The referral source a referrer's role implies.
SOURCE_OF_ROLE: Final[dict[str, str]] = {
    "gp": "gp",
    "physiotherapist": "physiotherapy",
    "msk-practitioner": "msk-triage",
    "orthopaedic-surgeon": "orthopaedic-surgeon",
}


def role_in_words(text: str | None) -> str | None:
    if not isinstance(text, str):
        return None
    return next((role for pattern, role in ROLE_WORDS if pattern.search(text)), None)


def sds_role(system: str | None, code: str | None) -> str | None:
    if system not in SDS_JOB_ROLE_SYSTEMS or not isinstance(code, str):
        return None
    return SDS_JOB_ROLES.get(code.rsplit(":", 1)[-1])


#: ODS organisation role of a GP practice (ODS role RO76); an Organization requester of this type is a GP.
GP_PRACTICE_ROLES: Final = frozenset({"76", "RO76"})
