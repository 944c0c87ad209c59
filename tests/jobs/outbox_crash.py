"""Enqueue inside a transaction, commit, and die before the message is sent.

Run as ``python -m tests.jobs.outbox_crash MARKER`` with the jobs tests' environment: the
outbox row commits, and the process exits (status 17) in the first after-commit callback,
before the outbox's own callback could send the message.
"""

from __future__ import annotations

import asyncio
import os
import sys

from tenfold import Platform, Settings
from tenfold.jobs import JobsExtension
from tests.jobs import worker_app


async def main(marker: str) -> None:
    platform = Platform.build(
        Settings.load(), extensions=[JobsExtension(tasks=[worker_app.tasks])], configure_logs=False
    )
    async with platform, platform.db.session() as session:
        session.after_commit(lambda: os._exit(17))
        await worker_app.mark_once.enqueue(marker, session=session)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    sys.exit(0)  # not reached: the commit ends the process
