"""Test-wide fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands such as ``serve`` and ``outbox run`` configure the ``escape_fhir`` logger for the process;
    in the test process, put it back after each test so one test's logging set-up does not leak into the
    stderr another test reads."""
    logger = logging.getLogger("escape_fhir")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
