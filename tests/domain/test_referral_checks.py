"""domain/referral_checks.py: the referral model's checks, compiled with mypyc where setup.py can build it.

Each shortcut it takes is checked against what it replaces: the NHS number against ``nhs_number.is_valid``,
its constants against the models' enums and field names, the cross-field view against the model's own JSON
dump. That the compiled module gives the same readings as its plain-Python source is checked over every
Bundle by tests/fhir/test_compiled_reader.py (the plain copy there has no compiled module at all).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import nhs_number
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel

from escape_fhir.domain import referral as R
from escape_fhir.domain import referral_checks as checks
from escape_fhir.domain.startback import score
from escape_fhir.errors import FieldError
from escape_fhir.fhir import readers

from . import changed, load_table

TABLE = load_table("referral.json")

_DIGITS = st.text(alphabet="0123456789", min_size=10, max_size=10)
#: The Scottish CHI range (0100000000-3112999999), where is_valid also requires DDMMYY to be a date.
_CHI = st.integers(100_000_000, 3_112_999_999).map(lambda n: f"{n:010d}")
#: Ten characters ``str.isdigit`` accepts that are not all ASCII (the validator lets them through to the check).
_OTHER_DIGITS = st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=10, max_size=10).filter(str.isdigit)


@settings(database=None, max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_DIGITS, _CHI, _OTHER_DIGITS))
@example("9990001413")  # valid, England's synthetic range
@example("9990001412")
@example("0101000000")  # CHI range, a date
@example("3102991233")  # CHI range, 31 February: not a date
@example("3113000000")  # just past the CHI range
@example("0099999999")  # just before it
@example("0000000000")
@example("٩٩٩٠٠٠١٤١٣")  # Arabic-Indic digits
def test_the_check_digit_is_is_valids_for_every_ten_digits(digits: str) -> None:
    assert checks.valid_ten_digits(digits) is nhs_number.is_valid(digits)


@pytest.mark.parametrize("value", ["999 000 1413", "999-000-1413", "9990001412", "999000141", "12345678901", "x"])
def test_the_nhs_number_validator_reports_as_before(value: str) -> None:
    """The messages the model gives (tests/domain/cases/referral.json holds the located cases)."""
    digits = value.replace(" ", "").replace("-", "")
    if len(digits) != 10 or not digits.isdigit():
        expected = f"{value!r} is not a 10-digit NHS number"
    elif not nhs_number.is_valid(digits):
        expected = f"{value!r} fails the NHS number check digit (Modulus 11)"
    else:
        assert checks.nhs_number_digits(value) == digits
        return
    with pytest.raises(ValueError, match="^" + expected.replace("(", r"\(").replace(")", r"\)") + "$"):
        checks.nhs_number_digits(value)


def test_the_constants_agree_with_the_models() -> None:
    assert {s.value for s in R.KNEE_HIP_SITES} == checks.KNEE_HIP_SITE_VALUES
    assert {s.value for s in R.Site} == checks._SITE_VALUES
    assert {s.value for s in R.ReferralSource} - {"self-referral"} == checks._REFERRER_SOURCES
    assert (R.Pathway.KNEE_HIP.value, R.Pathway.BACK.value) == (checks._KNEE_HIP, checks._BACK)
    fields = R.EligibilityAnswers.model_fields
    for name in (*checks.KNEE_HIP_ONLY, *checks.BACK_ONLY):
        assert name in fields
        assert checks.ANSWER_WIRE_NAMES[name] == to_camel(name) == fields[name].alias


def test_the_valid_cases_have_no_cross_field_problems() -> None:
    today = date.today()
    for case in TABLE["valid"]:
        referral = R.load_referral(changed(TABLE["bases"][case["base"]], case))
        assert checks.referral_problems(referral, today) == _via_json_form(referral, today) == []


def _via_json_form(referral: R.Referral, today: date) -> list[FieldError]:
    """What the model's validator checked before referral_problems: consistency_problems on the model's JSON
    form, then the STarT Back result against the score of the answers."""
    dumped: dict[str, Any] = referral.model_dump(mode="json", by_alias=True, exclude_none=True)
    dates = (referral.patient.birth_date, referral.referral_date, referral.symptom_onset_date)
    problems = checks.consistency_problems(dumped, today, dates=dates)
    if referral.start_back is not None and referral.start_back_result is not None:
        computed = score(referral.start_back)
        given = referral.start_back_result
        if (given.risk, given.total, given.psychosocial) != (
            computed.risk.value,
            computed.total if given.total is not None else None,
            computed.psychosocial if given.psychosocial is not None else None,
        ):
            problems.append(
                FieldError(
                    "startBackResult",
                    f"does not match the score of startBack (total {computed.total}, "
                    f"psychosocial {computed.psychosocial}, risk {computed.risk.value})",
                )
            )
    return problems


_ANSWERS = st.fixed_dictionaries({}, optional={n: st.none() | st.booleans() for n in R.EligibilityAnswers.model_fields})
_RESULTS = st.none() | st.builds(
    lambda t, p, r: R.StartBackResult.model_construct(total=t, psychosocial=p, risk=r),
    st.none() | st.integers(0, 9),
    st.none() | st.integers(0, 5),
    st.sampled_from(["low", "medium", "high"]),
)
_DATES = st.none() | st.dates(date(1880, 1, 1), date(2030, 12, 31))


@settings(database=None, max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(sorted(TABLE["bases"])),
    pathway=st.sampled_from(list(R.Pathway)),
    source=st.sampled_from(list(R.ReferralSource)),
    referrer=st.booleans(),
    sites=st.lists(st.sampled_from(list(R.Site)), max_size=3),
    answers=_ANSWERS,
    start_back=st.booleans(),
    result=_RESULTS,
    birth=_DATES,
    referred=st.dates(date(1990, 1, 1), date(2030, 12, 31)),
    onset=_DATES,
)
def test_the_models_cross_field_problems_are_those_of_its_json_form(
    base: str,
    pathway: R.Pathway,
    source: R.ReferralSource,
    referrer: bool,
    sites: list[R.Site],
    answers: dict[str, bool | None],
    start_back: bool,
    result: R.StartBackResult | None,
    birth: date | None,
    referred: date,
    onset: date | None,
) -> None:
    """referral_problems reads the model's attributes; consistency_problems the JSON form. Models built
    without validation (model_construct), so that every combination is tried, not only consistent ones."""
    valid = R.load_referral(TABLE["bases"][base])
    patient = valid.patient.model_copy(update={"birth_date": birth})
    referral = valid.model_copy(
        update={
            "pathway": pathway,
            "source": source,
            "referrer": valid.referrer or R.Referrer.model_construct(role="gp") if referrer else None,
            "affected_sites": sites,
            "eligibility": R.EligibilityAnswers.model_construct(**answers),
            "start_back": TABLE["bases"]["back-full"]["startBack"] if start_back else None,
            "start_back_result": result,
            "patient": patient,
            "referral_date": referred,
            "symptom_onset_date": onset,
        }
    )
    today = date(2026, 12, 3)
    assert checks.referral_problems(referral, today) == _via_json_form(referral, today)


def test_a_referral_without_answers_shares_the_empty_answers() -> None:
    data = {k: v for k, v in TABLE["bases"]["back-full"].items() if k != "eligibility"}
    referral = R.load_referral(data)
    assert referral.eligibility is R.NO_ANSWERS
    assert R.NO_ANSWERS == R.EligibilityAnswers() == R.load_referral(data | {"eligibility": {}}).eligibility
    assert "eligibility" not in referral.model_fields_set


def test_the_checks_are_compiled_with_the_reader() -> None:
    """Where the reader is compiled (setup.py), so are the checks, and the models call them directly."""
    if readers.__file__.endswith(".py"):
        pytest.skip("the reader is not compiled here (no C compiler at setup, or ESCAPE_FHIR_PURE=1)")
    assert checks.__file__.endswith(".so"), checks.__file__
    assert type(checks.nhs_number_digits).__name__ != "function"  # a mypyc native function
    validator = repr(R.Patient.__pydantic_validator__)
    assert "nhs_number_digits" in validator
