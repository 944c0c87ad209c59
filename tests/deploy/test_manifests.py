"""The deploy/ examples: valid Kubernetes and KEDA objects that fit what tenfold exports.

Kubernetes kinds are checked with kubernetes-validate (the API's schemas, strict:
unknown fields refused), offline. KEDA's kinds are custom resources, for which
kubernetes-validate has no schema: they are checked against
``keda_v1alpha1.schema.json`` beside this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tenfold.jobs._celery import redis_lists

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KEDA_SCHEMA = json.loads((Path(__file__).with_name("keda_v1alpha1.schema.json")).read_text())
#: The oldest Kubernetes the examples are meant for, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj is not None:
                found.append((path.name, obj))
    return found


def _validate(obj: dict[str, Any], version: str) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        schema = {**KEDA_SCHEMA, "$ref": f"#/$defs/{obj['kind']}"}
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def _one(kind: str) -> dict[str, Any]:
    [obj] = [obj for _, obj in _objects() if obj["kind"] == kind]
    return obj


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("file", "obj"), [pytest.param(f, o, id=f"{f}:{o['kind']}") for f, o in _objects()]
)
def test_each_object_is_valid(file: str, obj: dict[str, Any], version: str) -> None:
    """Every object in deploy/ validates against its kind's schema."""
    _validate(obj, version)


def test_every_kind_is_checked_and_none_is_unknown() -> None:
    """The examples are a worker Deployment, a KEDA ScaledObject (with its authentication)
    and an HPA; every kind has a schema here."""
    kinds = sorted(obj["kind"] for _, obj in _objects())
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "TriggerAuthentication",
    ]


@pytest.mark.parametrize(
    ("kind", "damage"),
    [
        ("ScaledObject", lambda o: o["spec"]["triggers"][0].pop("metadata")),
        ("ScaledObject", lambda o: o["spec"].update(maxReplicas=3)),  # the HPA's spelling
        ("HorizontalPodAutoscaler", lambda o: o["spec"].update(maxReplicaCount=3)),
        ("Deployment", lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("name")),
    ],
)
def test_a_broken_object_is_refused(kind: str, damage: Any) -> None:
    """The checks are not vacuous: a missing required field or a misspelt one fails."""
    obj = json.loads(json.dumps(_one(kind)))
    damage(obj)
    with pytest.raises(jsonschema.ValidationError):
        _validate(obj, VERSIONS[0])


def _worker_args() -> list[str]:
    return _one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_keda_triggers_cover_every_priority_list_of_the_workers_queue() -> None:
    """One redis trigger per list kombu keeps for the queue the worker consumes, and the
    ScaledObject scales that worker."""
    args = _worker_args()
    queue = args[args.index("--queues") + 1]
    scaled = _one("ScaledObject")
    lists = [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]]
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"redis"}
    assert lists == redis_lists(queue)
    assert scaled["spec"]["scaleTargetRef"]["name"] == _one("Deployment")["metadata"]["name"]


def test_the_hpa_scales_the_worker_on_the_exported_queue_depth() -> None:
    """The HPA's external metric is the gauge the jobs sampler exports, for the worker's
    queue, and it targets the same Deployment."""
    from tenfold.jobs._sampler import QueueDepth

    args = _worker_args()
    queue = args[args.index("--queues") + 1]
    hpa = _one("HorizontalPodAutoscaler")
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == QueueDepth(list, dict)._name
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"queue": queue}
    assert hpa["spec"]["scaleTargetRef"]["name"] == _one("Deployment")["metadata"]["name"]
