"""The site directory's tables (migration 0005), beside the resource store that keeps each site's FHIR
resources with their history. These hold the indexed columns that routing and the directory searches read:

* ``site``: one row per site (its id in the directory), the programme, ODS code, name, postcode, position and
  the site as imported (``record``, the JSON of :class:`escape_fhir.sites.model.Site`);
* ``site_area``: each postcode district or sector a site covers; ``site_source``: each referral source it
  accepts (both looked up by value: ``ix_site_area_area``, ``ix_site_source_source``);
* ``site_route``: every routing of a referral by the hub, in order (the first, then each re-route): the
  site chosen (NULL when none could be) and the outbox message or to-contact entry made for it;
* ``site_contact``: the "to contact" list: referrals for sites that take them only by email or phone, each a
  CommunicationRequest in the resource store, ``status`` ``open`` until someone marks it done.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, Index, Integer, String, Table, Text

from escape_fhir.storage.tables import metadata

site = Table(
    "site",
    metadata,
    Column("site_id", String(40), primary_key=True),
    Column("programme", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("ods_code", String(16), nullable=False),
    Column("postcode", String(8), nullable=False),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("active", Boolean, nullable=False),
    Column("record", Text, nullable=False),
    Column("updated", DateTime(), nullable=False),
    Index("ix_site_programme", "programme", "active"),
    Index("ix_site_ods", "ods_code"),
    Index("ix_site_postcode", "postcode"),
    Index("ix_site_position", "latitude", "longitude"),
)

site_area = Table(
    "site_area",
    metadata,
    Column("site_id", String(40), primary_key=True),
    Column("area", String(8), primary_key=True),
    Index("ix_site_area_area", "area"),
)

site_source = Table(
    "site_source",
    metadata,
    Column("site_id", String(40), primary_key=True),
    Column("source", String(32), primary_key=True),
    Index("ix_site_source_source", "source"),
)

site_route = Table(
    "site_route",
    metadata,
    Column("referral_number", Integer, primary_key=True, autoincrement=False),
    Column("sequence", Integer, primary_key=True, autoincrement=False),
    Column("site_id", String(40), nullable=True),
    Column("method", String(16), nullable=True),
    Column("outbox_id", Integer, nullable=True),
    Column("contact_id", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("created", DateTime(), nullable=False),
)

site_contact = Table(
    "site_contact",
    metadata,
    Column("communication_request_id", String(64), primary_key=True),
    Column("referral_number", Integer, nullable=False),
    Column("site_id", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", DateTime(), nullable=False),
    Index("ix_site_contact_status", "status", "created"),
)
