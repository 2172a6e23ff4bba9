"""Services: what the FHIR endpoint does, with no web framework (tested without HTTP).

The API layer calls these; they call the repository (``escape_fhir.storage``), the validator and the FHIR
layer. Refusals are :class:`~escape_fhir.service.outcomes.OutcomeError`.
"""
