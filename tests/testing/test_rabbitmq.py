"""The harness RabbitMQ broker and the helpers that break it."""

from __future__ import annotations

import pytest

from tenfold.testing import RabbitMQServer

pytestmark = pytest.mark.rabbitmq


def test_broker_answers_the_amqp_handshake(rabbitmq_server: RabbitMQServer) -> None:
    """The broker listens on loopback and answers the AMQP protocol header with Connection.Start."""
    assert rabbitmq_server.host == "127.0.0.1"
    assert rabbitmq_server.url == f"amqp://guest:guest@127.0.0.1:{rabbitmq_server.port}//"
    assert rabbitmq_server.is_running()
    rabbitmq_server.handshake()


def test_ctl_runs_rabbitmqctl_on_the_harness_node(rabbitmq_server: RabbitMQServer) -> None:
    """ctl() reaches the harness's own node (its unique name), not a broker the machine runs."""
    node = rabbitmq_server.node
    assert node is not None
    assert node.startswith("tenfold-")
    assert rabbitmq_server.ctl("eval", "node().").strip() == f"'{node}'"


def test_stopped_broker_refuses_then_starts_on_same_port(rabbitmq_server: RabbitMQServer) -> None:
    """A stopped broker refuses connections; start() brings it back on the same URL."""
    url = rabbitmq_server.url
    rabbitmq_server.stop()
    assert not rabbitmq_server.is_running()
    with pytest.raises(ConnectionRefusedError):
        rabbitmq_server.handshake()
    rabbitmq_server.start()
    assert rabbitmq_server.url == url
    rabbitmq_server.handshake()


def test_paused_broker_hangs_handshakes_until_resumed(rabbitmq_server: RabbitMQServer) -> None:
    """While paused the handshake times out on its client timeout; after resume() it completes."""
    rabbitmq_server.pause()
    with pytest.raises(TimeoutError):
        rabbitmq_server.handshake(timeout=0.5)
    rabbitmq_server.resume()
    rabbitmq_server.handshake()


def test_killed_broker_is_healed(rabbitmq_server: RabbitMQServer) -> None:
    """A SIGKILLed broker is not running and refuses connections; heal() restarts it."""
    rabbitmq_server.kill()
    assert not rabbitmq_server.is_running()
    assert rabbitmq_server.needs_heal
    with pytest.raises(ConnectionRefusedError):
        rabbitmq_server.handshake()
    rabbitmq_server.heal()
    assert rabbitmq_server.is_running()
    rabbitmq_server.handshake()


def test_external_broker_cannot_be_broken() -> None:
    """A TENFOLD_TEST_RABBITMQ_URL broker keeps its URL and its break-helpers raise NotManaged."""
    from tenfold.testing import NotManaged

    url = "amqp://user:secret@broker.example:5673/vhost"
    server = RabbitMQServer.from_env({"TENFOLD_TEST_RABBITMQ_URL": url})
    assert server is not None
    assert (server.host, server.port, server.url) == ("broker.example", 5673, url)
    assert RabbitMQServer.from_env({}) is None
    assert server.node is None
    for helper in (server.stop, server.kill, server.pause, server.resume, server.start, server.ctl):
        with pytest.raises(NotManaged):
            helper()
