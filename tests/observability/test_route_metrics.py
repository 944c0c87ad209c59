"""RED metrics are labelled by route template, never by raw path, and parse cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenfold.observability import UNMATCHED, Metrics


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def app(make_app, metrics: Metrics) -> FastAPI:
    app = make_app(metrics, access_log=False)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    api = APIRouter(prefix="/v1")

    @api.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    app.include_router(api, prefix="/api")
    sub = Starlette(routes=[Route("/files/{name}", lambda request: PlainTextResponse("f"))])
    app.mount("/orgs/{org}", sub)
    inner = FastAPI()

    @inner.get("/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        return {"thing": thing}

    app.mount("/inner", inner)
    return app


def _routes(samples, name: str = "tenfold_http_requests_total") -> set[str]:
    return {s.labels["route"] for s in samples[name]}


async def test_distinct_ids_share_one_template(app, client_for, metrics, check_exposition) -> None:
    """1000 requests to /items/{id} with distinct ids produce one route label, no raw paths."""
    client = client_for(app)
    for i in range(1000):
        assert (await client.get(f"/items/id-{i}")).status_code == 200
    body = (await client.get("/metrics")).text
    samples = check_exposition(body)
    assert _routes(samples) == {"/items/{item_id}"}
    (count,) = samples["tenfold_http_requests_total"]
    assert count.value == 1000
    assert count.labels == {"route": "/items/{item_id}", "method": "GET", "status": "200"}
    assert "id-1" not in body
    buckets = samples["tenfold_http_request_duration_seconds_count"]
    assert [s.value for s in buckets] == [1000]


async def test_unmatched_paths_share_one_label(app, client_for, check_exposition) -> None:
    """Requests no route matches are all counted under one <unmatched> label."""
    client = client_for(app)
    for path in ["/wp-admin.php", "/a/b/c", "/.env", "/items"]:
        assert (await client.get(path)).status_code == 404
    samples = check_exposition((await client.get("/metrics")).text)
    assert _routes(samples) == {UNMATCHED}
    (count,) = samples["tenfold_http_requests_total"]
    assert count.value == 4
    assert count.labels["status"] == "404"


async def test_prefixes_of_mounts_and_included_routers_are_kept(
    app, client_for, check_exposition
) -> None:
    """Templates include include_router prefixes and Mount prefixes (with their params)."""
    client = client_for(app)
    for path in ["/api/v1/orders/7", "/orgs/acme/files/a.txt", "/inner/things/x"]:
        assert (await client.get(path)).status_code == 200
    samples = check_exposition((await client.get("/metrics")).text)
    assert _routes(samples) == {
        "/api/v1/orders/{order_id}",
        "/orgs/{org}/files/{name}",
        "/inner/things/{thing}",
    }


async def test_methods_are_normalised(app, client_for, check_exposition) -> None:
    """An unknown method is labelled "other" and a 405 keeps the route's template."""
    client = client_for(app)
    assert (await client.request("BREW", "/items/1")).status_code == 405
    assert (await client.request("DELETE", "/items/1")).status_code == 405
    samples = check_exposition((await client.get("/metrics")).text)
    labels = {
        (s.labels["method"], s.labels["route"]) for s in samples["tenfold_http_requests_total"]
    }
    assert labels == {("other", "/items/{item_id}"), ("DELETE", "/items/{item_id}")}


async def test_errors_are_counted_with_their_status(app, client_for, check_exposition) -> None:
    """A 500 from an unhandled exception is counted as 500 and in-flight returns to zero."""

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("no")

    client = client_for(app)
    assert (await client.get("/boom")).status_code == 500
    samples = check_exposition((await client.get("/metrics")).text)
    (count,) = samples["tenfold_http_requests_total"]
    assert count.labels == {"route": "/boom", "method": "GET", "status": "500"}
    assert [s.value for s in samples["tenfold_http_requests_in_flight"]] == [0.0]


async def test_in_flight_counts_requests_being_served(app, client_for, check_exposition) -> None:
    """While a request is being served the in-flight gauge counts it."""
    gate = asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await gate.wait()
        return {"done": True}

    client = client_for(app)
    request = asyncio.create_task(client.get("/slow"))
    for _ in range(1000):
        samples = check_exposition((await client.get("/metrics")).text)
        if samples["tenfold_http_requests_in_flight"][0].value == 1:
            break
        await asyncio.sleep(0.001)
    assert samples["tenfold_http_requests_in_flight"][0].value == 1
    gate.set()
    assert (await request).status_code == 200
    samples = check_exposition((await client.get("/metrics")).text)
    assert samples["tenfold_http_requests_in_flight"][0].value == 0


async def test_probe_and_scrape_paths_are_not_counted(app, client_for, check_exposition) -> None:
    """/metrics itself is served without being counted."""
    client = client_for(app)
    await client.get("/metrics")
    samples = check_exposition((await client.get("/metrics")).text)
    assert "tenfold_http_requests_total" not in samples


class _PoolCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tenfold_db_pool_checked_out", "Connections in use.", labels=["role"]
        )
        family.add_metric(["primary"], 3)
        yield family


async def test_query_durations_and_custom_collectors(
    app, client_for, metrics, check_exposition
) -> None:
    """observe_query fills the per-role histogram and registered collectors are exposed."""
    metrics.observe_query("primary", 0.002)
    metrics.observe_query("replica-0", 0.004)
    metrics.observe_query("replica-0", 0.006)
    metrics.register_collector(_PoolCollector())
    samples = check_exposition((await client_for(app).get("/metrics")).text)
    counts = {s.labels["role"]: s.value for s in samples["tenfold_db_query_duration_seconds_count"]}
    assert counts == {"primary": 1, "replica-0": 2}
    assert [s.value for s in samples["tenfold_db_pool_checked_out"]] == [3]


async def test_openmetrics_is_negotiated(app, client_for) -> None:
    """A scraper asking for OpenMetrics gets it, terminated by # EOF."""
    response = await client_for(app).get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_metrics_are_per_instance() -> None:
    """Two Metrics objects own separate registries, so two apps never collide."""
    first, second = Metrics(), Metrics()
    first.observe_request("/a", "GET", 200, 0.01)
    assert first.registry is not second.registry
    assert (
        second.registry.get_sample_value(
            "tenfold_http_requests_total", {"route": "/a", "method": "GET", "status": "200"}
        )
        is None
    )
