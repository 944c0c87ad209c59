"""Resource-scoped roles: "admin of tournament 42", stored as grants.

    grants = Grants(db)
    await grants.grant("u7", "admin", "tournament:42")
    await grants.roles_on("u7", "tournament:42")      # frozenset({"admin"})
    await grants.resources("u7", "admin")             # ["tournament:42"]

A grant names a role (defined in ``Roles``) and a resource, a string the app
chooses, conventionally ``"<kind>:<id>"``. Each question is one indexed
query on the primary: ``roles_on`` reads the primary key's prefix
``(user_id, resource)``, ``resources`` the ``(user_id, role)`` index,
``holders`` the ``resource`` index. The primary is read, not a replica, so a
revoked grant stops counting at once.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tenfold.auth._tables import metadata

if TYPE_CHECKING:
    from tenfold.db import Database

__all__ = ["Grants", "grants_table"]

#: Role names: what ``Roles`` accepts too.
ROLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}").fullmatch
_MAX_RESOURCE = 255
_MAX_USER_ID = 128

grants_table = sa.Table(
    "tenfold_auth_grants",
    metadata,
    sa.Column("user_id", sa.String(_MAX_USER_ID), nullable=False),
    sa.Column("resource", sa.String(_MAX_RESOURCE), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The key's order serves roles_on (user_id, resource) and keeps a grant unique.
    sa.PrimaryKeyConstraint("user_id", "resource", "role", name="pk_tenfold_auth_grants"),
    sa.Index("ix_tenfold_auth_grants_user_role", "user_id", "role"),
    sa.Index("ix_tenfold_auth_grants_resource", "resource"),
)


class Grants:
    """Roles granted to users on single resources, in the ``tenfold_auth_grants`` table.

    ``clock`` stamps ``created_at`` (seconds since the epoch).
    """

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def __repr__(self) -> str:
        return f"<Grants {self.db!r}>"

    async def grant(self, user_id: str, role: str, resource: str) -> bool:
        """Give ``user_id`` the ``role`` on ``resource``; False if they had it already."""
        _check(user_id, role, resource)
        values = {
            "user_id": user_id,
            "resource": resource,
            "role": role,
            "created_at": dt.datetime.fromtimestamp(self.clock(), dt.UTC),
        }
        insert = postgresql.insert if not self.db.is_sqlite else sqlite.insert
        statement = (
            insert(grants_table)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(grants_table.c.user_id)
        )
        async with self.db.session() as session:
            inserted = (await session.execute(statement)).first()
        return inserted is not None

    async def revoke(self, user_id: str, role: str, resource: str) -> bool:
        """Take ``role`` on ``resource`` from ``user_id``; False if they did not have it."""
        statement = (
            sa.delete(grants_table)
            .where(
                grants_table.c.user_id == user_id,
                grants_table.c.resource == resource,
                grants_table.c.role == role,
            )
            .returning(grants_table.c.user_id)
        )
        async with self.db.session() as session:
            deleted = (await session.execute(statement)).first()
        return deleted is not None

    async def roles_on(self, user_id: str, resource: str) -> frozenset[str]:
        """The roles ``user_id`` holds on ``resource`` (empty when none)."""
        statement = sa.select(grants_table.c.role).where(
            grants_table.c.user_id == user_id, grants_table.c.resource == resource
        )
        async with self.db.session() as session:
            rows = (await session.execute(statement)).scalars().all()
        return frozenset(rows)

    async def resources(self, user_id: str, role: str) -> list[str]:
        """The resources on which ``user_id`` holds ``role``, sorted."""
        statement = (
            sa.select(grants_table.c.resource)
            .where(grants_table.c.user_id == user_id, grants_table.c.role == role)
            .order_by(grants_table.c.resource)
        )
        async with self.db.session() as session:
            return list((await session.execute(statement)).scalars().all())

    async def holders(self, resource: str, role: str | None = None) -> list[tuple[str, str]]:
        """``(user_id, role)`` of everyone holding a role (``role``, or any) on ``resource``."""
        statement = (
            sa.select(grants_table.c.user_id, grants_table.c.role)
            .where(grants_table.c.resource == resource)
            .order_by(grants_table.c.user_id, grants_table.c.role)
        )
        if role is not None:
            statement = statement.where(grants_table.c.role == role)
        async with self.db.session() as session:
            return [(r.user_id, r.role) for r in (await session.execute(statement)).all()]


def _check(user_id: str, role: str, resource: str) -> None:
    if not isinstance(user_id, str) or not 0 < len(user_id) <= _MAX_USER_ID:
        raise ValueError(f"a user id is a string of 1-{_MAX_USER_ID} characters")
    if not isinstance(role, str) or ROLE_NAME(role) is None:
        raise ValueError(f"not a role name: {role!r}")
    if not isinstance(resource, str) or not 0 < len(resource) <= _MAX_RESOURCE:
        raise ValueError(f"a resource is a string of 1-{_MAX_RESOURCE} characters")
