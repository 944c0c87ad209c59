"""RabbitMQ: a broker node of the harness's own, or an external one.

The harness node is independent of any RabbitMQ already running on the
machine: its own node name, AMQP and distribution ports from the port
allocator (listening on 127.0.0.1 only), its own data, config, plugins file
and Erlang cookie in the session's temp dir.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tenfold.testing._binaries import find_binary
from tenfold.testing._errors import HarnessError, NotManaged
from tenfold.testing._ports import allocate_port, release_port
from tenfold.testing._process import ServerProcess, poll_until, run_tool

__all__ = ["RABBITMQ_URL_ENV", "RabbitMQServer", "amqp_handshake"]

RABBITMQ_URL_ENV = "TENFOLD_TEST_RABBITMQ_URL"
# Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to the
# `rabbitmq` user and its home; the real start script lives here.
_RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_METHOD = 1
_CONNECTION_START = b"\x00\x0a\x00\x0a"  # class 10 (connection), method 10 (start)
_node_numbers = itertools.count(1)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the broker closed the connection during the handshake")
        data += chunk
    return data


def amqp_handshake(host: str, port: int, *, timeout: float = 5) -> None:
    """Send the AMQP 0-9-1 protocol header and read the broker's ``Connection.Start``.

    Raises ``ConnectionRefusedError`` when nothing listens, ``TimeoutError``
    when the broker does not answer within *timeout* (it is paused, say), and
    ``ConnectionError`` or ``HarnessError`` for any other reply.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_PROTOCOL_HEADER)
        # A frame header is type (1 byte), channel (2), payload size (4); the
        # payload of a method frame starts with its class and method ids.
        header = _recv_exactly(sock, 7)
        if header[0] != _FRAME_METHOD or _recv_exactly(sock, 4) != _CONNECTION_START:
            raise HarnessError(f"{host}:{port} did not answer with AMQP 0-9-1 Connection.Start")


class RabbitMQServer:
    """One RabbitMQ broker. Harness-owned ones can be stopped, killed, paused and restarted."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        url: str | None = None,
        process: ServerProcess | None = None,
        dist_port: int | None = None,
        node: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        #: The Erlang node name of a harness-owned broker (``tenfold-<pid>-<n>@localhost``).
        self.node = node
        self.url = url or f"amqp://guest:guest@{host}:{port}//"
        self.process = process
        self.dist_port = dist_port

    def __repr__(self) -> str:
        kind = "managed" if self.managed else "external"
        return f"<RabbitMQServer {self.host}:{self.port} {kind}>"

    @property
    def managed(self) -> bool:
        return self.process is not None

    @classmethod
    def launch(cls, workdir: Path, *, name: str = "rabbitmq") -> RabbitMQServer:
        """Start a RabbitMQ node of our own in *workdir*/name and wait until it speaks AMQP."""
        binary = find_binary("rabbitmq-server", prefer=[_RABBITMQ_BIN])
        port, dist_port = allocate_port(), allocate_port()
        home = workdir / name
        home.mkdir()
        node = f"tenfold-{os.getpid()}-{next(_node_numbers)}@localhost"
        env = _node_environment(home, node=node, port=port, dist_port=dist_port)
        # "-noinput" goes to erl: with RABBITMQ_ALLOW_INPUT set, the start
        # script execs the VM instead of waiting on it as a background job,
        # so our child is beam.smp itself. That keeps PR_SET_PDEATHSIG on the
        # node (a forked child would lose it) and SIGTERM reaching it directly.
        process = ServerProcess(
            [binary, "-noinput"], name=name, log_path=workdir / f"{name}.log", cwd=home, env=env
        )
        server = cls(host="127.0.0.1", port=port, process=process, dist_port=dist_port, node=node)
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def handshake(self, timeout: float = 5) -> None:
        """Connect and complete the AMQP protocol-header exchange (see ``amqp_handshake``)."""
        amqp_handshake(self.host, self.port, timeout=timeout)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> *args`` against this node and return its output.

        For example ``ctl("list_queues", "name", "messages")`` or
        ``ctl("close_all_connections", "test")``.
        """
        proc = self._proc("run rabbitmqctl on")
        binary = find_binary("rabbitmqctl", prefer=[_RABBITMQ_BIN])
        return run_tool(
            [binary, "-q", "-n", str(self.node), *args], timeout=timeout, cwd=proc.cwd, env=proc.env
        )

    def _proc(self, action: str) -> ServerProcess:
        if self.process is None:
            raise NotManaged(
                f"cannot {action} RabbitMQ at {self.host}:{self.port}: it is an external "
                f"broker ({RABBITMQ_URL_ENV}), not one the harness started"
            )
        return self.process

    def is_running(self) -> bool:
        return self.process is None or self.process.is_running()

    def _ready(self) -> bool:
        if self.process is not None and not self.process.is_running():
            raise HarnessError(f"rabbitmq on port {self.port} exited:\n{self.process.log_tail()}")
        try:
            self.handshake(timeout=1)
        except (OSError, HarnessError):
            return False
        return True

    def start(self, timeout: float = 90) -> None:
        """Start on the same port and data dir (no-op if running) and wait for AMQP."""
        proc = self._proc("start")
        if proc.paused:
            proc.resume()
        proc.start()
        poll_until(self._ready, timeout=timeout, what=f"rabbitmq on port {self.port}")

    def stop(self, timeout: float = 30) -> None:
        """Shut the node down cleanly (SIGTERM); it is SIGKILLed after *timeout*."""
        self._proc("stop").terminate(signal.SIGTERM, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the node's whole process tree, as a crash would."""
        self._proc("kill").kill()

    def restart(self, timeout: float = 90) -> None:
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP the node's process tree: connections and handshakes hang until ``resume()``."""
        self._proc("pause").pause()

    def resume(self) -> None:
        self._proc("resume").resume()

    @property
    def needs_heal(self) -> bool:
        """Whether a break-helper left the node paused or stopped."""
        proc = self.process
        return proc is not None and (proc.paused or not proc.is_running())

    def heal(self) -> None:
        """Undo pause()/stop()/kill()."""
        if self.needs_heal:
            self.start()

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            release_port(self.port)
            if self.dist_port is not None:
                release_port(self.dist_port)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RabbitMQServer | None:
        """The external broker named by ``TENFOLD_TEST_RABBITMQ_URL``, or ``None`` if unset."""
        environ = os.environ if environ is None else environ
        url = environ.get(RABBITMQ_URL_ENV)
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise HarnessError(f"{RABBITMQ_URL_ENV} wants an amqp://host:port/ URL, not {url!r}")
        return cls(host=parts.hostname, port=parts.port or 5672, url=url)


def _node_environment(home: Path, *, node: str, port: int, dist_port: int) -> dict[str, str]:
    """The environment of a node whose every file and port is its own."""
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n"
    )
    (home / "enabled_plugins").write_text("[].\n")
    # An empty env file shadows the system's /etc/rabbitmq/rabbitmq-env.conf.
    (home / "rabbitmq-env.conf").write_text("")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
        # Erlang reads the cookie from $HOME; rabbitmqctl run with the same
        # HOME agrees with the node.
        "HOME": str(home),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout, which is the harness's log file
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_ALLOW_INPUT": "1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
