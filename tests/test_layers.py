"""Data flows one way (STYLE.md habit 1): ``escape_fhir.domain`` imports nothing else from the package
except ``escape_fhir.errors``. Checked on the source with ``ast`` so that no import runs."""

from __future__ import annotations

import ast
from pathlib import Path

import escape_fhir.domain

DOMAIN_DIR = Path(escape_fhir.domain.__file__).parent
ALLOWED = ("escape_fhir.domain", "escape_fhir.errors")


def imported_modules(source: str, module: str) -> set[str]:
    """Absolute names of the modules a source file imports (relative imports resolved against ``module``)."""
    package = module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                names.add(node.module or "")
                continue
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if node.module:
                names.add(f"{base}.{node.module}")
            else:  # "from .. import fhir" may import a submodule: count each name as one
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def forbidden(names: set[str]) -> set[str]:
    def inside(name: str, package: str) -> bool:
        return name == package or name.startswith(package + ".")

    return {n for n in names if inside(n, "escape_fhir") and not any(inside(n, a) for a in ALLOWED)}


def _domain_imports() -> dict[str, set[str]]:
    files = sorted(DOMAIN_DIR.rglob("*.py"))
    assert files, f"no domain modules found under {DOMAIN_DIR}"
    result = {}
    for path in files:
        parts = path.relative_to(DOMAIN_DIR).with_suffix("").parts
        module = ".".join(("escape_fhir", "domain", *parts))
        if parts[-1] == "__init__":
            module = module.removesuffix(".__init__") + ".__init__"
        result[path.name] = imported_modules(path.read_text(encoding="utf-8"), module)
    return result


def test_domain_imports_only_itself_and_errors() -> None:
    imports = _domain_imports()
    assert {name: sorted(forbidden(names)) for name, names in imports.items() if forbidden(names)} == {}
    # The check sees real imports (it is not vacuous): the domain does use escape_fhir.errors.
    assert any("escape_fhir.errors" in names for names in imports.values())


def test_the_check_catches_a_forbidden_import() -> None:
    source = """
import escape_fhir.fhir.codes
from escape_fhir.storage import repository
from escape_fhir.errors import InputError
from escape_fhir.domain.startback import score
from .. import fhir
from ..transport import client
from . import referral
import json
"""
    names = imported_modules(source, "escape_fhir.domain.eligibility")
    assert forbidden(names) == {
        "escape_fhir.fhir.codes",
        "escape_fhir.storage",
        "escape_fhir.fhir",
        "escape_fhir.transport",
    }
