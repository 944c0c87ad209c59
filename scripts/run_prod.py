"""`make run-prod`: a tenfold app in its production profile, on this one machine.

From the installed server binaries, on 127.0.0.1 only, with every byte of
state under ``var/prod/`` (``RUN_PROD_DIR``), it brings up in this order:

1. PostgreSQL primary (``pg-primary``) and a streaming hot-standby replica
   (``pg-replica``), created once (initdb, pg_basebackup) and reused after;
2. Redis (``redis``, append-only file in the run directory);
3. one Celery worker (``worker``: ``tenfold worker``), if the app has jobs;
4. two API processes (``api-1``, ``api-2``: ``tenfold run``);
5. nginx (``nginx``) in front, balancing the two API processes.

The app is configured by environment variables only (``TENFOLD_*``; the
launcher's own values win over the caller's, other ``TENFOLD_*`` variables
pass through). Each part logs to ``<dir>/logs/<part>.log``. SIGINT (Ctrl-C) or
SIGTERM stops everything in reverse order and exits 0; a part that fails to
start, or exits while running, stops the others and exits 1 naming the part
and its log.

Settings of the launcher (environment): ``APP`` (or ``--app``; default
``apps.tourney.main:make_app``), ``RUN_PROD_DIR`` (``var/prod``),
``RUN_PROD_PORT`` (nginx, 8080), ``RUN_PROD_API_PORTS`` (``8001,8002``),
``RUN_PROD_PG_PORT`` (15432), ``RUN_PROD_PG_REPLICA_PORT`` (15433),
``RUN_PROD_REDIS_PORT`` (16379), ``RUN_PROD_WORKER_CONCURRENCY`` (the
worker's pool processes; default: Celery's, one per CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from tenfold.testing import HarnessError, MissingBinary
from tenfold.testing._binaries import find_binary, find_pg_bindir
from tenfold.testing._process import ServerProcess, chown, run_tool, server_user

REPO = Path(__file__).resolve().parents[1]
DEFAULT_APP = "apps.tourney.main:make_app"
DATABASE = "tenfold"
REPLICATION_SLOT = "tenfold_replica"
START_TIMEOUT = float(os.environ.get("RUN_PROD_START_TIMEOUT", "60"))

_PRIMARY_CONF = """
# --- written once by scripts/run_prod.py ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = '1s'
wal_retrieve_retry_interval = '1s'
"""

_HBA = """\
# Loopback only: the one-machine profile's servers are reachable from this host alone.
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""

# docs/deploy.md's nginx recipe with docs/realtime.md's WebSocket and SSE locations; the
# upstream keep-alive is 4 s, below any app keep-alive (uvicorn's 5 s default included).
_NGINX_CONF = """\
# Written by scripts/run_prod.py on every start; edits are lost.
{user}worker_processes 2;
# Each proxied WebSocket holds two connections (client and upstream): 10,000 viewers over
# the two API processes need ~20,000 across the workers, with room for an uneven split.
worker_rlimit_nofile 65536;
pid {dir}/nginx.pid;
error_log {logs}/nginx.log warn;

events {{
    worker_connections 32768;
}}

http {{
    log_format upstream '$remote_addr [$time_local] "$request" $status '
                        'upstream=$upstream_addr upstream_time=$upstream_response_time';
    access_log {logs}/nginx-access.log upstream;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server_tokens off;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream tenfold {{
{servers}
        keepalive 32;
        keepalive_timeout 4s;         # shorter than the app's keep-alive: nginx closes first
        keepalive_requests 10000;
    }}

    server {{
        listen 127.0.0.1:{port};

        client_header_timeout 10s;
        client_body_timeout 10s;
        send_timeout 10s;
        keepalive_timeout 30s;
        client_max_body_size 10m;
        large_client_header_buffers 4 8k;

        location / {{
            proxy_pass http://tenfold;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}

        location /realtime {{
            proxy_pass http://tenfold;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 75s;   # above the 25 s client ping and the 60 s idle timeout
            proxy_send_timeout 75s;
        }}

        location /realtime/sse {{
            proxy_pass http://tenfold;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


class StartFailure(Exception):
    """A part did not come up (or went away); names the part and its log."""

    def __init__(self, part: str, log: Path | None, detail: str) -> None:
        super().__init__(detail)
        self.part, self.log, self.detail = part, log, detail


class Stop(BaseException):
    """SIGINT or SIGTERM arrived: stop everything."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"run-prod: {name}={raw!r} is not a number") from None


@dataclass
class Config:
    app: str
    dir: Path
    port: int
    api_ports: list[int]
    pg_port: int
    replica_port: int
    redis_port: int
    worker_concurrency: int | None

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @classmethod
    def from_env(cls, argv: list[str]) -> Config:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--app", default=os.environ.get("APP") or DEFAULT_APP)
        args = parser.parse_args(argv)
        api_raw = os.environ.get("RUN_PROD_API_PORTS") or "8001,8002"
        try:
            api_ports = [int(p) for p in api_raw.split(",") if p.strip()]
        except ValueError:
            raise SystemExit(
                f"run-prod: RUN_PROD_API_PORTS={api_raw!r} is not 'PORT,PORT'"
            ) from None
        if len(api_ports) < 1:
            raise SystemExit("run-prod: RUN_PROD_API_PORTS names no port")
        concurrency = os.environ.get("RUN_PROD_WORKER_CONCURRENCY")
        return cls(
            app=args.app,
            dir=Path(os.environ.get("RUN_PROD_DIR") or REPO / "var" / "prod").resolve(),
            port=_env_int("RUN_PROD_PORT", 8080),
            api_ports=api_ports,
            pg_port=_env_int("RUN_PROD_PG_PORT", 15432),
            replica_port=_env_int("RUN_PROD_PG_REPLICA_PORT", 15433),
            redis_port=_env_int("RUN_PROD_REDIS_PORT", 16379),
            worker_concurrency=int(concurrency) if concurrency else None,
        )

    def ports(self) -> dict[str, int]:
        named = {
            "nginx (RUN_PROD_PORT)": self.port,
            "PostgreSQL primary (RUN_PROD_PG_PORT)": self.pg_port,
            "PostgreSQL replica (RUN_PROD_PG_REPLICA_PORT)": self.replica_port,
            "Redis (RUN_PROD_REDIS_PORT)": self.redis_port,
        }
        for i, port in enumerate(self.api_ports, 1):
            named[f"API {i} (RUN_PROD_API_PORTS)"] = port
        return named


@dataclass
class Part:
    """One started process and how to stop it."""

    name: str
    process: ServerProcess
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    #: Where this start's lines begin in the log (earlier runs append to the same file).
    log_offset: int = 0

    def log_text(self) -> bytes:
        with self.log.open("rb") as log:
            log.seek(self.log_offset)
            return log.read()

    @property
    def log(self) -> Path:
        return self.process.log_path


@dataclass
class Launcher:
    config: Config
    parts: list[Part] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    say: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    # --- helpers -------------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.config.logs / f"{name}.log"

    def _spawn(
        self,
        name: str,
        argv: list[str | os.PathLike[str]],
        *,
        user: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 30.0,
    ) -> Part:
        log = self._log(name)
        with log.open("ab") as out:
            out.write(f"\n--- run-prod: starting {name} at {time.ctime()} ---\n".encode())
            offset = out.tell()
        process = ServerProcess(argv, name=name, log_path=log, user=user, cwd=cwd, env=env)
        part = Part(name, process, stop_signal, stop_timeout, offset)
        # Listed before it starts: a signal arriving meanwhile still stops it.
        self.parts.append(part)
        process.start()
        return part

    def _wait(self, part: Part, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not part.process.is_running():
                raise StartFailure(part.name, part.log, f"{part.name} exited while starting")
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                raise StartFailure(part.name, part.log, f"{what} not within {START_TIMEOUT:g} s")
            time.sleep(0.1)  # sync-ok: a start-up poll in a command-line script

    def _tool(self, part: str, argv: list[str | os.PathLike[str]], **kwargs: object) -> str:
        """A short-lived tool whose failure is the failure of ``part``."""
        try:
            return run_tool(argv, **kwargs)  # type: ignore[arg-type]
        except HarnessError as exc:
            log = self._log(part)
            with log.open("a") as out:
                out.write(f"{exc}\n")
            raise StartFailure(part, log, str(exc)) from None

    def _tenfold(self, *args: str) -> list[str | os.PathLike[str]]:
        return [Path(sys.executable).with_name("tenfold"), "--app", self.config.app, *args]

    # --- checks before anything starts ---------------------------------------------------

    def preflight(self) -> None:
        taken = [f"{name} {port}" for name, port in self.config.ports().items() if _in_use(port)]
        if taken:
            raise StartFailure(
                "ports",
                None,
                "ports in use on 127.0.0.1: "
                + ", ".join(taken)
                + "; stop what holds them or choose others",
            )
        ports = list(self.config.ports().values())
        if len(set(ports)) != len(ports):
            raise StartFailure("ports", None, f"two parts were given the same port: {ports}")
        self.config.logs.mkdir(parents=True, exist_ok=True)
        self.config.dir.chmod(0o755)
        user = server_user()
        if user is not None:
            # PostgreSQL runs as `user`: every directory above its data must let it through.
            try:
                run_tool(["test", "-x", self.config.dir], user=user)
            except HarnessError:
                raise StartFailure(
                    "pg-primary",
                    None,
                    f"the user {user!r} (PostgreSQL runs as it, being root) cannot reach "
                    f"{self.config.dir}: choose a RUN_PROD_DIR whose parents it can enter",
                ) from None

    # --- the parts -----------------------------------------------------------------------

    def start_postgres(self) -> None:
        bindir, user = find_pg_bindir(), server_user()
        primary_dir, replica_dir = self.config.dir / "pg-primary", self.config.dir / "pg-replica"
        # Each directory is made beside its final name and renamed when complete, so an
        # interrupted first run leaves none that looks ready.
        new_cluster = not primary_dir.exists()
        if new_cluster:
            self._initdb(bindir, primary_dir, user)
        primary = self._spawn(
            "pg-primary",
            [bindir / "postgres", "-D", primary_dir, "-p", str(self.config.pg_port)],
            user=user,
            cwd=self.config.dir,
            stop_signal=signal.SIGINT,  # fast shutdown: a clean checkpoint, sessions ended
            stop_timeout=60,
        )
        self._wait(
            primary,
            lambda: self._psql(self.config.pg_port, "SELECT 1") == "1",
            f"PostgreSQL on port {self.config.pg_port}",
        )
        exists = self._psql(
            self.config.pg_port, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        )
        if exists != "1":
            self._psql(self.config.pg_port, f'CREATE DATABASE "{DATABASE}"')

        if new_cluster or not replica_dir.exists():
            self._basebackup(bindir, replica_dir, user)
        conninfo = (
            f"host=127.0.0.1 port={self.config.pg_port} user=postgres "
            f"application_name={REPLICATION_SLOT}"
        )
        replica = self._spawn(
            "pg-replica",
            [
                bindir / "postgres",
                "-D",
                replica_dir,
                "-p",
                str(self.config.replica_port),
                "-c",
                f"primary_conninfo={conninfo}",
            ],
            user=user,
            cwd=self.config.dir,
            stop_signal=signal.SIGINT,
            stop_timeout=60,
        )
        lsn = self._psql(self.config.pg_port, "SELECT pg_current_wal_lsn()")
        self._wait(
            replica,
            lambda: (
                self._psql(
                    self.config.replica_port,
                    f"SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '{lsn}'",
                )
                == "t"
            ),
            f"the replica on port {self.config.replica_port} to stream from the primary",
        )

    def _psql(self, port: int, sql: str) -> str:
        psql = find_pg_bindir() / "psql"
        argv = [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
        return run_tool([*argv, "-XAtqc", sql], timeout=10).strip()

    def _fresh_dir(self, path: Path, user: str | None) -> Path:
        """An empty ``<path>.new`` owned by ``user``, which becomes ``path`` when complete."""
        for old in (path, path.with_name(path.name + ".new")):
            if old.exists():  # a replica of an earlier primary, a half-made directory
                shutil.rmtree(old)
        made = path.with_name(path.name + ".new")
        made.mkdir(mode=0o700)
        chown(made, user)
        return made

    def _initdb(self, bindir: Path, datadir: Path, user: str | None) -> None:
        self.say(f"run-prod: creating the PostgreSQL cluster in {datadir}")
        final, datadir = datadir, self._fresh_dir(datadir, user)
        argv = [bindir / "initdb", "-D", datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        self._tool(
            "pg-primary", [*argv, "--locale=C", "--no-instructions"], user=user, cwd=self.config.dir
        )
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write(_PRIMARY_CONF)
        (datadir / "pg_hba.conf").write_text(_HBA)
        datadir.rename(final)

    def _basebackup(self, bindir: Path, datadir: Path, user: str | None) -> None:
        self.say(f"run-prod: cloning the replica into {datadir}")
        final, datadir = datadir, self._fresh_dir(datadir, user)
        slot = self._psql(
            self.config.pg_port,
            f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{REPLICATION_SLOT}'",
        )
        if slot == "1":  # left by a replica whose directory was removed
            self._psql(
                self.config.pg_port, f"SELECT pg_drop_replication_slot('{REPLICATION_SLOT}')"
            )
        argv = [bindir / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.config.pg_port)]
        argv += ["-U", "postgres", "-D", datadir, "-R", "-X", "stream", "-C"]
        argv += ["-S", REPLICATION_SLOT, "--checkpoint=fast"]
        self._tool("pg-replica", argv, user=user, cwd=self.config.dir, timeout=300)
        datadir.rename(final)

    def start_redis(self) -> None:
        datadir = self.config.dir / "redis"
        datadir.mkdir(exist_ok=True)
        argv: list[str | os.PathLike[str]] = [
            find_binary("redis-server"), "--bind", "127.0.0.1", "--port",
            str(self.config.redis_port), "--dir", datadir, "--save", "", "--appendonly", "yes",
            "--appendfsync", "everysec", "--daemonize", "no", "--logfile", "",
        ]  # fmt: skip
        part = self._spawn("redis", argv, cwd=datadir)
        self._wait(part, lambda: _redis_ping(self.config.redis_port), "Redis answering PING")

    def app_env(self) -> dict[str, str]:
        """The app's environment: the caller's, with the launcher's TENFOLD_* on top."""
        cfg = self.config
        secret_file = cfg.dir / "cursor-secret"
        if not secret_file.exists():
            secret_file.touch(mode=0o600)
            secret_file.write_text(secrets.token_urlsafe(32))
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{{}}/{DATABASE}"
        env = dict(os.environ)
        env.update(
            {
                "TENFOLD_APP__ENVIRONMENT": "production",
                "TENFOLD_APP__VAR_DIR": str(cfg.dir / "app"),
                "TENFOLD_DB__URL": url.format(cfg.pg_port),
                "TENFOLD_DB__REPLICAS": json.dumps([url.format(cfg.replica_port)]),
                "TENFOLD_DB__CURSOR_SECRET": secret_file.read_text().strip(),
                "TENFOLD_REDIS__URL": f"redis://127.0.0.1:{cfg.redis_port}/0",
                "TENFOLD_JOBS__BROKER": "redis",
                "TENFOLD_HTTP__TRUSTED_PROXIES": "127.0.0.1",
                "TENFOLD_HOST": "127.0.0.1",
                # Log lines reach logs/<part>.log as they happen, not a buffer-full later.
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def prepare_app(self) -> tuple[bool, bool]:
        """Whether the app has background jobs (a worker) and tenfold.auth; runs migrations
        and makes the signing key file when they apply."""
        self.env = self.app_env()
        out = self._tool("app", [*self._tenfold("--help")], env=self.env, cwd=REPO, timeout=60)
        commands = {
            line.split()[0]
            for line in out.split("Commands:", 1)[-1].splitlines()
            if line.startswith("  ") and line.strip()
        }
        has_jobs, has_auth = "worker" in commands, "auth" in commands
        if has_jobs:
            # One process follows the event log for the projections, not every API process
            # (each would repeat every catch-up); a caller's own choice wins.
            self.env.setdefault("TENFOLD_EVENTS__PROJECTIONS_IN", "worker")
        if has_auth:
            keys = self.config.dir / "auth-keys.json"
            if not keys.exists():
                self._tool(
                    "auth-keys",
                    self._tenfold("auth", "keys", "new", "--file", str(keys)),
                    env=self.env,
                    cwd=REPO,
                    timeout=60,
                )
            self.env["TENFOLD_AUTH__KEYS_FILE"] = str(keys)
        migrations = REPO / self.env.get("TENFOLD_DB__MIGRATIONS_DIR", "migrations")
        if (migrations / "env.py").exists():
            self.say(f"run-prod: tenfold db upgrade ({migrations})")
            self._tool(
                "migrations", self._tenfold("db", "upgrade"), env=self.env, cwd=REPO, timeout=300
            )
        return has_jobs, has_auth

    def start_worker(self) -> None:
        argv = self._tenfold("worker", "--loglevel", "INFO")
        if self.config.worker_concurrency:
            argv += ["--concurrency", str(self.config.worker_concurrency)]
        part = self._spawn("worker", argv, cwd=REPO, env=self.env, stop_timeout=60)
        self._wait(part, lambda: b" ready." in part.log_text(), "the worker's 'ready.'")

    def start_apis(self) -> None:
        # One after the other: an app that creates its tables at startup must not race itself.
        for i, port in enumerate(self.config.api_ports, 1):
            argv = self._tenfold("run", "--host", "127.0.0.1", "--port", str(port))
            part = self._spawn(f"api-{i}", argv, cwd=REPO, env=self.env, stop_timeout=40)
            self._wait(
                part,
                lambda port=port: _get(port, "/ready") == 200,
                f"GET http://127.0.0.1:{port}/ready answering 200",
            )

    def start_nginx(self) -> None:
        nginx = find_binary("nginx")
        ngx_dir = self.config.dir / "nginx"
        (ngx_dir / "tmp").mkdir(parents=True, exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            name = "www-data" if _user_exists("www-data") else "nobody"
            user = f"user {name};\n"
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in self.config.api_ports)
        conf = ngx_dir / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                user=user,
                dir=ngx_dir,
                logs=self.config.logs,
                servers=servers,
                port=self.config.port,
            )
        )
        argv: list[str | os.PathLike[str]] = [
            nginx,
            "-p",
            ngx_dir,
            "-c",
            conf,
            "-e",
            self._log("nginx"),
            "-g",
            "daemon off;",
        ]
        part = self._spawn("nginx", argv, cwd=ngx_dir, stop_signal=signal.SIGQUIT, stop_timeout=15)
        self._wait(
            part,
            lambda: _get(self.config.port, "/ready") == 200,
            f"GET http://127.0.0.1:{self.config.port}/ready through nginx answering 200",
        )

    # --- the whole run -------------------------------------------------------------------

    def start(self) -> None:
        self.preflight()
        self.start_postgres()
        self.start_redis()
        has_jobs, _ = self.prepare_app()
        if has_jobs:
            self.start_worker()
        else:
            self.say("run-prod: the app has no background jobs (no `tenfold worker`): no worker")
        self.start_apis()
        self.start_nginx()

    def watch(self) -> None:
        """Until a signal: a part that exits on its own ends the run."""
        while True:
            for part in self.parts:
                if not part.process.is_running():
                    code = part.process._proc.returncode if part.process._proc else None
                    raise StartFailure(part.name, part.log, f"{part.name} exited (status {code})")
            time.sleep(0.5)  # sync-ok: the launcher's idle loop

    def stop(self) -> None:
        """Everything started, in reverse order; the API processes together."""
        remaining = list(reversed(self.parts))
        while remaining:
            group = [remaining.pop(0)]
            while (
                remaining
                and group[0].name.startswith("api-")
                and remaining[0].name.startswith("api-")
            ):
                group.append(remaining.pop(0))
            trees = {}
            for part in group:
                trees[part.name] = part.process.tree()
                if trees[part.name]:
                    self.say(f"run-prod: stopping {part.name}")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(trees[part.name][0], part.stop_signal)
            for part in group:
                self._reap(part, trees[part.name])

    def _reap(self, part: Part, tree: list[int]) -> None:
        proc = part.process._proc
        if proc is None:
            return
        try:
            proc.wait(part.stop_timeout)
        except subprocess.TimeoutExpired:
            self.say(f"run-prod: {part.name} did not stop in {part.stop_timeout:g} s; killing it")
            part.process.kill()
        # Children that outlived their parent (a pool process, a backend) go too.
        for pid in tree[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:  # nosec B310  # a fixed loopback http URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    config = Config.from_env(sys.argv[1:] if argv is None else argv)
    launcher = Launcher(config)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return  # already on the way down; a second Ctrl-C must not cut teardown short
        stopping = True
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code, failure = 0, ""
    try:
        launcher.start()
        api = ", ".join(f"http://127.0.0.1:{p}" for p in config.api_ports)
        launcher.say(
            f"run-prod: {config.app} is serving on http://127.0.0.1:{config.port}\n"
            f"run-prod: API processes {api}; PostgreSQL 127.0.0.1:{config.pg_port} (replica "
            f"{config.replica_port}), Redis 127.0.0.1:{config.redis_port}\n"
            f"run-prod: logs in {config.logs}; Ctrl-C stops everything"
        )
        launcher.watch()
    except Stop as exc:
        launcher.say(f"run-prod: {exc}: stopping")
    except StartFailure as exc:
        where = f"; see {exc.log}" if exc.log is not None else ""
        failure, code = f"run-prod: FAILED: {exc.part}: {exc.detail}{where}", 1
    except MissingBinary as exc:
        failure, code = f"run-prod: FAILED: {exc}", 1
    finally:
        stopping = True
        if failure:
            print(failure, file=sys.stderr, flush=True)
        launcher.stop()
    if failure:  # again, below the teardown's lines
        print(failure, file=sys.stderr, flush=True)
    else:
        launcher.say("run-prod: stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
