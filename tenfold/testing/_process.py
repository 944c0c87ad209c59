"""Server processes the harness owns, and making sure none outlives the session.

Three layers stop orphans: fixtures stop their servers in finalizers (which
pytest also runs on Ctrl-C), an ``atexit`` hook kills whatever is left, and
servers started from the main thread get ``PR_SET_PDEATHSIG`` so the kernel
kills them even when pytest itself is SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tenfold.testing._errors import HarnessError

__all__ = ["ServerProcess", "make_workdir", "poll_until", "run_tool", "server_user"]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_live: set[ServerProcess] = set()


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def server_user() -> str | None:
    """The OS user to run servers as: ``postgres`` when we are root, else ourselves.

    initdb and pgbouncer refuse to run as root, so as root everything the
    harness starts for PostgreSQL runs as ``postgres`` (or ``nobody``).
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise HarnessError("running as root, but there is no 'postgres' or 'nobody' user to run as")


def chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


_WORKDIR_PREFIX = "tenfold-test-"
_OWNER_FILE = "owner.pid"


def _remove_orphaned_workdirs() -> None:
    # A SIGKILLed pytest leaves its temp dir behind (its servers die with it).
    for path in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        try:
            owner = int((path / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a workdir, or one still being set up
        if not _alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def make_workdir() -> Path:
    """Create the session's temp dir, owned by the server user."""
    _remove_orphaned_workdirs()
    path = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    chown(path, server_user())
    return path


def _user_kwargs(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    # extra_groups=[] drops root's supplementary groups too.
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    user: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a short-lived tool and return its stdout; raise ``HarnessError`` on failure."""
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=cwd or tempfile.gettempdir(),
            env=env,
            check=False,
            **_user_kwargs(user),  # type: ignore[arg-type]
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{argv[0]} did not finish within {timeout}s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise HarnessError(f"{Path(argv[0]).name} exited {done.returncode}: {detail}")
    return done.stdout


def poll_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Call *check* every 50 ms until it returns true; raise ``TimeoutError`` after *timeout*."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # sync-ok: bounded poll in a sync fixture helper


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # the process exited while we looked
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ServerProcess:
    """One long-running server binary: start, signal its process tree, stop, kill.

    The whole tree matters because PostgreSQL backends call ``setsid()``: a
    signal to the postmaster's process group would miss them.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        log_path: Path,
        user: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.name = name
        self.log_path = log_path
        self.user = user
        self.cwd = cwd or log_path.parent
        self.env = dict(env) if env is not None else None
        self.paused = False
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} pid={self.pid} running={self.is_running()}>"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.is_running():
            return
        in_main = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked dies, so only
                # the main thread (which lives as long as pytest) may use it.
                preexec_fn=_die_with_parent if in_main else None,
                **_user_kwargs(self.user),  # type: ignore[arg-type]
            )
        self.paused = False
        _live.add(self)

    def tree(self) -> list[int]:
        """The server's pid followed by all its descendants' pids."""
        if not self.is_running():
            return []
        assert self.pid is not None
        children, found, todo = _children_by_parent(), [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def signal_tree(self, sig: int) -> None:
        for pid in self.tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pause(self) -> None:
        """Freeze the server and all its children (SIGSTOP)."""
        self.signal_tree(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """Thaw the server after ``pause()`` (SIGCONT)."""
        self.signal_tree(signal.SIGCONT)
        self.paused = False

    def terminate(self, sig: int = signal.SIGTERM, *, timeout: float = 30) -> None:
        """Ask the server to exit with *sig*; kill it if it has not within *timeout*."""
        if not self.is_running():
            return
        assert self._proc is not None
        if self.paused:
            self.resume()  # a stopped process would not act on the signal
        self._proc.send_signal(sig)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the whole tree at once, as a machine crash would, and reap it."""
        pids = self.tree()
        if not pids:
            return
        # Freeze first so the postmaster cannot react to dying children.
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        assert self._proc is not None
        self._proc.wait(10)
        poll_until(lambda: not any(map(_alive, pids)), timeout=10, what=f"{self.name} to die")
        self.paused = False
        _live.discard(self)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _kill_all() -> None:
    for proc in list(_live):
        # Keep going: one stuck process must not leave the others running.
        with contextlib.suppress(OSError, TimeoutError, subprocess.TimeoutExpired):
            proc.kill()
