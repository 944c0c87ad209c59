"""The embedded worker: with the memory broker, a started app runs its tasks in-process."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tenfold import Platform, Settings, create_app, platform_of
from tenfold.jobs import Jobs, JobsExtension
from tenfold.jobs._memory import memory_queues
from tenfold.testing import app_client
from tests._serving import tenfold_run
from tests.jobs import worker_app

THREAD = "jobs-embedded-worker"


class Marks:
    """The SQLite file the app and its tasks write to, and reading its ``marks`` rows."""

    def __init__(self, db_file: Path) -> None:
        self.db_file = db_file
        self.url = f"sqlite+aiosqlite:///{db_file}"

    def rows(self) -> list[tuple[str, str]]:
        with closing(sqlite3.connect(self.db_file)) as conn:
            return list(conn.execute("SELECT marker, sent_to FROM marks ORDER BY id"))

    def markers(self) -> list[str]:
        return [marker for marker, _ in self.rows()]

    async def wait_for(self, marker: str, *, count: int = 1) -> list[str]:
        """The ``sent_to`` of the rows with ``marker`` once there are ``count``; fails after
        about 30 s (a hang guard)."""
        for _ in range(300):
            found = [to for m, to in await asyncio.to_thread(self.rows) if m == marker]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {count} rows {marker!r} after 30 s; rows: {self.rows()}")


@pytest.fixture
def marks(embedded_settings: Settings) -> Marks:
    url = embedded_settings.db.url.get_secret_value()
    made = Marks(Path(url.split("///", 1)[1]))
    engine = sa.create_engine(f"sqlite:///{made.db_file}")
    worker_app.metadata.create_all(engine)
    engine.dispose()
    return made


def _app(settings: Settings) -> FastAPI:
    return create_app(
        settings,
        routers=[worker_app.router],
        extensions=[JobsExtension(tasks=[worker_app.tasks])],
        configure_logs=False,
    )


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Jobs]]:
    app = _app(settings)
    jobs = platform_of(app).get(Jobs)
    assert jobs.broker == "memory"
    async with app_client(app) as client:
        yield client, jobs


async def _enqueue(client: httpx.AsyncClient, name: str, *args: object, **body: object) -> str:
    response = await client.post(f"/enqueue/{name}", json={"args": list(args), **body})
    assert response.status_code == 202, response.text
    return str(response.json()["job"])


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


async def test_an_async_task_enqueued_by_a_request_runs_on_the_apps_platform(
    embedded_settings: Settings, marks: Marks
) -> None:
    """An async task enqueued in a request writes its row through the app's database, once,
    as that request (its request id) and caused by its own message."""
    async with _serving(embedded_settings) as (client, _):
        response = await client.post("/enqueue/whoami", json={"args": ["who"]})
        assert response.status_code == 202
        [acting] = await marks.wait_for("who")
    request_id, user_id, causation_id = acting.split("/")
    assert request_id == response.headers["X-Request-ID"]
    assert user_id == "None"
    assert causation_id == response.json()["job"]
    assert marks.markers() == ["who"]


async def test_a_sync_task_runs_in_the_worker_thread(
    embedded_settings: Settings, marks: Marks
) -> None:
    """A sync task runs as it is, in the worker's thread (not on the event loop's)."""
    async with _serving(embedded_settings) as (client, _):
        await _enqueue(client, "note", str(marks.db_file), "sync")
        [ran] = await marks.wait_for("sync")
    assert ran.split("@")[0] == THREAD


async def test_a_transient_failure_is_retried_and_a_bug_is_not(
    embedded_settings: Settings, marks: Marks
) -> None:
    """A task failing with ConnectionError runs again until it succeeds; one failing with a
    bug runs once."""
    async with _serving(embedded_settings) as (client, _):
        await _enqueue(client, "broken", "bug")
        await _enqueue(client, "flaky", "flaky", 2)
        await marks.wait_for("flaky", count=3)
        # Due after any retry of the broken task would be: once it ran, none is pending.
        await _enqueue(client, "mark", "done", countdown=0.2)
        await marks.wait_for("done")
    assert marks.markers().count("flaky") == 3
    assert marks.markers().count("bug") == 1


async def test_a_message_for_another_queue_is_run_too(
    embedded_settings: Settings, marks: Marks
) -> None:
    """A task sent to a queue no task declares (``enqueue(queue=...)``) is run as well: the
    embedded worker is the only one there is."""
    async with _serving(embedded_settings) as (client, _):
        await _enqueue(client, "mark", "elsewhere", queue="elsewhere")
        await marks.wait_for("elsewhere")
    assert marks.markers() == ["elsewhere"]


async def test_a_countdown_delays_the_task(embedded_settings: Settings, marks: Marks) -> None:
    """A task enqueued with a countdown runs no earlier than that, after one sent later."""
    async with _serving(embedded_settings) as (client, _):
        sent = time.time()
        await _enqueue(client, "note", str(marks.db_file), "late", countdown=0.5)
        await _enqueue(client, "note", str(marks.db_file), "now")
        [ran] = await marks.wait_for("late")
    assert marks.markers() == ["now", "late"]
    # The worker's clock and this one are the same; the margin is for float rounding only.
    assert float(ran.split("@")[1]) >= sent + 0.5 - 0.01


async def test_stopping_the_app_stops_the_worker_thread(
    embedded_settings: Settings, marks: Marks
) -> None:
    """The worker thread runs while the app does and is gone once it has stopped."""
    assert _worker_threads() == []
    async with _serving(embedded_settings) as (_, jobs):
        assert jobs.embedded is not None
        thread = jobs.embedded.thread
        assert thread is not None
        assert thread.is_alive()
        assert _worker_threads() == [thread]
    assert not thread.is_alive()
    assert _worker_threads() == []


async def test_stopping_cancels_an_async_task_that_outlives_the_grace(
    embedded_settings: Settings, marks: Marks
) -> None:
    """An async task still running when the app stops is cancelled after the grace period,
    and the worker thread ends."""
    async with _serving(embedded_settings) as (client, jobs):
        assert jobs.embedded is not None
        jobs.embedded.stop_grace = 0.2
        thread = jobs.embedded.thread
        await _enqueue(client, "hang", "hanging")
        await marks.wait_for("hanging")
    assert thread is not None
    assert not thread.is_alive()
    assert _worker_threads() == []


async def test_the_setting_turns_the_worker_off(
    embedded_settings: Settings, marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TENFOLD_JOBS__EMBEDDED_WORKER=false nothing consumes: the message stays queued."""
    monkeypatch.setenv("TENFOLD_JOBS__EMBEDDED_WORKER", "false")
    async with _serving(embedded_settings) as (client, jobs):
        assert jobs.embedded is None
        await _enqueue(client, "mark", "queued")
        assert _worker_threads() == []
        queues = memory_queues(jobs.app.conf.broker_transport_options)
        assert queues["default"].qsize() == 1
    assert marks.rows() == []


async def test_platforms_in_one_process_do_not_share_the_memory_broker(
    embedded_settings: Settings, marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message one platform left queued is not run by another platform's worker."""
    extensions = [JobsExtension(tasks=[worker_app.tasks])]
    monkeypatch.setenv("TENFOLD_JOBS__EMBEDDED_WORKER", "false")
    idle = Platform.build(embedded_settings, extensions=extensions, configure_logs=False)
    monkeypatch.delenv("TENFOLD_JOBS__EMBEDDED_WORKER")
    busy = Platform.build(embedded_settings, extensions=extensions, configure_logs=False)
    async with idle, busy:
        await idle.get(Jobs).enqueue(worker_app.mark, ["left"])
        await busy.get(Jobs).enqueue(worker_app.mark, ["taken"])
        await marks.wait_for("taken")
        # One queue, first in first out: a worker that could see "left" ran it before.
        assert marks.markers() == ["taken"]
        queues = memory_queues(idle.get(Jobs).app.conf.broker_transport_options)
        assert queues["default"].qsize() == 1


async def test_tenfold_run_runs_the_tasks_it_enqueues(tmp_path: Path) -> None:
    """`tenfold run` on the memory broker runs a task a request enqueued, in its process."""
    made = Marks(tmp_path / "served.db")
    engine = sa.create_engine(f"sqlite:///{made.db_file}")
    worker_app.metadata.create_all(engine)
    engine.dispose()
    app = ("--app", "tests.jobs.worker_app:make_app()")
    async with (
        tenfold_run(tmp_path, *app, TENFOLD_DB__URL=made.url) as served,
        httpx.AsyncClient(base_url=served.base) as client,
    ):
        await _enqueue(client, "whoami", "served")
        [acting] = await made.wait_for("served")
    assert acting.split("/")[0] != "None"
    assert made.markers() == ["served"]


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_refuse_the_memory_broker(
    command: str, embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tenfold worker` and `tenfold beat` exit with status 2 on the memory broker, whose
    messages only the app's own process can see."""
    from click.testing import CliRunner

    from tenfold.cli import cli

    for name in ("TENFOLD_REDIS__URL", "TENFOLD_JOBS__BROKER", "TENFOLD_JOBS__BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENFOLD_DB__URL", embedded_settings.db.url.get_secret_value())
    result = CliRunner().invoke(cli, ["--app", "tests.jobs.worker_app:make_app", command])
    assert result.exit_code == 2, result.output
    assert "TENFOLD_JOBS__BROKER" in result.output


async def test_a_task_enqueued_in_a_request_transaction_runs_only_once_it_commits(
    embedded_settings: Settings, marks: Marks
) -> None:
    """Embedded profile, outbox path: a committed request's task runs once in-process; a
    failed request's task never runs (nor its row stays)."""
    async with _serving(embedded_settings) as (client, _):
        failed = await client.post("/commit/mark_once", json={"args": ["never"], "fail": True})
        assert failed.status_code == 500
        done = await client.post("/commit/mark_once", json={"args": ["committed"]})
        assert done.status_code == 202
        await marks.wait_for("committed")
        after = await client.post("/enqueue/mark", json={"args": ["after"]})
        assert after.status_code == 202
        await marks.wait_for("after")
    assert sorted(marks.markers()) == ["after", "committed", "request"]
    with closing(sqlite3.connect(marks.db_file)) as conn:
        assert list(conn.execute("SELECT count(*) FROM tenfold_job_outbox")) == [(0,)]


async def test_a_dead_letter_retried_from_another_process_runs_in_the_app(
    embedded_settings: Settings, marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded profile: `dlq retry` (a second platform, marked a command as the CLI marks it)
    moves the dead letter into the outbox instead of its own memory broker, where nothing
    would run it; the app's relay sends it to the app's worker."""
    monkeypatch.setenv("TENFOLD_JOBS__OUTBOX_GRACE", "0.05")
    monkeypatch.setenv("TENFOLD_JOBS__OUTBOX_INTERVAL", "0.05")
    async with _serving(embedded_settings) as (_, jobs):
        letter_id = await jobs.dead_letters.record(
            message_id="m-1",
            task=worker_app.mark.name,
            queue=None,
            args=("retried",),
            kwargs={},
            exc=ValueError("boom"),
            attempts=1,
            context=None,
            failed_at=0.0,
            max_args=1000,
        )
        command = platform_of(_app(embedded_settings))
        command.command = True  # as tenfold.cli.with_platform marks a command's platform
        command_jobs = command.get(Jobs)
        async with command:
            assert command_jobs.embedded is not None
            assert command_jobs.embedded.thread is None  # a command runs no worker
            letter = await command_jobs.dead_letters.get(letter_id)
            assert letter is not None
            await command_jobs.retry_dead(letter)
            with pytest.raises(LookupError):
                await command_jobs.retry_dead(letter)  # a second retry of the same row
        await marks.wait_for("retried")
        assert await jobs.dead_letters.count() == 0
    assert marks.markers() == ["retried"]


async def test_a_command_on_the_memory_broker_enqueues_for_the_app(
    embedded_settings: Settings, marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task enqueued from a command's platform runs in the app, through the outbox."""
    monkeypatch.setenv("TENFOLD_JOBS__OUTBOX_GRACE", "0.05")
    monkeypatch.setenv("TENFOLD_JOBS__OUTBOX_INTERVAL", "0.05")
    async with _serving(embedded_settings):
        command = platform_of(_app(embedded_settings))
        command.command = True
        async with command:
            await worker_app.mark.enqueue("from-a-command")
        await marks.wait_for("from-a-command")
    assert marks.markers() == ["from-a-command"]
