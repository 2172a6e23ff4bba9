"""Storage: SQLAlchemy tables, the repository, engines and migrations (SQLite by default, PostgreSQL by URL)."""

from escape_fhir.storage.database import Database, make_engine
from escape_fhir.storage.repository import (
    LoggedMessage,
    MessageRecord,
    ReferralRecord,
    Repository,
    Stored,
    TokenFilter,
    VersionConflict,
    instant,
)

__all__ = [
    "Database",
    "LoggedMessage",
    "MessageRecord",
    "ReferralRecord",
    "Repository",
    "Stored",
    "TokenFilter",
    "VersionConflict",
    "instant",
    "make_engine",
]
