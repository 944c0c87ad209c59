"""``Aggregate``: state rebuilt from one stream's events, and the events it decides next.

    class Match(Aggregate):
        def __init__(self, id: str) -> None:
            super().__init__(id)
            self.score = {"home": 0, "away": 0}

        def update_score(self, home: int, away: int) -> None:
            self.record("ScoreUpdated", {"home": home, "away": away})

        @on("ScoreUpdated")
        def _score_updated(self, data: dict) -> None:
            self.score = {"home": data["home"], "away": data["away"]}

``Aggregates`` (tenfold.events._snapshots) loads and saves them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import orjson

from tenfold.events._errors import UnknownEventType
from tenfold.events._model import NewEvent, RecordedEvent

__all__ = ["Aggregate", "on"]

Handler = Callable[[Any, dict[str, Any]], None]
H = TypeVar("H", bound=Handler)

#: Where ``@on`` leaves the event type on the function it decorates.
_EVENT_TYPE = "__tenfold_event_type__"


def on(event_type: str) -> Callable[[H], H]:
    """Declare the decorated method as ``event_type``'s handler: ``(self, data) -> None``."""

    def mark(method: H) -> H:
        setattr(method, _EVENT_TYPE, event_type)
        return method

    return mark


class Aggregate:
    """One stream's state, rebuilt from its events; decides and records new ones.

    - ``id`` is the stream id; ``version`` is the version of the last event
      applied (0 for a new aggregate), counting recorded ones not yet saved.
    - Handlers: a method decorated with ``@on("TypeName")`` takes the event's
      ``data`` (a dict of JSON values) and changes the state. It must not
      fail or look anywhere else: it runs again each time the stream loads.
      A subclass may replace an inherited handler of the same type.
    - Commands are plain methods: they check the state, raise if the
      command is not allowed, and call ``self.record(type, data)``, which
      applies the event at once and queues it for ``Aggregates.save``.
    - ``__init__(self, id)`` sets the initial state; the repository calls
      ``cls(stream_id)`` before applying the snapshot and events, so a
      subclass's ``__init__`` takes the id alone.
    - A stream event with no handler raises ``UnknownEventType`` naming it,
      unless the class sets ``ignore_unknown_events = True``.
    - Snapshots: ``snapshot_state()`` returns the state as JSON values (by
      default every public attribute) and ``restore_snapshot(state)`` sets it
      back (by default as attributes). Change ``snapshot_version`` whenever
      the state's shape changes: snapshots of another version are ignored and
      the aggregate loads from its events instead.
    """

    #: The shape of ``snapshot_state()``: bump it when the state changes shape.
    snapshot_version: ClassVar[int] = 1
    #: Skip events of types without a handler instead of raising ``UnknownEventType``.
    ignore_unknown_events: ClassVar[bool] = False
    #: Handler method name per event type, collected from ``@on`` across the MRO.
    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._handlers)
        own: dict[str, str] = {}
        for name, value in vars(cls).items():
            event_type = getattr(value, _EVENT_TYPE, None)
            if event_type is None:
                continue
            if event_type in own:
                raise TypeError(
                    f"{cls.__name__} has two handlers for {event_type!r}: "
                    f"{own[event_type]} and {name}"
                )
            own[event_type] = name
        handlers.update(own)
        cls._handlers = handlers

    def __init__(self, id: str) -> None:
        self._id = id
        self._version = 0
        self._pending: list[NewEvent] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._id!r} v{self._version}>"

    @property
    def id(self) -> str:
        """The stream id."""
        return self._id

    @property
    def version(self) -> int:
        """The version of the last event applied, saved or not (0: none yet)."""
        return self._version

    @property
    def pending(self) -> tuple[NewEvent, ...]:
        """Events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    @property
    def saved_version(self) -> int:
        """The stream's version when the aggregate was loaded or last saved."""
        return self._version - len(self._pending)

    def record(
        self, event_type: str, data: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Apply a new event now and queue it for the next save.

        ``data`` goes through JSON first (TypeError if it cannot), so the
        handler sees exactly what it will see when the stream loads again.
        """
        stored = orjson.loads(orjson.dumps(data))
        self._apply(event_type, stored)
        self._pending.append(NewEvent(event_type, stored, metadata=metadata))
        self._version += 1

    def snapshot_state(self) -> dict[str, Any]:
        """The state to snapshot, as JSON values: by default every public attribute."""
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    def restore_snapshot(self, state: dict[str, Any]) -> None:
        """Set the state ``snapshot_state`` returned (read back from JSON)."""
        for name, value in state.items():
            setattr(self, name, value)

    # -- for the repository ----------------------------------------------------------------

    def _replay(self, event: RecordedEvent) -> None:
        """Apply a stored event: the next one of the stream."""
        self._apply(event.type, event.data)
        self._version = event.version

    def _restored(self, state: dict[str, Any], version: int) -> None:
        self.restore_snapshot(state)
        self._version = version

    def _saved(self) -> None:
        self._pending.clear()

    def _apply(self, event_type: str, data: dict[str, Any]) -> None:
        name = self._handlers.get(event_type)
        if name is None:
            if self.ignore_unknown_events:
                return
            raise UnknownEventType(type(self).__name__, self._id, event_type)
        getattr(self, name)(data)
