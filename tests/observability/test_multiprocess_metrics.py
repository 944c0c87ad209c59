"""Multi-process metrics: workers write files, any worker renders the aggregate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tenfold import ConfigurationError
from tenfold.observability import Metrics

_WORKER = textwrap.dedent(
    """
    import os, sys
    from tenfold.observability import Metrics

    metrics = Metrics()
    assert metrics.multiprocess
    for _ in range(int(sys.argv[1])):
        metrics.request_started()
        metrics.observe_request("/items/{id}", "GET", 200, 0.01)
    metrics.observe_query("primary", 0.001)
    metrics.request_started()  # still "in flight" when this worker exits
    print(os.getpid())
    """
)

_RENDER = textwrap.dedent(
    """
    import sys
    from tenfold.observability import Metrics

    metrics = Metrics()
    if len(sys.argv) > 1:
        metrics.mark_process_dead(int(sys.argv[1]))
    body, content_type = metrics.render()
    sys.stdout.write(body.decode())
    """
)


def _run(code: str, directory: Path, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_workers_are_aggregated(tmp_path: Path, check_exposition) -> None:
    """Counts from two worker processes are summed in one valid exposition."""
    first = _run(_WORKER, tmp_path, "3").strip()
    _run(_WORKER, tmp_path, "4")
    samples = check_exposition(_run(_RENDER, tmp_path))
    (total,) = samples["tenfold_http_requests_total"]
    assert total.value == 7
    assert total.labels == {"route": "/items/{id}", "method": "GET", "status": "200"}
    (queries,) = samples["tenfold_db_query_duration_seconds_count"]
    assert queries.value == 2
    assert [s.value for s in samples["tenfold_http_requests_in_flight"]] == [2]
    # A dead worker's live gauge stops counting; its counters stay.
    samples = check_exposition(_run(_RENDER, tmp_path, first))
    assert [s.value for s in samples["tenfold_http_requests_in_flight"]] == [1]
    assert samples["tenfold_http_requests_total"][0].value == 7


def test_multiprocess_dir_must_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking for a directory the environment does not name fails with the variable's name."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ConfigurationError) as info:
        Metrics(multiprocess_dir=tmp_path)
    assert info.value.setting == "PROMETHEUS_MULTIPROC_DIR"


def test_variable_set_after_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting PROMETHEUS_MULTIPROC_DIR after prometheus_client loaded is a configuration error."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match="before the process starts"):
        Metrics()
