"""Idempotency keys against a real uvicorn process on the harness PostgreSQL.

One server serves the module's tests (its start is most of a test); each test acts as
users of its own, so that no key of another test is in scope.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tenfold.testing import PgCluster, allocate_port, release_port

APP_DIR = Path(__file__).parent
IGNORED = {"date", "server", "idempotent-replayed"}


class Server:
    """One uvicorn process serving ``_server_app`` on a free port."""

    def __init__(self, db_url: str, gate: Path) -> None:
        self.gate = gate
        self.port = allocate_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TF_IDEM_TEST_DB": db_url, "TF_IDEM_TEST_GATE": str(gate)}
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(APP_DIR)]
        command += ["_server_app:app", "--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("the test server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        release_port(self.port)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _database(pg_cluster: PgCluster) -> str:
    name = pg_cluster.create_database()
    pg_cluster.primary.psql("CREATE TABLE orders (id serial PRIMARY KEY, item text)", db=name)
    return name


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def shared_server(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name = _database(pg_cluster)
    srv = Server(pg_cluster.primary.url(name), tmp_path_factory.mktemp("gate"))
    yield srv
    srv.stop()
    pg_cluster.drop_database(name)


@dataclass
class Served:
    """The shared server as one test sees it: its URL, its gate, and its users' prefix."""

    url: str
    gate: Path
    users: str


@pytest.fixture
def server(shared_server: Server) -> Served:
    for left in ("block", "reached"):  # a file another test's request left behind
        (shared_server.gate / left).unlink(missing_ok=True)
    return Served(shared_server.url, shared_server.gate, f"{uuid.uuid4().hex[:8]}-")


def _post(srv: Server | Served, key: str | None, item: str, user: str = "alice") -> httpx.Response:
    if isinstance(srv, Served):
        user = srv.users + user
    headers = {"X-User": user}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(srv.url + "/orders", json={"item": item}, headers=headers, timeout=30)


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in IGNORED)
    return response.status_code, headers, response.content


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def test_killed_mid_request_then_retried_writes_one_row(pg_cluster: PgCluster, gate: Path) -> None:
    """A server SIGKILLed mid-request leaves nothing; the retry writes one row, then replays."""
    name = _database(pg_cluster)
    first = Server(pg_cluster.primary.url(name), gate)
    (gate / "block").touch()
    errors: list[BaseException] = []

    def doomed() -> None:
        try:
            _post(first, "order-1", "beer")
        except httpx.TransportError as exc:
            errors.append(exc)

    thread = threading.Thread(target=doomed)
    thread.start()
    try:
        _wait_for(gate / "reached")  # the row is inserted, not committed
        first.kill()
        thread.join(10)
        assert errors, "the killed request should have failed"
    finally:
        first.stop()
    (gate / "block").unlink()
    second = Server(pg_cluster.primary.url(name), gate)
    try:
        retried = _post(second, "order-1", "beer")
        while retried.status_code == 409:  # PostgreSQL may not have reaped the dead backend yet
            time.sleep(0.05)
            retried = _post(second, "order-1", "beer")
        assert retried.status_code == 201
        assert "idempotent-replayed" not in retried.headers
        replayed = _post(second, "order-1", "beer")
        assert replayed.headers["idempotent-replayed"] == "true"
        assert _comparable(replayed) == _comparable(retried)
        assert pg_cluster.primary.psql("SELECT count(*) FROM orders", db=name) == "1"
    finally:
        second.stop()
        pg_cluster.drop_database(name)


def test_retry_replays_status_headers_and_body(server: Served) -> None:
    """A retry with the same key replays the first response and runs nothing."""
    first = _post(server, "k", "beer")
    again = _post(server, "k", "beer")
    assert first.status_code == 201
    assert first.headers["x-order-id"] == again.headers["x-order-id"]
    assert _comparable(again) == _comparable(first)


def test_same_key_different_body_is_422(server: Served) -> None:
    """Reusing a key for a different request body answers 422 problem+json."""
    assert _post(server, "k", "beer").status_code == 201
    reused = _post(server, "k", "wine")
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"].endswith("idempotency-key-mismatch")


def test_concurrent_duplicate_is_409(server: Served) -> None:
    """A duplicate sent while the first request still runs answers 409 problem+json."""
    gate = server.gate
    (gate / "block").touch()
    results: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: results.append(_post(server, "k", "beer")))
    thread.start()
    _wait_for(gate / "reached")
    duplicate = _post(server, "k", "beer")
    (gate / "block").unlink()
    thread.join(10)
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert results[0].status_code == 201


def test_one_users_key_does_not_replay_for_another(server: Served) -> None:
    """The same key from a different user runs the handler anew instead of replaying."""
    alice = _post(server, "shared", "beer", user="alice")
    bob = _post(server, "shared", "beer", user="bob")
    assert bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert bob.json()["id"] != alice.json()["id"]


def test_missing_key_is_400(server: Served) -> None:
    """A POST without Idempotency-Key on a route that requires one answers 400 problem+json."""
    missing = _post(server, None, "beer")
    assert missing.status_code == 400
    assert missing.headers["content-type"] == "application/problem+json"


def test_key_without_user_or_api_key_is_401(server: Served) -> None:
    """A key that cannot be scoped to a user or API key is refused with 401."""
    response = httpx.post(
        server.url + "/orders", json={"item": "beer"}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 401
