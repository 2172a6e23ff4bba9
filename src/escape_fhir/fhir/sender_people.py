"""Who the referral is about, who sent it and where it goes: the patient, the referrer and their
organisation, and the receiving site, however the sender shaped them.

Referrer shapes (issue 8): a PractitionerRole (its code: the project's, SNOMED CT occupation, SDS job role,
or words); a bare Practitioner, whose role and organisation are then looked for in a PractitionerRole of
that practitioner, the MessageHeader's sender, and the Patient's registered GP practice; an Organization;
the Patient (self-referral).
"""

from __future__ import annotations

from typing import Any, Final

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.fhir import sender_terms as terms
from escape_fhir.fhir.bundle_index import Json, Node, objects
from escape_fhir.fhir.sender_context import Context, Found, Recorder

REGISTRATION_BODIES: Final = {system: body for body, system in codes.REGISTRATION_SYSTEMS.items()}
#: Identifier systems of a receiving site named only by a logical reference, and the field each gives.
RECEIVER_IDS: Final = {codes.DOS_SERVICE_ID: "serviceId", codes.ODS_ORGANIZATION: "odsCode"}


def find_identifier(resource: Json, system: str) -> tuple[int, str] | None:
    for k, ident in enumerate(objects(resource.get("identifier"))):
        if ident.get("system") == system and isinstance(ident.get("value"), str) and ident["value"]:
            return k, ident["value"]
    return None


def official_name(names: Any) -> tuple[int, Json | None]:
    listed = objects(names)
    for use in ("official", "usual"):
        for k, name in enumerate(listed):
            if name.get("use") == use:
                return k, name
    return (0, listed[0]) if listed else (0, None)


def read_name(name: Json) -> Json | None:
    given = [g for g in _list(name.get("given")) if isinstance(g, str) and g.strip()]
    family = name.get("family") if isinstance(name.get("family"), str) else None
    if not family and isinstance(name.get("text"), str):
        # A name sent only as text: the last word is taken as the family name.
        words = name["text"].split()
        given, family = words[:-1] or words, words[-1] if words else None
    if not family and not given:
        return None
    out: Json = {"given": given or [family], "family": family or given[-1]}
    prefixes = [p for p in _list(name.get("prefix")) if isinstance(p, str)]
    if prefixes:
        out["prefix"] = prefixes
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_TELECOM_KEYS: Final = {"phone": "phone", "email": "email"}


def read_telecom(telecom: Any) -> Json:
    out: Json = {}
    for point in objects(telecom):
        key = _TELECOM_KEYS.get(str(point.get("system", "")))
        if key and key not in out and isinstance(point.get("value"), str) and point["value"].strip():
            out[key] = point["value"]
    return out


def read_address(addresses: Any) -> tuple[int, Json] | None:
    listed = objects(addresses)
    chosen = next((k for k, a in enumerate(listed) if a.get("use") == "home"), 0 if listed else None)
    if chosen is None:
        return None
    address, out = listed[chosen], {}
    lines = [line for line in _list(address.get("line")) if isinstance(line, str) and line.strip()]
    if lines:
        out["lines"] = lines
    if isinstance(address.get("city"), str) and address["city"].strip():
        out["city"] = address["city"]
    if isinstance(address.get("postalCode"), str):
        out["postcode"] = address["postalCode"]
    return (chosen, out) if "postcode" in out else None


# --- the patient ---------------------------------------------------------------------------------------


def read_patient(ctx: Context, recorder: Recorder) -> Json:
    """The patient's details; ``recorder.record(field, value, location)`` notes where each came from."""
    node = ctx.patient
    out: Json = {}
    if node is None:
        # A logical reference only (an NHS number in ServiceRequest.subject.identifier).
        ident = ctx.sr.get("subject", {}).get("identifier") if isinstance(ctx.sr.get("subject"), dict) else None
        if isinstance(ident, dict) and ident.get("system") == codes.NHS_NUMBER and isinstance(ident.get("value"), str):
            out["nhsNumber"] = ident["value"]
            recorder.record("patient.nhsNumber", ident["value"], ctx.sr.at("subject.identifier.value"))
        return out
    ctx.used.add(node.location)
    if (found := find_identifier(node.resource, codes.NHS_NUMBER)) is not None:
        k, value = found
        out["nhsNumber"] = value
        recorder.record("patient.nhsNumber", value, f"{node.location}.identifier[{k}].value")
        status = _verification(ctx, node, k)
        if status:
            out["nhsNumberVerificationStatus"] = status
    name_at, name = official_name(node.get("name"))
    if name is not None and (read := read_name(name)) is not None:
        out["name"] = read
        recorder.record("patient.name", " ".join([*read["given"], read["family"]]), f"{node.location}.name[{name_at}]")
    for key, element in (("birthDate", "birthDate"), ("sex", "gender")):
        if isinstance(node.get(element), str):
            out[key] = node.get(element)
            recorder.record(f"patient.{key}", node.get(element), node.at(element))
    out.update(read_telecom(node.get("telecom")))
    if (address := read_address(node.get("address"))) is not None:
        out["address"] = address[1]
        recorder.record("patient.address", address[1].get("postcode"), f"{node.location}.address[{address[0]}]")
    return out


def _verification(ctx: Context, node: Node, k: int) -> str | None:
    ident = objects(node.get("identifier"))[k] if k < len(objects(node.get("identifier"))) else {}
    for e, ext in enumerate(objects(ident.get("extension"))):
        if ext.get("url") != codes.EXT_NHS_NUMBER_VERIFICATION:
            continue
        concept = ext.get("valueCodeableConcept")
        for c, coding in enumerate(objects(concept.get("coding") if isinstance(concept, dict) else None)):
            system, code = coding.get("system"), coding.get("code")
            where = f"{node.location}.identifier[{k}].extension[{e}].valueCodeableConcept.coding[{c}]"
            if system == codes.CS_NHS_NUMBER_VERIFICATION_ENGLAND and code in codes.NHS_NUMBER_VERIFICATION_DISPLAY:
                return str(code)
            if system == codes.CS_NHS_NUMBER_VERIFICATION_RETIRED and code in codes.NHS_NUMBER_VERIFICATION_RETIRED:
                # BaRS senders still use the retired UK Core codes (nhs-standards.md 1.8): accept, and say so.
                mapped = codes.NHS_NUMBER_VERIFICATION_RETIRED[code]
                ctx.warn(where, f"retired NHS number verification code {code!r} read as {mapped}", "code-invalid")
                return mapped
            ctx.errors.append(
                Issue("error", "code-invalid", f"unknown NHS number verification status {system}|{code}", where)
            )
    return None


# --- the referrer ---------------------------------------------------------------------------------------


def role_of(node: Node) -> Found | None:
    """A PractitionerRole's (or a Practitioner qualification's) role, from its codes or words."""
    for key in ("code", "specialty", "qualification"):
        for k, element in node.items(key):
            concept: Json = element
            if key == "qualification":
                concept = element["code"] if isinstance(element.get("code"), dict) else {}
            for c, coding in enumerate(objects(concept.get("coding"))):
                system, code = coding.get("system"), coding.get("code")
                where = node.at(f"{key}[{k}]" + (".code" if key == "qualification" else "") + f".coding[{c}]")
                role = (
                    str(code)
                    if system == codes.CS_REFERRER_ROLE
                    else terms.SNOMED_ROLES.get(str(code))
                    if system == codes.SNOMED
                    else terms.sds_role(system, code)
                ) or terms.role_in_words(coding.get("display"))
                if role:
                    return Found(role, where)
            text = concept.get("text")
            if (role := terms.role_in_words(text)) is not None:
                return Found(role, f"{node.location}.{key}[{k}].text")
    return None


def read_requester(ctx: Context, recorder: Recorder) -> tuple[str, Json | None]:
    """("self" | "person" | "organisation" | "none", the referrer in the input format)."""
    reference = ctx.sr.get("requester")
    if not isinstance(reference, dict):
        return "none", None
    node = ctx.resolve(reference)
    location = ctx.sr.at("requester")
    if node is None:
        ctx.warn(location, "the requester is not in the Bundle: the referrer is not known")
        return "none", {"role": "other"}
    ctx.used.add(node.location)
    if node.type == "Patient" and (ctx.patient is None or node is ctx.patient):
        recorder.record("requester", "the patient (self-referral)", location)
        return "self", None
    if node.type == "Organization":
        return "organisation", _organisation_referrer(ctx, node, recorder)
    if node.type == "PractitionerRole":
        return "person", _from_role(ctx, node, recorder)
    if node.type == "Practitioner":
        return "person", _from_practitioner(ctx, node, recorder)
    ctx.warn(location, f"a {node.type} requester cannot be read as a referrer")
    return "none", {"role": "other"}


def _organisation_referrer(ctx: Context, node: Node, recorder: Recorder) -> Json:
    gp = any(
        str(c.get("code")) in terms.GP_PRACTICE_ROLES for _k, t in node.items("type") for c in objects(t.get("coding"))
    )
    role = "gp" if gp else "other"
    recorder.record("referrer.role", role, node.at("type") if gp else node.location)
    return {"role": role, "organisation": organisation(ctx, node, "referrer.organisation", recorder)}


def _from_role(ctx: Context, node: Node, recorder: Recorder) -> Json:
    role = role_of(node)
    practitioner = ctx.resolve(node.get("practitioner"), node)
    out = _person(ctx, practitioner, recorder) if practitioner is not None else {}
    out["role"] = role.value if role else "other"
    recorder.record("referrer.role", out["role"], role.location if role else node.at("code"))
    org = ctx.resolve(node.get("organization"), node)
    if org is not None and org.type == "Organization":
        recorder.record("referrer.organisation", "the PractitionerRole's organisation", node.at("organization"))
        out["organisation"] = organisation(ctx, org, "referrer.organisation", recorder)
    else:
        _organisation_elsewhere(ctx, out, recorder)
    return out


def _from_practitioner(ctx: Context, node: Node, recorder: Recorder) -> Json:
    # A PractitionerRole of this practitioner elsewhere in the Bundle says the role and organisation.
    for role_node in ctx.index.of_type("PractitionerRole"):
        if ctx.resolve(role_node.get("practitioner"), role_node) is node:
            ctx.used.add(role_node.location)
            return _from_role(ctx, role_node, recorder)
    out = _person(ctx, node, recorder)
    role = role_of(node)
    out["role"] = role.value if role else "other"
    recorder.record("referrer.role", out["role"], role.location if role else node.location)
    _organisation_elsewhere(ctx, out, recorder)
    return out


def _person(ctx: Context, node: Node, recorder: Recorder) -> Json:
    ctx.used.add(node.location)
    out: Json = {}
    name_at, name = official_name(node.get("name"))
    if name is not None and (read := read_name(name)) is not None:
        out["name"] = read
        recorder.record("referrer.name", " ".join([*read["given"], read["family"]]), f"{node.location}.name[{name_at}]")
    for k, ident in node.items("identifier"):
        body = REGISTRATION_BODIES.get(str(ident.get("system")))
        if body and isinstance(ident.get("value"), str) and ident["value"].strip():
            out["registration"] = {"body": body, "number": ident["value"]}
            recorder.record("referrer.registration", f"{body} {ident['value']}", f"{node.location}.identifier[{k}]")
            break
    out.update(read_telecom(node.get("telecom")))
    return out


def _organisation_elsewhere(ctx: Context, out: Json, recorder: Recorder) -> None:
    """The referrer's organisation when the requester does not say: the message's sender, else the patient's
    registered GP practice (for a GP or a referrer whose role is not stated)."""
    if ctx.header is not None:
        sender = ctx.resolve(ctx.header.get("sender"), ctx.header)
        if sender is not None and sender.type == "PractitionerRole":
            sender = ctx.resolve(sender.get("organization"), sender)
        if sender is not None and sender.type == "Organization":
            recorder.record("referrer.organisation", "the message's sender", ctx.header.at("sender"))
            out["organisation"] = organisation(ctx, sender, "referrer.organisation", recorder)
            return
    if ctx.patient is not None and out.get("role") in ("gp", "other"):
        for k, ref in enumerate(objects(ctx.patient.get("generalPractitioner"))):
            node = ctx.resolve(ref, ctx.patient)
            if node is not None and node.type == "Organization":
                where = f"{ctx.patient.location}.generalPractitioner[{k}]"
                recorder.record("referrer.organisation", "the patient's registered GP practice", where)
                out["organisation"] = organisation(ctx, node, "referrer.organisation", recorder)
                return


def organisation(ctx: Context, node: Node, field_path: str, recorder: Recorder, service_id: str | None = None) -> Json:
    ctx.used.add(node.location)
    out: Json = {}
    found = find_identifier(node.resource, codes.ODS_ORGANIZATION) or find_identifier(node.resource, codes.ODS_SITE)
    if found is not None:
        out["odsCode"] = found[1]
        recorder.record(f"{field_path}.odsCode", found[1], f"{node.location}.identifier[{found[0]}].value")
    if isinstance(node.get("name"), str) and node.get("name").strip():
        out["name"] = node.get("name")
        recorder.record(f"{field_path}.name", node.get("name"), node.at("name"))
    if service_id:
        out["serviceId"] = service_id
    return out


def read_receiver(ctx: Context, recorder: Recorder) -> Json | None:
    """The receiving site: the performer (a HealthcareService, an Organization, a PractitionerRole's
    organisation), else the message's destination."""
    service_id, receiver = None, None
    logical: Json = {}
    for k, performer in enumerate(objects(ctx.sr.get("performer"))):
        node = ctx.resolve(performer)
        ident: Json = performer["identifier"] if isinstance(performer.get("identifier"), dict) else {}
        if node is None and isinstance(ident.get("value"), str) and ident.get("system") in RECEIVER_IDS:
            # A logical reference to the receiving service by its DoS id (BaRS routes on it) or its ODS code.
            key = RECEIVER_IDS[str(ident["system"])]
            logical[key] = ident["value"]
            recorder.record(f"receiver.{key}", ident["value"], f"{ctx.sr.location}.performer[{k}].identifier.value")
            if isinstance(performer.get("display"), str) and performer["display"].strip():
                logical["name"] = performer["display"]
            continue
        if node is None:
            continue
        ctx.used.add(node.location)
        if node.type == "HealthcareService":
            found = find_identifier(node.resource, codes.DOS_SERVICE_ID)
            if found is not None:
                service_id = found[1]
                recorder.record("receiver.serviceId", service_id, f"{node.location}.identifier[{found[0]}].value")
            receiver = ctx.resolve(node.get("providedBy"), node)
        elif node.type == "Organization":
            receiver = node
        elif node.type == "PractitionerRole":
            receiver = ctx.resolve(node.get("organization"), node)
        if receiver is not None:
            break
    header = ctx.header
    for k, dest in header.items("destination") if header is not None else ():
        system, _, value = str(dest.get("endpoint", "")).partition("|")
        if system == codes.DOS_SERVICE_ID and value and service_id is None:
            service_id = value
            recorder.record("receiver.serviceId", value, f"{header.location}.destination[{k}].endpoint")  # type: ignore[union-attr]
        if receiver is None:
            receiver = ctx.resolve(dest.get("receiver"), header)
    if receiver is None or receiver.type != "Organization":
        if service_id and "serviceId" not in logical:
            logical["serviceId"] = service_id
        return logical or None
    return organisation(ctx, receiver, "receiver", recorder, service_id or logical.get("serviceId"))
