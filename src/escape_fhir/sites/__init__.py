"""The ESCAPE-pain site directory (issue 12): sites, routing a referral to its local site, the hub.

* :mod:`.postcode`, :mod:`.model`, :mod:`.importer`, :mod:`.routing`: pure (no FHIR, no I/O): UK postcodes,
  a site, the CSV/JSON directory, the routing rules;
* :mod:`.resources`: a site as FHIR resources;
* :mod:`.store`: the directory in the database (resources with history, and the indexed columns searched);
* :mod:`.search`: ``GET /HealthcareService``, ``/Location``, ``/Endpoint`` from those columns;
* :mod:`.hub`: routing each accepted referral and forwarding it (``serve --hub``), re-routing, signposting.
"""
