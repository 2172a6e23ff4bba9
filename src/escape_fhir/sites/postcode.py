"""UK postcodes: normalised, checked by the format rules, and cut into the parts coverage is written in.

A postcode is an outward code (area letters + district: ``LS6``, ``EC1A``) and an inward code (sector digit
+ unit letters: ``1AA``). A site's coverage is written as postcode *districts* (``LS6``) or *sectors*
(``LS6 1``). The rules are Royal Mail's format as the GOV.UK Data Standards Catalogue and BS 7666 give them:
outward ``A9``, ``A99``, ``AA9``, ``AA99``, ``A9A`` or ``AA9A``; inward ``9AA``; Q, V and X never first; I,
J and Z never second; only ABCDEFGHJKPSTUW third (``A9A``) and ABEHMNPRVWXY fourth (``AA9A``); the unit
letters never C, I, K, M, O or V; ``GIR 0AA`` the one exception. Checked by hand, not by a library: the
PyPI packages for this are unmaintained or call a web API (no network at run time here).

A postcode that follows the rules may still not exist: only Royal Mail's address file says that, and routing
never needs it (it matches districts and sectors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OUTWARD = r"(?:[A-PR-UWYZ][0-9][0-9]?|[A-PR-UWYZ][A-HK-Y][0-9][0-9]?|[A-PR-UWYZ][0-9][ABCDEFGHJKPSTUW]|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY])"
_INWARD = r"[0-9][ABD-HJLNP-UW-Z]{2}"
POSTCODE = re.compile(rf"^(?:({_OUTWARD}) ({_INWARD})|(GIR) (0AA))$")
DISTRICT = re.compile(rf"^{_OUTWARD}$|^GIR$")
SECTOR = re.compile(rf"^(?:{_OUTWARD}|GIR) [0-9]$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Postcode:
    outward: str
    inward: str

    @property
    def text(self) -> str:
        return f"{self.outward} {self.inward}"

    @property
    def district(self) -> str:
        """The outward code: ``LS6``."""
        return self.outward

    @property
    def sector(self) -> str:
        """The outward code and the sector digit: ``LS6 1``."""
        return f"{self.outward} {self.inward[0]}"

    @property
    def area(self) -> str:
        """The letters the outward code starts with: ``LS``."""
        return re.match(r"[A-Z]+", self.outward).group(0)  # type: ignore[union-attr]


def parse_postcode(text: str) -> Postcode:
    """The postcode ``text`` names (any case, any spacing); ValueError saying why when it is not one."""
    compact = _SPACES.sub("", text.upper())
    if not 5 <= len(compact) <= 7:
        raise ValueError(f"{text!r} is not a UK postcode (5 to 7 letters and digits)")
    match = POSTCODE.match(f"{compact[:-3]} {compact[-3:]}")
    if not match:
        raise ValueError(f"{text!r} is not a UK postcode (outward code like LS6 or EC1A, inward like 1AA)")
    outward, inward = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return Postcode(outward, inward)


def parse_area(text: str) -> str:
    """A coverage entry normalised: a district (``LS6``) or a sector (``LS6 1``, the space needed: ``LS61`` is
    the district LS61); ValueError when it is neither."""
    cleaned = _SPACES.sub(" ", text.strip().upper())
    if DISTRICT.match(cleaned) or SECTOR.match(cleaned):
        return cleaned
    raise ValueError(f"{text!r} is neither a postcode district (LS6) nor a sector (LS6 1)")


def is_sector(area: str) -> bool:
    return " " in area
