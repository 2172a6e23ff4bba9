"""Search conditions and their SQL (FHIR search.html matching rules), over the index tables.

The service layer parses a query into these conditions; each becomes one condition on
``resource_current`` (a ``resource_id IN (subquery)`` on an index table, which both SQLite and PostgreSQL
answer from the ``(resource_type, param, value)`` indexes). Values OR'd in one parameter are alternatives of
one condition; parameters are AND'ed.

Date prefixes (search.html#prefix), with the parameter's range ``[pl, pu)`` and the resource's ``[rl, ru)``:
``eq`` the resource's range lies within the parameter's; ``ne`` it does not; ``gt`` it reaches past ``pu``
(``ru > pu``); ``lt`` it starts before ``pl``; ``ge`` gt or eq; ``le`` lt or eq; ``sa`` it starts at or
after ``pu``; ``eb`` it ends at or before ``pl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, not_, or_, select, true

from escape_fhir.storage import tables as t

_c, _s, _str, _d = t.resource_current, t.search_token, t.search_string, t.search_date


@dataclass(frozen=True)
class TokenMatch:
    """``param`` has a token equal to one of ``values``: (system or None for any, value or None for any)."""

    param: str
    values: tuple[tuple[str | None, str | None], ...]
    negate: bool = False  # :not: no token of the parameter matches (search.html#token)


@dataclass(frozen=True)
class CompositeMatch:
    """A composite of two tokens stored as ``system$system`` / ``code$code``: (sysA, codeA, sysB, codeB)."""

    param: str
    values: tuple[tuple[str | None, str, str | None, str], ...]


@dataclass(frozen=True)
class StringMatch:
    """``param`` starts with (default), equals (``exact``: case and accents count) or contains a value."""

    param: str
    values: tuple[str, ...]
    mode: str = "start"


@dataclass(frozen=True)
class DateMatch:
    param: str
    values: tuple[tuple[str, datetime, datetime], ...]  # (prefix, low, high)


@dataclass(frozen=True)
class Missing:
    """``:missing``: the resource has (``missing`` False) or has not (True) a value of ``param``."""

    param: str
    table: str
    missing: bool


@dataclass(frozen=True)
class IdMatch:
    ids: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class UpdatedMatch:
    """``_lastUpdated``: the instant of the current version against each (prefix, low, high), OR'd."""

    values: tuple[tuple[str, datetime, datetime], ...]


@dataclass(frozen=True)
class Chain:
    """A chained parameter (search.html#chaining): ``param`` refers to a ``target`` resource that matches
    every one of ``conditions``."""

    param: str
    target: str
    conditions: tuple[Condition, ...]


Condition = TokenMatch | CompositeMatch | StringMatch | DateMatch | Missing | IdMatch | UpdatedMatch | Chain


@dataclass(frozen=True)
class SortKey:
    """Order by a parameter (``_id``, ``_lastUpdated`` or a declared one in ``table``), descending or not."""

    param: str
    table: str
    descending: bool = False


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _ids(table: Any, resource_type: str, param: str, match: ColumnElement[bool]) -> Select[Any]:
    return select(table.c.resource_id).where(table.c.resource_type == resource_type, table.c.param == param, match)


def _token(value: tuple[str | None, str | None]) -> ColumnElement[bool]:
    system, code = value
    parts = []
    if code is not None:
        parts.append(_s.c.value == code)
    if system is not None:
        parts.append(_s.c.system == system)
    return and_(*parts) if parts else true()


def _composite(value: tuple[str | None, str, str | None, str]) -> ColumnElement[bool]:
    sys_a, code_a, sys_b, code_b = value
    parts = [_s.c.value == f"{code_a}${code_b}"]
    if sys_a is not None and sys_b is not None:
        parts.append(_s.c.system == f"{sys_a}${sys_b}")
    elif sys_a is not None:
        parts.append(_s.c.system.like(_like(sys_a) + "$%", escape="\\"))
    elif sys_b is not None:
        parts.append(_s.c.system.like("%$" + _like(sys_b), escape="\\"))
    return and_(*parts)


def _string(value: str, mode: str, dialect: str) -> ColumnElement[bool]:
    if mode == "exact":
        return _str.c.value == value
    if mode == "contains":
        return _str.c.norm.like("%" + _like(value) + "%", escape="\\")
    if dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case and so cannot use the (binary) index; a range over the folded
        # column can, and is exact under SQLite's byte order.
        return and_(_str.c.norm >= value, _str.c.norm < value + "\U0010ffff")
    return _str.c.norm.like(_like(value) + "%", escape="\\")


def date_condition(prefix: str, low: Any, high: Any, pl: datetime, pu: datetime) -> ColumnElement[bool]:
    """The condition of one prefixed date value on a range ``[low, high)`` (columns or the same column twice
    for an instant: then ``high`` is taken as just after ``low``)."""
    eq = and_(low >= pl, high <= pu)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": eq,
        "ne": not_(eq),
        "gt": high > pu,
        "lt": low < pl,
        "ge": or_(high > pu, eq),
        "le": or_(low < pl, eq),
        "sa": low >= pu,
        "eb": high <= pl,
    }
    return conditions[prefix]


def _instant_condition(prefix: str, pl: datetime, pu: datetime) -> ColumnElement[bool]:
    moment = _c.c.last_updated  # a point: [moment, moment + epsilon)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": and_(moment >= pl, moment < pu),
        "ne": or_(moment < pl, moment >= pu),
        "gt": moment >= pu,
        "lt": moment < pl,
        "ge": moment >= pl,
        "le": moment < pu,
        "sa": moment >= pu,
        "eb": moment < pl,
    }
    return conditions[prefix]


def _column_table(table: str) -> Any:
    return {"search_token": _s, "search_string": _str, "search_date": _d}[table]


def compile_condition(resource_type: str, cond: Condition, dialect: str) -> ColumnElement[bool]:
    """One condition on ``resource_current`` rows of ``resource_type``."""
    rid = _c.c.resource_id
    if isinstance(cond, TokenMatch):
        inner = _ids(_s, resource_type, cond.param, or_(*(_token(v) for v in cond.values)))
        return rid.not_in(inner) if cond.negate else rid.in_(inner)
    if isinstance(cond, CompositeMatch):
        return rid.in_(_ids(_s, resource_type, cond.param, or_(*(_composite(v) for v in cond.values))))
    if isinstance(cond, StringMatch):
        alternatives = or_(*(_string(v, cond.mode, dialect) for v in cond.values))
        return rid.in_(_ids(_str, resource_type, cond.param, alternatives))
    if isinstance(cond, DateMatch):
        alternatives = or_(*(date_condition(p, _d.c.low, _d.c.high, lo, hi) for p, lo, hi in cond.values))
        return rid.in_(_ids(_d, resource_type, cond.param, alternatives))
    if isinstance(cond, Missing):
        inner = _ids(_column_table(cond.table), resource_type, cond.param, true())
        return rid.not_in(inner) if cond.missing else rid.in_(inner)
    if isinstance(cond, IdMatch):
        return rid.not_in(cond.ids) if cond.negate else rid.in_(cond.ids)
    if isinstance(cond, UpdatedMatch):
        return or_(*(_instant_condition(p, lo, hi) for p, lo, hi in cond.values)) if cond.values else false()
    return _chain(resource_type, cond, dialect)


def _chain(resource_type: str, cond: Chain, dialect: str) -> ColumnElement[bool]:
    """References written ``Target/id`` to a target that matches (the index keeps references as written;
    ours are always relative)."""
    target = _c.alias("target")
    where = [target.c.resource_type == cond.target, target.c.deleted.is_(False)]
    inner_where = [_retarget(compile_condition(cond.target, c, dialect), target) for c in cond.conditions]
    refs = select(literal(f"{cond.target}/") + target.c.resource_id).where(*where, *inner_where)
    return _c.c.resource_id.in_(_ids(_s, resource_type, cond.param, _s.c.value.in_(refs)))


def _retarget(condition: ColumnElement[bool], target: Any) -> ColumnElement[bool]:
    """``condition`` (written on ``resource_current``) on the alias ``target`` instead."""
    from sqlalchemy.sql.util import ClauseAdapter

    adapted: ColumnElement[bool] = ClauseAdapter(target).traverse(condition)
    return adapted


def sort_expression(resource_type: str, key: SortKey) -> Any:
    """An ORDER BY expression: the lowest (or, descending, highest) value of the parameter."""
    if key.param == "_id":
        column: Any = _c.c.resource_id
    elif key.param == "_lastUpdated":
        column = _c.c.last_updated
    else:
        table = _column_table(key.table)
        value = {"search_token": _s.c.value, "search_string": _str.c.norm, "search_date": _d.c.low}[key.table]
        pick = func.max(value) if key.descending else func.min(value)
        column = (
            select(pick)
            .where(
                table.c.resource_type == resource_type,
                table.c.param == key.param,
                table.c.resource_id == _c.c.resource_id,
            )
            .scalar_subquery()
        )
    return column.desc() if key.descending else column.asc()
