"""Hypothesis profiles of the fuzzing suite: short in the normal run, longer on demand.

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/fuzz -p no:cacheprovider     # 1,000 examples per test

No example database is written (the suite leaves no ``.hypothesis`` folder in the work tree); a failure
prints the example and the seed to reproduce it (``--hypothesis-seed``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from escape_fhir.fhir import bounds

# The reader raises the recursion limit on first use (fhir/bounds.py); raised here first, hypothesis does not
# see it change during a test.
bounds.ensure_recursion()

_COMMON = {
    "database": None,
    # A generous bound per example: a request that the server should refuse at once must not take seconds
    # (issue 10: 24 s for one number, 74 s for a Bundle of empty entries); not a speed assertion.
    "deadline": 10_000,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    "print_blob": True,
}
settings.register_profile("default", max_examples=50, **_COMMON)
settings.register_profile("long", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
