"""An app with the events extension, for `tenfold events relay` in the relay crash test."""

from __future__ import annotations

from fastapi import FastAPI

from tenfold import create_app
from tenfold.events import EventsExtension


def make_app() -> FastAPI:
    """The app as `tenfold --app tests.events.relay_app:make_app` loads it."""
    return create_app(extensions=[EventsExtension()])
