"""What the reader knows of a referral Bundle before it reads any fact: the ServiceRequest, the Patient, and
the resources that may carry the referral's facts (Conditions, answers, Observations), wherever they sit.
"""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import Issue, MappingError
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundle_index import BundleIndex, Json, Node, objects

SUPPORTED_TYPES = ("message", "transaction", "collection")


class Found:
    """One value of a fact, where it was found, and the place (row of the table) that found it.

    A plain class, not a NamedTuple: compiled (mypyc), making one and reading its fields are C struct
    operations, where a NamedTuple is made by its interpreted ``__new__`` (the reader makes dozens per
    Bundle). Only its fields are used, never tuple behaviour."""

    __slots__ = ("location", "place", "value")

    def __init__(self, value: Any, location: str, place: str = "") -> None:
        self.value = value
        self.location = location
        self.place = place

    def __repr__(self) -> str:
        return f"Found({self.value!r}, {self.location!r}, {self.place!r})"


class Recorder:
    """Where the reader records each fact it reads (the reader's ``_Reading`` is one). A compiled base class, so
    that the modules reading people and places record through a native method call, not a Python call of a
    bound method."""

    def record(self, field_path: str, value: Any, location: str, place: str = "") -> None:
        raise NotImplementedError


class EligibilityRead:
    """The project's eligibility answers, read from one QuestionnaireResponse, with their locations. (A plain
    class: a dataclass's generated ``__init__`` is interpreted Python even when the class is compiled.)"""

    def __init__(
        self,
        *,
        pathway: str,
        location: str,
        sites: list[Any],
        sites_location: str,
        months: int | None,
        months_location: str,
        onset: str | None,
        onset_location: str,
        answers: dict[str, bool],
        answer_locations: dict[str, str],
    ) -> None:
        self.pathway = pathway
        self.location = location
        self.sites = sites
        self.sites_location = sites_location
        self.months = months
        self.months_location = months_location
        self.onset = onset
        self.onset_location = onset_location
        self.answers = answers
        self.answer_locations = answer_locations


class Context:
    """What the reader knows of the Bundle, and what it has found so far.

    A plain class with its own ``__init__`` (not a dataclass, whose generated ``__init__`` is interpreted
    Python even when the class is compiled): one is made per Bundle read."""

    def __init__(self, index: BundleIndex, bundle: Json, sr: Node, header: Node | None, patient: Node | None) -> None:
        self.index = index
        self.bundle = bundle
        self.sr = sr
        self.header = header
        self.patient = patient
        self.conditions: list[Node] = []
        self.responses: list[Node] = []
        self.observations: list[Node] = []
        self.questionnaires: list[Node] = []
        self.warnings: list[Issue] = []
        #: Problems that refuse the referral (identity, not clinical detail), reported together at the end.
        self.errors: list[Issue] = []
        #: Locations of resources that some fact was read from (the rest are reported as not understood).
        self.used: set[str] = set()
        self.eligibility: EligibilityRead | None = None
        self.startback_location: str | None = None
        #: What each place found, by fact (filled as the reader goes: later places may use earlier facts).
        self.found: dict[str, list[Found]] = {}
        #: The Conditions the referral is for (sender_places._main_conditions, once it has been asked).
        self.main_conditions: list[Node] | None = None

    def warn(self, location: str, message: str, code: str = "not-supported") -> None:
        if not any(w.location == location and w.message == message for w in self.warnings):
            self.warnings.append(Issue("warning", code, message, location))

    def resolve(self, reference: Any, holder: Node | None = None) -> Node | None:
        return self.index.resolve(reference, holder if holder is not None else self.sr)

    @classmethod
    def of(cls, bundle: Json) -> Context:
        index = BundleIndex.of(bundle)
        sr = _service_request(bundle, index)
        header = None
        for n in index.nodes:
            if n.type == "MessageHeader" and n.entry == 0:
                header = n
                break
        ctx = cls(index, bundle, sr, header, None)
        ctx.patient = ctx.resolve(sr.get("subject"))
        if ctx.patient is not None and ctx.patient.type != "Patient":
            ctx.patient = None
        if ctx.patient is None:
            patients = index.of_type("Patient")
            ctx.patient = patients[0] if len(patients) == 1 else None
            if ctx.patient is not None:
                text = f"subject does not resolve to a Patient: the Bundle's only Patient ({ctx.patient.location}) is taken"
                ctx.warn(sr.at("subject"), text, "not-found")
        ctx.conditions = _conditions(ctx)
        for kind, bucket in (
            ("QuestionnaireResponse", ctx.responses),
            ("Observation", ctx.observations),
            ("Questionnaire", ctx.questionnaires),
        ):
            bucket.extend([n for n in index.of_type(kind) if _about_patient(ctx, n)])
        return ctx


def _service_request(bundle: Json, index: BundleIndex) -> Node:
    kind = bundle.get("type")
    if kind not in SUPPORTED_TYPES:
        text = f"Bundle type {kind!r} is not one of {', '.join(SUPPORTED_TYPES)}"
        raise MappingError([Issue("error", "not-supported", text, "Bundle.type")])
    if kind == "message":
        header = index.entry_node(0)
        if header is None or header.type != "MessageHeader":
            text = "a message Bundle must start with its MessageHeader"
            raise MappingError([Issue("error", "structure", text, "Bundle.entry[0]")])
        problems = []
        for j, focus in enumerate(objects(header.get("focus"))):
            node = index.resolve(focus, header)
            if node is not None and node.type == "ServiceRequest":
                return node
            if node is None:
                text = "focus does not resolve to an entry of the Bundle"
                problems.append(Issue("error", "not-found", text, f"{header.location}.focus[{j}]"))
        if not problems:
            text = "the MessageHeader's focus must be a ServiceRequest"
            problems.append(Issue("error", "required", text, header.at("focus")))
        raise MappingError(problems)
    found = [n for n in index.of_type("ServiceRequest") if ".contained[" not in n.location]
    if len(found) > 1:
        # Several: the referral is the one no other ServiceRequest is based on (an engine may send the
        # original request beside a replacement); still ambiguous -> refuse, naming them.
        based_on = {index.resolve(r, n) for n in found for r in objects(n.get("basedOn")) + objects(n.get("replaces"))}
        found = [n for n in found if n not in based_on] if len(found) - len(based_on) == 1 else found
    if len(found) != 1:
        text = f"expected exactly one ServiceRequest, found {len(found)}"
        raise MappingError([Issue("error", "required", text, "Bundle.entry")])
    return found[0]


def _about_patient(ctx: Context, node: Node) -> bool:
    """A resource with no subject, or whose subject is the referral's Patient (or an unresolvable one)."""
    subject = node.get("subject") or node.get("patient")
    if not isinstance(subject, dict) or ctx.patient is None:
        return True
    target = ctx.index.resolve(subject, node)
    return target is None or target is ctx.patient


def _conditions(ctx: Context) -> list[Node]:
    """The referral's Conditions: its reasons first (resolved however they are written), then every other
    Condition about the patient in the Bundle, contained ones included. Entered-in-error and refuted
    Conditions are left out, with a warning."""
    ordered: list[Node] = []
    for ref in objects(ctx.sr.get("reasonReference")):
        node = ctx.resolve(ref)
        if node is not None and node.type == "Condition" and node not in ordered:
            ordered.append(node)
    ordered += [n for n in ctx.index.of_type("Condition") if n not in ordered and _about_patient(ctx, n)]
    kept = []
    for node in ordered:
        status = _code(node.get("verificationStatus"), codes.CONDITION_VERIFICATION)
        if status in ("entered-in-error", "refuted"):
            ctx.warn(node.at("verificationStatus"), f"Condition marked {status}: not read as a diagnosis")
            ctx.used.add(node.location)
            continue
        kept.append(node)
    return kept


def _code(concept: Any, system: str) -> str | None:
    if not isinstance(concept, dict):
        return None
    return next((str(c.get("code")) for c in objects(concept.get("coding")) if c.get("system") == system), None)
