"""Type stub of the compiled fast path of the XML reader (_xmlread.pyx)."""

from typing import Any

from lxml import etree

def read(root: etree._Element) -> dict[str, Any] | None: ...
