"""FastAPI dependencies: ``DbSession`` (primary, unit of work) and ``ReadSession`` (routed).

Both use ``scope="function"``: the session commits (and the consistency
token is raised) when the endpoint returns, *before* the response is sent, so
a failed commit becomes the response (409/503) and the token reaches the
response headers. With FastAPI's default scope the commit would run after the
client already had a 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from tenfold._errors import ConfigurationError
from tenfold.db._session import TenfoldSession

if TYPE_CHECKING:
    from tenfold.db._database import Database

__all__ = ["DbSession", "ReadSession", "get_database", "get_read_session", "get_session"]


def get_database(request: Request) -> Database:
    """The platform's ``Database`` (``platform.get(Database)``)."""
    from tenfold._platform import find_on
    from tenfold.db._database import Database

    database = find_on(request.app, Database)
    if database is None:
        raise ConfigurationError(
            "this app's platform has no Database: build the app with tenfold.create_app()"
        )
    return database


async def get_session(request: Request) -> AsyncIterator[TenfoldSession]:
    """A write session on the primary: commits if the endpoint returns, else rolls back."""
    async with get_database(request).session() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[TenfoldSession]:
    """A read-only session on a replica that has the client's writes, else the primary."""
    async with get_database(request).session(readonly=True) as session:
        yield session


DbSession = Annotated[TenfoldSession, Depends(get_session, scope="function")]
ReadSession = Annotated[TenfoldSession, Depends(get_read_session, scope="function")]
