"""The FHIR REST endpoint (FastAPI): ``create_app(settings)``; routes over services over the repository."""

from escape_fhir.api.app import create_app

__all__ = ["create_app"]
