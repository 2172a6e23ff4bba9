"""Programme figures for commissioners (staff with the ``read`` scope): for the referrals received in a
chosen period, how many came from each source and for each programme and site, the eligibility outcomes, the
STarT Back risk mix of backs, and the time from referral to triage decision. Shown as server-rendered SVG
bar charts, each with the same numbers in a table (the accessible form), and downloadable as CSV.

Counts come from the triage Tasks, one per referral: the decision and risk are their inputs, the source is
the fact the reader recorded (``source: gp <- ...``), the decision time is the first Task version that
accepted or rejected it. Aggregates only: no patient appears here."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from escape_fhir.pages.access import require
from escape_fhir.pages.cases import Case, cases
from escape_fhir.pages.render import HEADERS, render
from escape_fhir.settings import Scope
from escape_fhir.storage import Database, Repository

router = APIRouter(include_in_schema=False)
PAGE = 1000
DECIDED = frozenset({"accepted", "rejected", "in-progress", "completed"})
#: Days from referral to decision, as the bands of the chart: (label, upper bound in days, inclusive).
BANDS = (("Same day", 0), ("1 to 2 days", 2), ("3 to 7 days", 7), ("8 to 14 days", 14), ("15 to 28 days", 28))
LABELS = {
    "knee-hip": "Knees and hips",
    "back": "Backs",
    "eligible": "Eligible",
    "needs-review": "Needs review",
    "not-eligible": "Not eligible",
    "low": "Low",
    "medium": "Medium",
    "high": "High",
}


@dataclass
class Figures:
    start: date
    end: date
    total: int = 0
    charts: dict[str, Counter[str]] = field(default_factory=dict)
    median_days: float | None = None
    waiting: int = 0


def _source(case: Case) -> str:
    for line in case.sources:
        head, _, rest = line.partition(": ")
        if head == "source":
            return rest.split(" <- ")[0].strip() or "not recorded"
    return "not recorded"


def _decided_at(repo: Repository, case: Case) -> datetime | None:
    for version in repo.history("Task", case.task.resource_id):
        if version.content.get("status") in DECIDED:
            return version.last_updated
    return None


def _authored(case: Case) -> date | None:
    try:
        return date.fromisoformat(case.authored[:10])
    except ValueError:
        return None


def figures(repo: Repository, start: date, end: date) -> Figures:
    result = Figures(start, end)
    names = ("Source", "Programme", "Site", "Eligibility", "STarT Back risk (backs)", "Days to decision")
    result.charts = {name: Counter() for name in names}
    days: list[int] = []
    offset = 0
    while True:
        found, total = cases(repo, count=PAGE, offset=offset)
        for case in found:
            authored = _authored(case)
            if authored is None or not start <= authored <= end:
                continue
            result.total += 1
            charts = result.charts
            charts["Source"][_source(case)] += 1
            charts["Programme"][LABELS.get(case.pathway or "", "Not known")] += 1
            charts["Site"][case.site] += 1
            charts["Eligibility"][LABELS.get(case.decision, case.decision)] += 1
            if case.pathway == "back":
                charts["STarT Back risk (backs)"][LABELS.get(case.risk or "", "Not known")] += 1
            decided = _decided_at(repo, case)
            if decided is None:
                result.waiting += 1
                continue
            waited = max(0, (decided.date() - authored).days)
            days.append(waited)
            band = next((label for label, upper in BANDS if waited <= upper), "More than 28 days")
            charts["Days to decision"][band] += 1
        offset += PAGE
        if offset >= total:
            break
    result.median_days = statistics.median(days) if days else None
    return result


def _period(start: str, end: str) -> tuple[date, date, dict[str, str]]:
    errors = {}
    today = date.today()
    try:
        last = date.fromisoformat(end) if end else today
    except ValueError:
        last, errors["end"] = today, "Enter the end date as YYYY-MM-DD, for example 2026-03-31"
    try:
        first = date.fromisoformat(start) if start else last - timedelta(days=365)
    except ValueError:
        first, errors["start"] = (
            last - timedelta(days=365),
            "Enter the start date as YYYY-MM-DD, for example 2026-01-01",
        )
    if first > last:
        errors["start"] = "The start date must be on or before the end date"
        first = last
    return first, last, errors


def _load(request: Request, start: str, end: str) -> tuple[Figures, dict[str, str]]:
    require(request, Scope.READ)
    first, last, errors = _period(start, end)
    db: Database = request.app.state.db
    with db.read() as repo:
        return figures(repo, first, last), errors


@router.get("/figures")
def figures_page(request: Request, start: str = "", end: str = "") -> Response:
    found, errors = _load(request, start, end)
    code = 400 if errors else 200
    return render(
        request, "figures.html", code, title="Programme figures", home="/triage", figures=found, errors=errors
    )


@router.get("/figures.csv")
def figures_csv(request: Request, start: str = "", end: str = "") -> Response:
    found, errors = _load(request, start, end)
    if errors:
        return render(
            request, "figures.html", 400, title="Programme figures", home="/triage", figures=found, errors=errors
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["measure", "category", "referrals", "period_start", "period_end"])
    for name, counts in found.charts.items():
        for category, count in sorted(counts.items()):
            writer.writerow([name, category, count, found.start.isoformat(), found.end.isoformat()])
    writer.writerow(["Awaiting decision", "", found.waiting, found.start.isoformat(), found.end.isoformat()])
    name = f"escape-pain-figures-{found.start.isoformat()}-{found.end.isoformat()}.csv"
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(out.getvalue(), headers=headers, media_type="text/csv")
