"""Break-one-thing edits as data: apply ``[op, path, value?]`` rows to a deep copy of a resource.

Paths are dotted, with list indices as numbers (``entry.0.resource.focus.0.reference``). Operations:
``set`` (a value), ``delete``, ``append`` (a value to a list), ``insert`` (a value before a list index),
``swap`` (two list items, second path).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any


def _parent(resource: Any, path: str) -> tuple[Any, str | int]:
    *parents, last = path.split(".")
    node = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, int(last) if isinstance(node, list) else last


def _get(resource: Any, path: str) -> Any:
    parent, key = _parent(resource, path)
    return parent[key]


def apply_edits(resource: dict[str, Any], edits: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A deep copy of ``resource`` with the edits applied in order."""
    result = copy.deepcopy(resource)
    for op, path, *args in edits:
        parent, key = _parent(result, path)
        if op == "set":
            parent[key] = copy.deepcopy(args[0])
        elif op == "delete":
            del parent[key]
        elif op == "append":
            parent[key].append(copy.deepcopy(args[0]))
        elif op == "insert":
            parent.insert(key, copy.deepcopy(args[0]))
        elif op == "swap":
            other_parent, other_key = _parent(result, args[0])
            parent[key], other_parent[other_key] = other_parent[other_key], parent[key]
        else:
            raise ValueError(f"unknown edit {op!r}")
    return result
