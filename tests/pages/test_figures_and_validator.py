"""The programme figures and the validator page in the browser (axe WCAG 2.2 AA on each), fed as other
systems feed the server: referral messages posted to ``$process-message``."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx

from tests.api.conftest import Server, example, message_headers
from tests.pages.conftest import accessible, sign_in


def _figures_csv(page: Any) -> dict[tuple[str, str], int]:
    with page.expect_download() as download:
        page.get_by_role("link", name="Download these figures (CSV)").click()
    rows = csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8")))
    return {(r["measure"], r["category"]): int(r["referrals"]) for r in rows}


def test_figures_count_what_arrives_by_source_programme_and_outcome(page: Any, site: Server) -> None:
    sign_in(page, "viewer")
    page.goto("/figures")
    accessible(page)
    before = _figures_csv(page)
    for name in ("knee-gp", "back-physio-medium"):
        posted = httpx.post(
            f"{site.url}/$process-message", content=example(name), headers=message_headers(str(uuid.uuid4()))
        )
        assert posted.status_code in (200, 422), posted.text  # 422: a later test run's second "new" of it
    page.reload()
    accessible(page)
    after = _figures_csv(page)
    grown = {key: after.get(key, 0) - before.get(key, 0) for key in set(after) | set(before)}
    if grown.get(("Programme", "Knees and hips"), 0):  # the session's server had not had these yet
        assert grown[("Source", "gp")] == 1
        assert grown[("Source", "physiotherapy")] == 1
        assert grown[("Programme", "Backs")] == 1
        assert grown[("STarT Back risk (backs)", "Medium")] == 1
    assert after[("Programme", "Knees and hips")] >= 1
    assert page.get_by_role("img", name="Source").count() == 1  # the SVG chart, named by its heading
    assert page.get_by_role("table", name="Source: referrals").count() == 1


def test_the_validator_shows_each_issue_beside_its_element(page: Any) -> None:
    sign_in(page, "dev")
    page.goto("/validator")
    accessible(page)
    page.get_by_label("Paste JSON or XML").fill(
        '{"resourceType": "Patient", "gender": "robot", "birthDate": "1970-02-03", "colour": "blue"}'
    )
    page.get_by_role("button", name="Validate").click()
    assert page.locator("#result").inner_text().startswith("2 errors, 1 warning")
    flagged = page.locator(".app-source__line--issue")
    texts = [flagged.nth(i).inner_text().strip() for i in range(flagged.count())]
    assert any(t.startswith('"gender": "robot"') and "Patient.gender" in t for t in texts), texts
    assert any(t.startswith('"colour": "blue"') and "unknown element" in t for t in texts), texts
    assert not any(t.startswith('"birthDate"') for t in texts), texts  # a valid element is not flagged
    accessible(page)


def test_the_validator_reads_an_uploaded_xml_file(page: Any, tmp_path: Any) -> None:
    sign_in(page, "dev")
    page.goto("/validator")
    upload = tmp_path / "message.xml"
    upload.write_bytes(example("knee-gp", "xml"))
    page.get_by_label("Or choose a file").set_input_files(str(upload))
    page.get_by_role("button", name="Validate").click()
    assert page.locator("#result").inner_text().startswith("No errors")
