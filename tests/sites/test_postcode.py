"""UK postcodes by the format rules (escape_fhir.sites.postcode): normalised, refused with the reason, cut
into district and sector."""

from __future__ import annotations

import pytest

from escape_fhir.sites.postcode import parse_area, parse_postcode

VALID = [
    pytest.param("ls6 1aa", "LS6 1AA", "LS6", "LS6 1", "LS", id="A A9 lower case"),
    pytest.param("M11AE", "M1 1AE", "M1", "M1 1", "M", id="A9 no space"),
    pytest.param("B33 8TH", "B33 8TH", "B33", "B33 8", "B", id="A99"),
    pytest.param("CR2 6XH", "CR2 6XH", "CR2", "CR2 6", "CR", id="AA9"),
    pytest.param("DN55 1PT", "DN55 1PT", "DN55", "DN55 1", "DN", id="AA99"),
    pytest.param("W1A 0AX", "W1A 0AX", "W1A", "W1A 0", "W", id="A9A"),
    pytest.param("EC1A 1BB", "EC1A 1BB", "EC1A", "EC1A 1", "EC", id="AA9A"),
    pytest.param(" sw1a  2aa ", "SW1A 2AA", "SW1A", "SW1A 2", "SW", id="spaces"),
    pytest.param("GIR 0AA", "GIR 0AA", "GIR", "GIR 0", "GIR", id="GIR 0AA"),
]
INVALID = [
    pytest.param("", "5 to 7", id="empty"),
    pytest.param("LS6", "5 to 7", id="outward only"),
    pytest.param("QS6 1AA", "not a UK postcode", id="Q never first"),
    pytest.param("LI6 1AA", "not a UK postcode", id="I never second"),
    pytest.param("W1I 0AX", "not a UK postcode", id="I never third in A9A"),
    pytest.param("EC1C 1BB", "not a UK postcode", id="C never fourth in AA9A"),
    pytest.param("LS6 1CA", "not a UK postcode", id="C never in the unit"),
    pytest.param("LS6 AAA", "not a UK postcode", id="inward starts with a digit"),
    pytest.param("123 4AB", "not a UK postcode", id="outward starts with a letter"),
    pytest.param("LS6 1A\u0661", "not a UK postcode", id="other scripts' digits"),
]


@pytest.mark.parametrize(("text", "normal", "district", "sector", "area"), VALID)
def test_valid_postcodes(text: str, normal: str, district: str, sector: str, area: str) -> None:
    postcode = parse_postcode(text)
    assert (postcode.text, postcode.district, postcode.sector, postcode.area) == (normal, district, sector, area)


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_postcodes_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_postcode(text)


@pytest.mark.parametrize(
    ("text", "area"),
    [("ls6", "LS6"), (" LS6  1 ", "LS6 1"), ("LS61", "LS61"), ("EC1A 1", "EC1A 1"), ("M1", "M1")],
    ids=["district", "sector", "two-digit district", "AA9A sector", "A9 district"],
)
def test_coverage_areas(text: str, area: str) -> None:
    assert parse_area(text) == area


@pytest.mark.parametrize("text", ["LS", "LS6 1A", "LS6 12", "Q1", ""], ids=["area", "unit", "two digits", "Q", "empty"])
def test_coverage_that_is_neither_district_nor_sector(text: str) -> None:
    with pytest.raises(ValueError, match="neither a postcode district"):
        parse_area(text)
