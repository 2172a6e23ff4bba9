"""The states of an outbox message, outside the storage package so the CLI can name them without importing
SQLAlchemy (every ``escape-fhir`` command builds the whole parser at start-up)."""

PENDING, SENDING, DELIVERED, DEAD = "pending", "sending", "delivered", "dead"
STATES = (PENDING, SENDING, DELIVERED, DEAD)
