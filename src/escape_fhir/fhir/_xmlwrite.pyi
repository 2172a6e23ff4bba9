"""Types of the compiled XML writer (``_xmlwrite.pyx``, built by setup.py when a C compiler is there)."""

from typing import Any

def write(resource: dict[str, Any], pretty: bool = False) -> bytes | None: ...
