"""Instructions per request, counted by callgrind: a figure that does not move with the machine.

Requests per second on a shared 2-core VM move by tens of percent between runs
(and between rounds of one run), which can hide a few percent of overhead.
``instructions_per_request(factory)`` serves ``factory()`` in process,
calling the ASGI app directly (no server, no sockets) under ``valgrind
--tool=callgrind``, twice with a different number of requests; the difference
divided by the difference in requests is what one request costs, start-up
excluded. The same binary, inputs and environment give the same count on any
load. It leaves out the HTTP server (parsing, writing), which every variant
pays alike, so a ratio of two counts understates how close the variants are
once served.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from benchmarks._wrk import REPO_ROOT

__all__ = ["callgrind_available", "instructions_per_request"]

_DRIVER = r"""
import asyncio, importlib, os, sys
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # access lines go nowhere, as under wrk
module, _, attr = sys.argv[1].partition(":")
app = getattr(importlib.import_module(module), attr)()
path, count = sys.argv[2], int(sys.argv[3])
headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
         "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
         "headers": headers, "query_string": b"", "server": ("127.0.0.1", 8000),
         "client": ("127.0.0.1", 50000)}
async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}
async def send(message):
    pass
async def main():
    for _ in range(count):
        await app(dict(scope), receive, send)
asyncio.run(main())
"""

_COLLECTED = re.compile(rb"Collected : (\d+)")


def callgrind_available() -> bool:
    return shutil.which("valgrind") is not None


def _count(factory: str, path: str, requests: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            _DRIVER,
            factory,
            path,
            str(requests),
        ],
        capture_output=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{done.stderr.decode()[-2000:]}")
    return int(found.group(1))


def instructions_per_request(factory: str, path: str, *, low: int = 200, high: int = 1200) -> float:
    """Instructions one request costs in ``factory()``'s app (``module:function``)."""
    return (_count(factory, path, high) - _count(factory, path, low)) / (high - low)
