"""Screenshots of the main pages for the README (docs/screenshots/*.png).

Starts ``escape-fhir serve`` on a free loopback port with a fresh database and a staff account, imports the
example site directory, feeds it the example referral messages and one self-referral made through the pages
(in an area a site covers, so the confirmation names it), and photographs each page in
Chromium (Debian's: Playwright cannot download its own browsers here). Run from the repository:

    .venv/bin/python scripts/screenshots.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
PASSWORD = "screenshots password 1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    staff = folder / "staff.json"
    command = [sys.executable, "-m", "escape_fhir.cli", "staff", "add", "sam", "--name", "Sam Clinician"]
    command += ["--scope", "read", "--scope", "triage", "--scope", "validate", "--staff-file", str(staff)]
    subprocess.run([*command, "--password-stdin"], input=PASSWORD.encode() + b"\n", check=True)
    port = free_port()
    env = {"ESCAPE_FHIR_STAFF_FILE": str(staff), "ESCAPE_FHIR_SESSION_SECRET": uuid.uuid4().hex * 2}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "escape_fhir.cli",
            "serve",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{folder}/db.sqlite3",
        ],
        cwd=ROOT,
        env={**__import__("os").environ, **env},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/metadata", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not start")


def import_sites(folder: Path) -> None:
    directory = ROOT / "examples" / "sites" / "directory" / "sites.csv"
    command = [sys.executable, "-m", "escape_fhir.cli", "sites", "import", str(directory)]
    subprocess.run([*command, "--database-url", f"sqlite:///{folder}/db.sqlite3"], check=True, cwd=ROOT)


def feed(url: str) -> None:
    for path in sorted((ROOT / "examples" / "bundles").glob("*.message.json")):
        headers = {
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": "shots",
        }
        httpx.post(f"{url}/$process-message", content=path.read_bytes(), headers=headers, timeout=60)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/screenshots/{name}.png")


def self_referral(page: Page) -> None:
    page.goto("/self-referral")
    shot(page, "self-referral-start")
    page.get_by_label("Knee or hip pain").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Continue").click()
    shot(page, "self-referral-errors")
    page.get_by_label("Left knee").check()
    page.get_by_label("How many months has the person had these symptoms?").fill("8")
    for group in page.get_by_role("group").all():
        yes = group.get_by_label("Yes", exact=True)
        if yes.count():
            no_answer = (
                "contraindications" in (group.get_attribute("aria-describedby") or "")
                or "contraindications" in group.inner_text()
            )
            group.get_by_label("No" if no_answer else "Yes", exact=True).check()
    page.get_by_role("button", name="Continue").click()
    for label, value in (
        ("First name", "Priya"),
        ("Last name", "Shah"),
        ("Day", "12"),
        ("Month", "6"),
        ("Year", "1958"),
    ):
        page.get_by_label(label).fill(value)
    page.get_by_label("Postcode").fill("LS6 2QR")
    page.get_by_label("Phone number").fill("0113 496 0000")
    page.get_by_role("button", name="Continue").click()
    shot(page, "self-referral-check")
    page.get_by_role("button", name="Send referral").click()
    shot(page, "self-referral-confirmation")


def site_finder(page: Page) -> None:
    page.goto("/find-a-site")
    page.get_by_label("Postcode").fill("LS6 1AA")
    page.get_by_role("button", name="Search").click()
    shot(page, "site-finder")


def staff_pages(page: Page) -> None:
    page.goto("/sign-in")
    shot(page, "sign-in")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    shot(page, "worklist")
    page.get_by_role("link", name="ESCAPE-000001").click()
    page.get_by_role("button", name="Accept referral").click()  # one decided, for the figures
    page.goto("/triage")
    page.get_by_role("link", name="ESCAPE-000002").click()
    shot(page, "referral")
    page.goto("/figures")
    shot(page, "figures")
    page.goto("/validator")
    page.get_by_label("Paste JSON or XML").fill('{"resourceType": "Patient", "gender": "robot", "colour": "blue"}')
    page.get_by_role("button", name="Validate").click()
    shot(page, "validator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        server, url = start_server(Path(folder))
        try:
            import_sites(Path(folder))
            feed(url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                context = browser.new_context(base_url=url, viewport={"width": 1100, "height": 800})
                self_referral(context.new_page())
                site_finder(context.new_page())
                staff_pages(context.new_page())
                browser.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
