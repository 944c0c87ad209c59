"""Redis: a standalone server and a three-master cluster, harness-owned or external."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import redis
import redis.cluster

from tenfold.testing._binaries import find_binary
from tenfold.testing._errors import HarnessError, NotManaged
from tenfold.testing._ports import CLUSTER_BUS_OFFSET, allocate_port, release_port
from tenfold.testing._process import ServerProcess, poll_until, run_tool

__all__ = ["REDIS_CLUSTER_ENV", "REDIS_URL_ENV", "RedisCluster", "RedisServer"]

REDIS_URL_ENV = "TENFOLD_TEST_REDIS_URL"
REDIS_CLUSTER_ENV = "TENFOLD_TEST_REDIS_CLUSTER"


class RedisServer:
    """One Redis server. Harness-owned ones can be stopped, killed, paused and restarted."""

    def __init__(
        self, *, host: str, port: int, url: str | None = None, process: ServerProcess | None = None
    ) -> None:
        self.host, self.port = host, port
        self.url = url or f"redis://{host}:{port}/0"
        self.process = process
        self.cluster_bus = False
        self._pause_until = 0.0  # monotonic deadline of our last CLIENT PAUSE

    def __repr__(self) -> str:
        kind = "managed" if self.managed else "external"
        return f"<RedisServer {self.host}:{self.port} {kind}>"

    @classmethod
    def launch(cls, workdir: Path, *, name: str = "redis", cluster: bool = False) -> RedisServer:
        """Start a redis-server (a cluster-enabled node with ``cluster=True``) in *workdir*/name."""
        binary = find_binary("redis-server")
        port = allocate_port(cluster_bus=cluster)
        datadir = workdir / name
        datadir.mkdir()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", datadir]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
        if cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-node-timeout", "2000"]
        process = ServerProcess(argv, name=name, log_path=workdir / f"{name}.log", cwd=datadir)
        server = cls(host="127.0.0.1", port=port, process=process)
        server.cluster_bus = cluster
        server.start()
        return server

    @property
    def managed(self) -> bool:
        return self.process is not None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new sync redis-py client for this server (close it when done)."""
        return redis.Redis.from_url(self.url, **kwargs)

    def command(self, *args: Any, timeout: float = 5) -> Any:
        """Run one command on a short-lived connection and return the reply."""
        with self.client(socket_timeout=timeout, socket_connect_timeout=timeout) as conn:
            return conn.execute_command(*args)

    def _proc(self, action: str) -> ServerProcess:
        if self.process is None:
            raise NotManaged(
                f"cannot {action} Redis at {self.host}:{self.port}: it is an external server "
                f"({REDIS_URL_ENV}/{REDIS_CLUSTER_ENV}), not one the harness started"
            )
        return self.process

    def is_running(self) -> bool:
        return self.process is None or self.process.is_running()

    def _ping(self) -> bool:
        if self.process is not None and not self.process.is_running():
            raise HarnessError(f"redis on port {self.port} exited:\n{self.process.log_tail()}")
        try:
            with self.client(socket_connect_timeout=1, socket_timeout=1) as conn:
                return bool(conn.ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 10) -> None:
        """Start on the same port and dir (no-op if running) and wait for PING."""
        proc = self._proc("start")
        if proc.paused:
            proc.resume()
        proc.start()
        poll_until(self._ping, timeout=timeout, what=f"redis on port {self.port}")

    def stop(self, timeout: float = 10) -> None:
        """Shut down cleanly (SIGTERM; nothing is saved)."""
        self._proc("stop").terminate(signal.SIGTERM, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the server."""
        self._proc("kill").kill()

    def restart(self, timeout: float = 10) -> None:
        self.stop(timeout)
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP the server: clients hang until ``resume()``."""
        self._proc("pause").pause()

    def resume(self) -> None:
        self._proc("resume").resume()

    def client_pause(self, ms: int, mode: Literal["all", "write"] = "all") -> None:
        """``CLIENT PAUSE ms MODE``: hold every client command (or only writes) for *ms* ms."""
        self.command("CLIENT", "PAUSE", ms, mode.upper())
        self._pause_until = time.monotonic() + ms / 1000

    def client_unpause(self) -> None:
        """End a ``client_pause()``.

        Redis 7 holds even ``CLIENT UNPAUSE`` while ALL commands are paused, so
        after a pause of ALL this returns only when the pause has run out.
        """
        remaining = max(0.0, self._pause_until - time.monotonic())
        self.command("CLIENT", "UNPAUSE", timeout=remaining + 5)
        self._pause_until = 0.0

    def flushall(self) -> None:
        self.command("FLUSHALL")

    @property
    def _client_paused(self) -> bool:
        return self._pause_until > 0

    @property
    def needs_heal(self) -> bool:
        """Whether a break-helper left the server paused, stopped or client-paused."""
        proc = self.process
        return self._client_paused or (proc is not None and (proc.paused or not proc.is_running()))

    def heal(self) -> None:
        """Undo pause()/stop()/kill()/client_pause()."""
        proc = self.process
        if proc is not None and (proc.paused or not proc.is_running()):
            self.start()
        if self._client_paused:
            self.client_unpause()

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            release_port(self.port)
            if self.cluster_bus:
                release_port(self.port + CLUSTER_BUS_OFFSET)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedisServer | None:
        """The external server named by ``TENFOLD_TEST_REDIS_URL``, or ``None`` if unset."""
        environ = os.environ if environ is None else environ
        url = environ.get(REDIS_URL_ENV)
        if not url:
            return None
        kwargs = redis.connection.parse_url(url)
        return cls(host=kwargs.get("host", "127.0.0.1"), port=kwargs.get("port", 6379), url=url)


class RedisCluster:
    """A Redis Cluster of masters (no replicas), harness-owned or external."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    def __repr__(self) -> str:
        return f"<RedisCluster {', '.join(self.startup_nodes)}>"

    @property
    def startup_nodes(self) -> list[str]:
        return [f"{n.host}:{n.port}" for n in self.nodes]

    @property
    def url(self) -> str:
        """URL of the first node; cluster clients discover the rest from it."""
        return self.nodes[0].url

    @property
    def managed(self) -> bool:
        return all(n.managed for n in self.nodes)

    @classmethod
    def launch(cls, workdir: Path, *, masters: int = 3) -> RedisCluster:
        """Start *masters* cluster-enabled nodes, join them, and wait for ``cluster_state:ok``."""
        cli = find_binary("redis-cli")
        cluster = cls([])
        try:
            for i in range(masters):
                cluster.nodes.append(
                    RedisServer.launch(workdir, name=f"redis-node{i}", cluster=True)
                )
            run_tool([cli, "--cluster", "create", *cluster.startup_nodes, "--cluster-yes"])
            cluster.wait_ok()
        except BaseException:
            cluster.close()
            raise
        return cluster

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedisCluster | None:
        """The external nodes in ``TENFOLD_TEST_REDIS_CLUSTER`` (host:port,...), or ``None``."""
        environ = os.environ if environ is None else environ
        raw = environ.get(REDIS_CLUSTER_ENV)
        if not raw:
            return None
        nodes = []
        for item in raw.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise HarnessError(f"{REDIS_CLUSTER_ENV} wants host:port,... not {raw!r}")
            nodes.append(RedisServer(host=host, port=int(port)))
        return cls(nodes)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A new sync cluster client (close it when done)."""
        return redis.cluster.RedisCluster.from_url(self.url, **kwargs)

    def _node_ok(self, node: RedisServer) -> bool:
        try:
            info = node.command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text and f"cluster_known_nodes:{len(self.nodes)}" in text

    def wait_ok(self, timeout: float = 20) -> None:
        """Block until every node reports ``cluster_state:ok`` and knows all the others."""
        poll_until(
            lambda: all(self._node_ok(n) for n in self.nodes),
            timeout=timeout,
            what="cluster_state:ok on every Redis Cluster node",
        )

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()

    def heal(self) -> None:
        """Heal every node, then wait until the cluster is ok again."""
        broken = [n for n in self.nodes if n.needs_heal]
        for node in broken:
            node.heal()
        if broken:
            self.wait_ok()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
