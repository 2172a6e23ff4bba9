"""The database schema (SQLAlchemy Core). Alembic migrations in ``escape_fhir.migrations`` create it.

* ``resource_version``: every version of every resource, its JSON exactly as stored (FHIR http.html#vread:
  each version stays readable), with ``deleted`` marking a deletion version.
* ``resource_current``: one row per resource naming its current version, for reads and search.
* ``search_token``, ``search_string``, ``search_date``: the search values of each resource's current version
  by the declared parameters (:mod:`escape_fhir.storage.search_params`): tokens, references, URIs and
  composites; strings with their folded form; dates as half-open UTC ranges. Replaced on every write.
* ``message`` and ``message_request``: the message log. ``message.bundle_id`` is unique so that a message is
  processed once (FHIR messaging.html, "reliable delivery"); ``message_request.request_id`` is unique so a
  repeated ``X-Request-ID`` is refused (BaRS, nhs-standards.md 1.2). The response is kept for replay and the
  original bytes for audit; ``content_hash`` (:func:`escape_fhir.fhir.canonical.content_hash`) tells a
  retry of the message (same content) from another message under the same Bundle id.
* ``referral`` and ``referral_resource``: our referral number (the human-readable reference) and which of
  our resources each sender resource became, so updates replace the same resources.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

resource_version = Table(
    "resource_version",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True, autoincrement=False),
    Column("last_updated", DateTime(), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("content", Text, nullable=False),
)

resource_current = Table(
    "resource_current",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Index("ix_resource_current_type_updated", "resource_type", "last_updated"),
)

search_token = Table(
    "search_token",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("system", String(255), nullable=False),
    Column("value", String(255), nullable=False),
    Index("ix_search_token_lookup", "resource_type", "param", "value"),
    Index("ix_search_token_resource", "resource_type", "resource_id"),
)

search_string = Table(
    "search_string",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("value", String(255), nullable=False),
    #: Lower case without accents (escape_fhir.storage.index.fold): what the default and :contains match.
    Column("norm", String(255), nullable=False),
    Index("ix_search_string_lookup", "resource_type", "param", "norm"),
    Index("ix_search_string_resource", "resource_type", "resource_id"),
)

search_date = Table(
    "search_date",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("low", DateTime(), nullable=False),
    Column("high", DateTime(), nullable=False),
    Index("ix_search_date_lookup", "resource_type", "param", "low", "high"),
    Index("ix_search_date_resource", "resource_type", "resource_id"),
)

message = Table(
    "message",
    metadata,
    Column("bundle_id", String(255), primary_key=True),
    Column("request_id", String(255), nullable=False),
    Column("correlation_id", String(255), nullable=False),
    Column("received", DateTime(), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("referral_number", Integer, nullable=True),
    Column("original", LargeBinary, nullable=False),
    Column("original_format", String(8), nullable=False),
    Column("response", Text, nullable=False),
    #: ``sha256:<hex>`` of the message's canonical content; NULL for messages logged before 0003 (their
    #: hash is computed from ``original`` when needed).
    Column("content_hash", String(80), nullable=True),
)

message_request = Table(
    "message_request",
    metadata,
    Column("request_id", String(255), primary_key=True),
    Column("bundle_id", String(255), nullable=False),
    Column("received", DateTime(), nullable=False),
)

referral = Table(
    "referral",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("service_request_id", String(64), nullable=False, unique=True),
    Column("task_id", String(64), nullable=False),
    Column("encounter_id", String(64), nullable=False),
    #: The sender's business identifier of the ServiceRequest, ``system|value``; one referral each.
    Column("sender_identifier", String(512), nullable=True, unique=True),
    Column("created", DateTime(), nullable=False),
)

referral_resource = Table(
    "referral_resource",
    metadata,
    Column("referral_number", Integer, primary_key=True, autoincrement=False),
    #: The sender's name for the resource: its fullUrl, or ``Type/id``.
    Column("sender_key", String(512), primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
)

#: The outbox (DESIGN.md capability 7): every message to send, written in the transaction of the change that
#: caused it, before any attempt. ``request_id`` is fixed here so that every retry reuses it and the receiver
#: can refuse a repeat (409 duplicate, nhs-standards.md 1.2). ``state`` is ``pending``, ``sending`` (claimed by
#: ``claimed_by`` until ``lease_until``), ``delivered`` or ``dead``. ``destination`` is a URL or a BaRS
#: endpoint ``system|value`` resolved through the routes when sent. For a referral we sent,
#: ``service_request_id`` names our copy of its ServiceRequest and ``reply_status`` the receiver's latest
#: triage status from its asynchronous response (nhs-standards.md 1.7).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("destination", String(512), nullable=False),
    Column("bundle_id", String(255), nullable=False, unique=True),
    Column("request_id", String(255), nullable=False, unique=True),
    Column("correlation_id", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("body_format", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", DateTime(), nullable=False),
    Column("lease_until", DateTime(), nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created", DateTime(), nullable=False),
    Column("updated", DateTime(), nullable=False),
    Column("delivered", DateTime(), nullable=True),
    Column("service_request_id", String(64), nullable=True),
    Column("receiver_reference", String(255), nullable=True),
    Column("reply_status", String(32), nullable=True),
    Column("reply_at", DateTime(), nullable=True),
    #: For a Subscription notification (kind ``notification``): the Subscription it is for.
    Column("subscription_id", String(64), nullable=True),
    Index("ix_outbox_due", "state", "next_attempt"),
    Index("ix_outbox_subscription", "subscription_id", "state"),
)

#: Where the asynchronous responses of a received referral go (nhs-standards.md 1.4 receiver step 2: store
#: ``source.endpoint``): the Bundle id of the message that created it (``MessageHeader.response.identifier``
#: of every response), its X-Correlation-ID, the sender's ``source.endpoint`` and our own endpoint as the
#: sender addressed it (``destination.endpoint``).
referral_origin = Table(
    "referral_origin",
    metadata,
    Column("referral_number", Integer, primary_key=True, autoincrement=False),
    Column("bundle_id", String(255), nullable=False),
    Column("correlation_id", String(255), nullable=False),
    Column("source_endpoint", String(512), nullable=False),
    Column("own_endpoint", String(512), nullable=True),
)
