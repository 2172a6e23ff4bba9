"""The site finder and the local site named on the self-referral confirmation, with the example directory
(examples/sites/directory, invented sites in LS6, LS7, LS8 and LS16): over HTTP in process (what each page
says, the errors, what the referral stores, read back through the FHIR API), and in a real browser against a
real server whose directory was imported with the real ``escape-fhir sites import``, with axe on each page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from tests.api.conftest import Server
from tests.pages.conftest import accessible
from tests.pages.test_journeys import refer_back_pain
from tests.pages.test_pages_http import DETAILS, errors, self_refer
from tests.sites.directory import EXAMPLE_CSV, load


def sections(html: str) -> dict[str, list[tuple[str, str]]]:
    """Each programme heading: its site cards as (id, text) in page order."""
    tree = lxml.html.fromstring(html)
    for br in tree.iter("br"):
        br.tail = " " + (br.tail or "")
    found: dict[str, list[tuple[str, str]]] = {}
    for heading in tree.xpath("//main//h2[not(ancestor::div[contains(@class, 'nhsuk-error-summary')])]"):
        cards = heading.xpath(
            "following-sibling::div[contains(@class, 'nhsuk-card')][preceding-sibling::h2[1] = $h]", h=heading
        )
        found[heading.text_content().strip()] = [(c.get("id"), " ".join(c.text_content().split())) for c in cards]
    return found


@pytest.fixture
def sited(make: Any) -> Any:
    client = make()
    load(client.app.state.db)
    return client


def test_a_postcode_gives_each_programmes_sites_and_how_to_join(sited: Any) -> None:
    answer = sited.get("/find-a-site", params={"postcode": " ls61aa "})
    assert answer.status_code == 200
    found = sections(answer.text)
    knees = found["ESCAPE-pain for knees and hips"]
    # Moorside names the sector LS6 1, Riverside the district LS6: the routing's order, sector first.
    assert [i for i, _ in knees] == ["site-kh-moorside", "site-kh-riverside"]
    moorside, riverside = (text for _, text in knees)
    assert "Refer yourself No, one of the services it takes referrals from must refer you" in moorside
    assert "Takes referrals from MSK triage service and orthopaedic surgeon" in moorside
    assert "by email to referrals@moorside.example" in moorside and "Wednesday, 18:00 to 19:00" in moorside
    assert "Refer yourself Yes, you can refer yourself" in riverside
    assert "Monday and Thursday, 10:00 to 11:00" in riverside
    assert "Covers LS6 1." in moorside and "Covers LS6." in riverside and "km" not in riverside
    assert "Riverside Leisure Centre 1 Example Way Exampleton LS6 1AA" in riverside
    assert "0113 496 0001" in riverside and "electronically (BaRS)" in riverside
    assert [i for i, _ in found["ESCAPE-pain for backs"]] == ["site-back-riverside"]
    assert "Distances are approximate" not in answer.text  # sites that cover the postcode: no distance shown


def test_where_no_site_covers_the_postcode_the_nearest_are_named_with_approximate_distances(sited: Any) -> None:
    answer = sited.get("/find-a-site", params={"postcode": "LS8 2AB"})
    assert answer.status_code == 200
    found = sections(answer.text)
    assert [i for i, _ in found["ESCAPE-pain for knees and hips"]] == ["site-kh-hillside"]
    # No back site covers LS8: the nearest, measured from Hillside (the nearest known point to LS8).
    backs = found["ESCAPE-pain for backs"]
    assert [i for i, _ in backs] == ["site-back-riverside"]
    assert "No site runs ESCAPE-pain for backs for LS8 2AB" in answer.text
    assert "About 2.9 km from Hillside Church Hall, the nearest known point to LS8 (approximate)." in backs[0][1]
    assert "Distances are approximate: distance measured from Hillside Church Hall" in answer.text


def test_an_empty_directory_says_no_site_runs_either_programme(make: Any) -> None:
    answer = make().get("/find-a-site", params={"postcode": "LS6 1AA"})
    assert answer.status_code == 200
    assert "No site runs ESCAPE-pain for knees and hips for LS6 1AA." in answer.text
    assert "No site runs ESCAPE-pain for backs for LS6 1AA." in answer.text
    assert all(cards == [] for cards in sections(answer.text).values())


def test_the_finder_without_a_postcode_is_the_form_alone(sited: Any) -> None:
    answer = sited.get("/find-a-site")
    assert answer.status_code == 200
    assert sections(answer.text) == {} and errors(answer.text) == []


@pytest.mark.parametrize(
    ("postcode", "message"),
    [
        ("", "Enter a postcode"),
        ("LS6", "Enter a full UK postcode, like LS1 4AP"),
        ("QS6 1AA", "Enter a full UK postcode, like LS1 4AP"),
        ("<b>LS6</b>", "Enter a full UK postcode, like LS1 4AP"),
    ],
)
def test_a_bad_postcode_is_an_error_beside_the_field(sited: Any, postcode: str, message: str) -> None:
    answer = sited.get("/find-a-site", params={"postcode": postcode})
    assert answer.status_code == 400
    assert errors(answer.text) == [f"Error: {message}"]
    tree = lxml.html.fromstring(answer.text)
    field = tree.get_element_by_id("postcode")
    assert field.get("value") == postcode and "postcode-error" in field.get("aria-describedby")
    assert tree.xpath("//div[contains(@class, 'nhsuk-error-summary')]//a/@href") == ["#postcode"]
    assert sections(answer.text) == {}


def test_a_self_referral_with_a_covered_postcode_names_its_site_and_is_addressed_to_it(sited: Any) -> None:
    confirmation = self_refer(sited, {**DETAILS, "postcode": "LS6 1AA"})
    local = lxml.html.fromstring(confirmation.text).get_element_by_id("local-site").text_content()
    assert " ".join(local.split()) == (
        "Riverside ESCAPE-pain for backs (Riverside Community Health NHS Trust (invented)) will contact you. "
        "Classes are on Monday, 13:00 to 14:00 at Riverside Leisure Centre. To ask about your place, phone "
        "0113 496 0001 or email escape@riverside.example."
    )
    request = sited.get("/ServiceRequest").json()["entry"][0]["resource"]
    performer = sited.get(f"/{request['performer'][0]['reference']}").json()
    assert performer["identifier"][0]["value"] == "RXX01"
    task = sited.get("/Task").json()["entry"][0]["resource"]
    assert task["owner"]["reference"] == request["performer"][0]["reference"]  # triage sees the site named


def test_a_self_referral_no_site_takes_there_links_to_the_finder_with_the_postcode(sited: Any) -> None:
    # LS16 is covered for backs by Riverside, which takes self-referrals; for knees only Moorside covers it,
    # which does not: a back referral is named, so use LS1 (no site at all).
    confirmation = self_refer(sited, {**DETAILS, "postcode": "LS1 4AP"})
    tree = lxml.html.fromstring(confirmation.text)
    assert tree.xpath("//p[@id='local-site']//a/@href")[0] == "/find-a-site?postcode=LS1+4AP"
    assert "performer" not in sited.get("/ServiceRequest").json()["entry"][0]["resource"]


# --- in a real browser ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sited_server(tmp_path_factory: pytest.TempPathFactory, staff_file: Path) -> Iterator[Server]:
    """A server whose directory is the example one, imported as a programme team would."""
    folder = tmp_path_factory.mktemp("finder-server")
    url = f"sqlite:///{folder / 'db.sqlite3'}"
    env = {"ESCAPE_FHIR_STAFF_FILE": str(staff_file), "ESCAPE_FHIR_SESSION_SECRET": "b" * 40}
    running = Server(url, folder / "server.log", env=env).wait()
    command = [sys.executable, "-m", "escape_fhir.cli", "sites", "import", str(EXAMPLE_CSV), "--database-url", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    yield running
    running.stop()


@pytest.fixture
def finder_page(browser: Any, sited_server: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=sited_server.url)
    yield context.new_page()
    context.close()


def test_a_person_enters_a_postcode_and_sees_the_sites(finder_page: Any) -> None:
    page = finder_page
    page.goto("/self-referral")
    page.get_by_role("link", name="find an ESCAPE-pain site").click()
    assert page.locator("h1").inner_text() == "Find an ESCAPE-pain site"
    accessible(page)
    page.get_by_label("Postcode").fill("ls7 2xy")
    page.get_by_role("button", name="Search").click()
    assert page.url.endswith("/find-a-site?postcode=ls7+2xy")
    knees = page.locator("h2", has_text="ESCAPE-pain for knees and hips")
    assert knees.is_visible()
    # LS7 2 is Riverside's sector; Hillside covers the district LS7.
    cards = page.locator(".nhsuk-card h3").all_inner_texts()
    assert cards == [
        "Riverside ESCAPE-pain for knees and hips",
        "Hillside ESCAPE-pain for knees and hips",
        "Riverside ESCAPE-pain for backs",
    ]
    assert page.locator("#site-kh-hillside").get_by_text("Tuesday, 14:00 to 15:00").is_visible()
    accessible(page)


def test_the_finder_works_without_javascript(browser: Any, sited_server: Server) -> None:
    context = browser.new_context(base_url=sited_server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/find-a-site")
    page.get_by_label("Postcode").fill("LS16 5DD")
    page.get_by_role("button", name="Search").click()
    assert page.locator(".nhsuk-card h3").all_inner_texts() == [
        "Moorside ESCAPE-pain for knees and hips",
        "Riverside ESCAPE-pain for backs",
    ]
    context.close()


def test_a_bad_postcode_shows_the_error_beside_the_field(finder_page: Any) -> None:
    page = finder_page
    page.goto("/find-a-site")
    page.get_by_label("Postcode").fill("not a postcode")
    page.get_by_role("button", name="Search").click()
    assert page.title().startswith("Error: ")
    beside = " ".join(page.locator("#postcode-error").inner_text().split())
    assert beside == "Error: Enter a full UK postcode, like LS1 4AP"
    assert page.locator(".nhsuk-error-summary").is_visible()
    accessible(page)
    page.get_by_role("link", name="Enter a full UK postcode, like LS1 4AP").click()
    assert page.evaluate("document.activeElement.id") == "postcode"


def test_a_self_referral_with_a_covered_postcode_names_the_site(finder_page: Any) -> None:
    reference = refer_back_pain(finder_page, "Finder", check=False, postcode="LS6 1AA")
    assert reference.startswith("ESCAPE-")
    assert (
        finder_page.locator("#local-site")
        .inner_text()
        .startswith(
            "Riverside ESCAPE-pain for backs (Riverside Community Health NHS Trust (invented)) will contact you."
        )
    )
    accessible(finder_page)
