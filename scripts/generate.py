"""Regenerate every derived file of the repository from the code that defines it.

    python scripts/generate.py          # write the files
    python scripts/generate.py --check  # exit 1 and name the stale files, writing nothing

It writes:
* ``schemas/referral.schema.json``: JSON Schema of the referral input format (from the domain model);
* ``profiles/``: the project's FHIR package (escape_fhir.fhir.conformance.write_package): its
  StructureDefinitions, CodeSystems, ValueSets, the three Questionnaires (escape_fhir.fhir.questionnaires),
  ``package.json`` and ``.index.json``;
* ``src/escape_fhir/data/conformance.json``: the same resources and ``package.json`` as one compact JSON
  document, which the validator reads at start-up (escape_fhir.validation.sources.project_data);
* ``examples/bundles/<name>.message.json|xml``: the message Bundle of each ``examples/referrals/<name>.json``,
  stamped with a fixed timestamp (the referral date at 09:30Z) so the output is reproducible;
* ``examples/resources/<Profile>-<label>.json``: one standalone example of each project profile (each kind
  of score and each Questionnaire's response), taken from those Bundles;
* ``examples/sites/<Type>-<id>.json``: the FHIR resources of the invented sites of
  ``examples/sites/directory/sites.csv`` (escape_fhir.sites.resources).

The compact R4 model has its own generator (scripts/generate_r4_model.py), since it needs ../shared.
Tests check that every file here is current.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson

from escape_fhir.domain import load_referral, referral_json_schema
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.conformance import conformance_resources, package_manifest, write_package
from escape_fhir.fhir.formats import dump
from escape_fhir.fhir.resources import Json
from escape_fhir.sites.importer import read_sites
from escape_fhir.sites.resources import site_resources

ROOT = Path(__file__).resolve().parents[1]


def generated_files(root: Path) -> dict[Path, bytes]:
    """Every generated file's path (relative to the repository) and content."""
    files: dict[Path, bytes] = {
        Path("schemas/referral.schema.json"): orjson.dumps(referral_json_schema(), option=orjson.OPT_INDENT_2) + b"\n"
    }
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_package(Path(tmp)):
            files[Path("profiles") / path.name] = path.read_bytes()
    project = {"manifest": package_manifest(), "resources": conformance_resources()}
    files[Path("src/escape_fhir/data/conformance.json")] = orjson.dumps(project) + b"\n"
    bundles = {}
    for source in sorted((root / "examples/referrals").glob("*.json")):
        referral = load_referral(source.read_bytes())
        bundle = translate(referral, "message", timestamp=f"{referral.referral_date.isoformat()}T09:30:00Z")
        bundles[source.stem] = bundle
        for fmt in ("json", "xml"):
            files[Path(f"examples/bundles/{source.stem}.message.{fmt}")] = dump(bundle, fmt, pretty=True) + b"\n"
    for name, resource in profile_examples(bundles).items():
        files[Path(f"examples/resources/{name}.json")] = dump(resource, "json", pretty=True) + b"\n"
    for site in read_sites((root / "examples/sites/directory/sites.csv").read_bytes(), "csv"):
        for resource in site_resources(site):
            name = f"examples/sites/{resource['resourceType']}-{resource['id']}.json"
            files[Path(name)] = dump(resource, "json", pretty=True) + b"\n"
    return files


def profile_examples(bundles: dict[str, Json]) -> dict[str, Json]:
    """The first resource of each project profile met in the example Bundles (by name), keyed by file stem.

    Responses are told apart by Questionnaire and score Observations by code, so every shape has an example.
    """
    examples: dict[tuple[str, str], tuple[str, Json]] = {}
    for stem, bundle in bundles.items():
        for resource in [bundle, *(entry["resource"] for entry in bundle["entry"])]:
            profile = resource["meta"]["profile"][0]
            if profile.startswith(codes.SD):
                shape = _shape(resource)
                examples.setdefault((profile, shape), (f"{profile.rsplit('/', 1)[1]}-{shape or stem}", resource))
    return dict(examples.values())


def _shape(resource: Json) -> str:
    """What tells apart resources of one profile: a response's Questionnaire id, a score's LOINC code."""
    if resource["resourceType"] == "QuestionnaireResponse":
        return str(resource["questionnaire"]).partition("|")[0].rsplit("/", 1)[1]
    if resource["resourceType"] == "Observation" and resource["code"]["coding"][0]["system"] == codes.LOINC:
        return str(resource["code"]["coding"][0]["code"])
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for rel, content in generated_files(ROOT).items():
        path = ROOT / rel
        if path.exists() and path.read_bytes() == content:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    for rel in stale:
        print(f"{'stale' if args.check else 'wrote'}: {rel}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
