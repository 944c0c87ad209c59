"""The memory broker: kombu's in-process transport, with one set of queues per Celery app.

kombu's memory transport keeps its queues in one dict per process, so two
platforms in one process (a test suite builds many) would take each other's
messages, and messages a stopped platform left behind would be run by the
next. Here each Celery app holds its own queues (in its transport options):
its messages live exactly as long as the app does.
"""

from __future__ import annotations

from queue import Queue
from typing import Any

from kombu.transport import memory, virtual

__all__ = ["QUEUES_OPTION", "MemoryTransport", "memory_queues"]

#: The transport option holding an app's queues: name -> ``queue.Queue`` of messages.
QUEUES_OPTION = "tenfold_queues"


def memory_queues(options: dict[str, Any]) -> dict[str, Queue[Any]]:
    """The queues of the app whose (copied) broker transport options are ``options``."""
    return options[QUEUES_OPTION]  # type: ignore[no-any-return]


class _Channel(memory.Channel):  # type: ignore[misc]
    def __init__(self, connection: Any, **kwargs: Any) -> None:
        # An instance attribute shadows the class-wide dict kombu's channel uses.
        self.queues = memory_queues(connection.client.transport_options)
        super().__init__(connection, **kwargs)


class MemoryTransport(memory.Transport):  # type: ignore[misc]
    """kombu's memory transport; each app's queues are its own."""

    Channel = _Channel
    # Exchanges and bindings: not shared with kombu's own memory transport either.
    global_state = virtual.BrokerState()
