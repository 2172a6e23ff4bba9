"""Every search parameter type is answered from an index (SQLite's query plan names it), and the declared
parameter table is complete: each row's element exists in R4 for its type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from escape_fhir.fhir.r4model import model
from escape_fhir.service.search import parse_query
from escape_fhir.storage import Database
from escape_fhir.storage import tables as t
from escape_fhir.storage.search_params import PARAMS
from escape_fhir.storage.search_sql import compile_condition


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database.from_url(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.mark.parametrize(
    ("kind", "query", "index"),
    [
        ("Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018", "ix_search_token_lookup"),
        ("Patient", "name=whit", "ix_search_string_lookup"),
        ("Patient", "birthdate=ge1980", "ix_search_date_lookup"),
        ("Observation", "code-value-concept=91352-5$LA8982-6", "ix_search_token_lookup"),
        ("Task", "patient.identifier=9990000018", "ix_search_token_lookup"),
    ],
    ids=["token", "string", "date", "composite", "chain"],
)
def test_each_parameter_type_uses_its_index(db: Database, kind: str, query: str, index: str) -> None:
    name, _, value = query.partition("=")
    (condition,) = parse_query(kind, [(name, value)]).conditions
    c = t.resource_current
    statement = select(c.c.resource_id).where(c.c.resource_type == kind, compile_condition(kind, condition, "sqlite"))
    compiled = statement.compile(db.engine)
    with db.engine.connect() as conn:
        params = tuple(compiled.params[k] for k in compiled.positiontup or ())
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params))
    assert index in plan, plan


@pytest.mark.parametrize("param", [p for p in PARAMS if p.path], ids=lambda p: f"{p.resource_type}.{p.name}")
def test_every_declared_element_is_an_r4_element(param: Any) -> None:
    first = param.path.split(".")[0]
    elements = model().children(param.resource_type, param.resource_type)
    names = {e.name for e in elements}
    names |= {e.choice_name(ref.code) for e in elements if e.is_choice for ref in e.types}  # valueCodeableConcept
    assert first in names, f"{param.resource_type}.{first} is not an R4 element"
