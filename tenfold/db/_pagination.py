"""Keyset pagination and simple typed filters.

A page is ``WHERE (sort cols) > (last row's values) ORDER BY sort cols LIMIT
n+1``: every page costs one index range scan however deep it is, and rows
inserted meanwhile cause no duplicates or gaps (``OFFSET`` has both). The sort
key must be unique and NOT NULL; end it with the primary key,
``sort=(Item.created_at, Item.id)``, so ties on the first column stay
ordered. All sort columns go the same way (``descending`` or not), which is
what lets one row-value comparison use one composite index.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, Literal, TypeVar, cast, get_args

from pydantic import SecretStr
from sqlalchemy import BigInteger, ColumnElement, Integer, Select, SmallInteger, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator, TypeEngine

from tenfold._errors import BadRequest, InvalidCursor
from tenfold.db._cursor import Cursor, CursorCodec

__all__ = ["Filter", "Page", "Paginator"]

T = TypeVar("T")
Op = Literal["eq", "lt", "gt", "in"]
_OPS = frozenset(get_args(Op))
# The integers a PostgreSQL column holds (most specific type first); SQLite's are all 64-bit.
_POSTGRES_INT_BITS = ((SmallInteger, 16), (BigInteger, 64), (Integer, 32))


@dataclass(frozen=True, slots=True)
class Filter:
    """``field op value`` on a column the paginator declared filterable."""

    field: str
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of items and the cursors around it (``None`` at either end)."""

    items: list[T]
    next_cursor: str | None
    prev_cursor: str | None


def _coerce(column: Any, raw: Any) -> Any:
    """A query-string value as the column's Python type."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return raw
    if not isinstance(raw, str) or python_type is str:
        return raw
    if python_type is bool:
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(raw)
    parsers: dict[type, Any] = {
        dt.datetime: dt.datetime.fromisoformat,
        dt.date: dt.date.fromisoformat,
        uuid.UUID: uuid.UUID,
        Decimal: Decimal,
    }
    return parsers.get(python_type, python_type)(raw)


def _int_fits(value: int, sql_type: TypeEngine[Any], dialect: str | None) -> bool:
    bits = 64
    if dialect == "postgresql":
        bits = next((b for kind, b in _POSTGRES_INT_BITS if isinstance(sql_type, kind)), 64)
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def _fits(value: Any, column: Any, dialect: str | None) -> bool:
    """Whether a cursor value can be compared with ``column`` (its Python type, its range)."""
    sql_type = column.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    try:
        python_type = sql_type.python_type
    except NotImplementedError:
        return value is not None
    if value is None or (isinstance(value, bool) and python_type is not bool):
        return False  # the sort key is NOT NULL; True is an int to Python, not to SQL
    if python_type is int:
        return isinstance(value, int) and _int_fits(value, sql_type, dialect)
    if python_type is float:
        return isinstance(value, int | float)
    if python_type is Decimal:
        return isinstance(value, Decimal | int)
    if python_type is dt.date:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if python_type is dt.datetime and isinstance(value, dt.datetime):
        # A naive value is UTC to a timezone=True column; an aware one has no place in a
        # column without a time zone (asyncpg refuses it, SQLite would drop the offset).
        return bool(getattr(sql_type, "timezone", False)) or value.tzinfo is None
    return isinstance(value, python_type)


def _dialect(session: AsyncSession) -> str | None:
    bind = getattr(session, "bind", None)
    return getattr(getattr(bind, "dialect", None), "name", None)


class Paginator:
    """Pages through a ``select()`` by a declared sort key, with signed cursors.

    ``sort`` is the key (unique, NOT NULL, all one direction); ``filterable``
    names the columns clients may filter on. ``name`` scopes the cursors; it
    defaults to the sort key, so two listings with the same key share cursors.
    """

    def __init__(
        self,
        secret: str | bytes | SecretStr,
        *,
        sort: Sequence[Any],
        filterable: Mapping[str, Any] | None = None,
        descending: bool = False,
        default_limit: int = 20,
        max_limit: int = 100,
        name: str | None = None,
    ) -> None:
        if not sort:
            raise ValueError("sort needs at least one column")
        self.codec = CursorCodec(secret)
        self.sort = tuple(sort)
        self.filterable = dict(filterable or {})
        self.descending = descending
        self.default_limit = default_limit
        self.max_limit = max_limit
        direction = "desc" if descending else "asc"
        self.scope = name or ",".join(str(c) for c in self.sort) + ":" + direction

    def parse_filters(self, params: Mapping[str, Any]) -> list[Filter]:
        """``{"status": "open", "price__lt": "10", "id__in": "1,2"}`` -> filters.

        Keys that are not ``field`` or ``field__op`` for a declared field raise
        ``BadRequest``, as do values that do not convert to the column's type.
        """
        filters = []
        for key, raw in params.items():
            name, _, op = key.partition("__")
            op = op or "eq"
            column = self.filterable.get(name)
            if column is None or op not in _OPS:
                raise BadRequest(f"unknown filter {key!r}", field=key)
            try:
                if op == "in":
                    items = raw.split(",") if isinstance(raw, str) else list(raw)
                    value: Any = [_coerce(column, item) for item in items]
                else:
                    value = _coerce(column, raw)
            except (ValueError, TypeError, InvalidOperation):
                raise BadRequest(f"invalid value for filter {key!r}", field=key) from None
            filters.append(Filter(name, cast(Op, op), value))
        return filters

    def _where(self, filters: Sequence[Filter]) -> list[ColumnElement[bool]]:
        clauses = []
        for f in filters:
            column = self.filterable.get(f.field)
            if column is None:
                raise BadRequest(f"unknown filter {f.field!r}", field=f.field)
            ops = {
                "eq": lambda c, v: c == v,
                "lt": lambda c, v: c < v,
                "gt": lambda c, v: c > v,
                "in": lambda c, v: c.in_(list(v)),
            }
            clauses.append(ops[f.op](column, f.value))
        return clauses

    def _after(self, cursor: Cursor, dialect: str | None = None) -> ColumnElement[bool]:
        # A cursor is signed, but a leaked secret or an old deployment's cursor must still
        # be the client's 400, not a driver error: check the values before they are bound.
        if len(cursor.values) != len(self.sort) or not all(
            _fits(v, c, dialect) for v, c in zip(cursor.values, self.sort, strict=True)
        ):
            raise InvalidCursor("the cursor does not match this listing")
        keys = tuple_(*self.sort)
        values = tuple_(
            *(literal(v, c.type) for v, c in zip(cursor.values, self.sort, strict=True))
        )
        # Going forward through an ascending key (or back through a descending one) is ">".
        greater = (cursor.direction == "next") != self.descending
        return keys > values if greater else keys < values

    def _order(self, direction: str) -> list[Any]:
        ascending = (direction == "next") != self.descending
        return [c.asc() if ascending else c.desc() for c in self.sort]

    def _key_of(self, item: Any) -> tuple[Any, ...]:
        if hasattr(item, "_mapping"):
            return tuple(item._mapping[c] for c in self.sort)
        return tuple(getattr(item, c.key) for c in self.sort)

    def encode(self, values: Sequence[Any], direction: Literal["next", "prev"] = "next") -> str:
        return self.codec.encode(Cursor(tuple(values), direction), scope=self.scope)

    def decode(self, cursor: str) -> Cursor:
        return self.codec.decode(cursor, scope=self.scope)

    async def page(
        self,
        session: AsyncSession,
        stmt: Select[Any],
        *,
        cursor: str | None = None,
        limit: int | None = None,
        filters: Sequence[Filter] | Mapping[str, Any] = (),
    ) -> Page[Any]:
        """Run one page of ``stmt``. A single-entity select gives objects, else rows."""
        limit = max(1, min(limit or self.default_limit, self.max_limit))
        if isinstance(filters, Mapping):
            filters = self.parse_filters(filters)
        current = self.decode(cursor) if cursor else None
        direction = current.direction if current is not None else "next"
        stmt = stmt.where(*self._where(filters))
        if current is not None:
            stmt = stmt.where(self._after(current, _dialect(session)))
        stmt = stmt.order_by(None).order_by(*self._order(direction)).limit(limit + 1)
        result = await session.execute(stmt)
        rows = list(result.scalars() if _is_entity_select(stmt) else result)
        more = len(rows) > limit
        rows = rows[:limit]
        if direction == "prev":
            rows.reverse()
        return self._page(rows, current, direction, more)

    def _page(
        self, rows: list[Any], current: Cursor | None, direction: str, more: bool
    ) -> Page[Any]:
        if not rows:
            back = self.encode(current.values, "prev") if current and direction == "next" else None
            return Page([], None, back)
        has_next = more if direction == "next" else current is not None
        has_prev = current is not None if direction == "next" else more
        return Page(
            rows,
            self.encode(self._key_of(rows[-1]), "next") if has_next else None,
            self.encode(self._key_of(rows[0]), "prev") if has_prev else None,
        )


def _is_entity_select(stmt: Select[Any]) -> bool:
    descriptions = stmt.column_descriptions
    if len(descriptions) != 1:
        return False
    entity = descriptions[0].get("entity")
    return entity is not None and descriptions[0].get("expr") is entity
