"""An app with the leaderboard projection, for `tenfold --app ... projections` in the tests."""

from __future__ import annotations

from fastapi import FastAPI

from tenfold import create_app
from tenfold.events import EventsExtension
from tenfold.jobs import JobsExtension, Tasks
from tests.events.leaderboard import Leaderboard

#: A worker needs a task to consume; this one is never sent.
tasks = Tasks()


@tasks.task
async def noop() -> None:
    """Nothing."""


def make_app() -> FastAPI:
    """The app as `tenfold --app tests.events.projections_app:make_app` loads it."""
    return create_app(
        extensions=[EventsExtension(projections=[Leaderboard()]), JobsExtension(tasks=[tasks])]
    )
