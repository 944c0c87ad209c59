"""Signing key sets: generation, rotation with an overlap, pruning, JWKS and their documents."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from tenfold import ConfigurationError, ObservabilitySettings
from tenfold.auth import AuthSettings
from tenfold.auth._keys import KeySet, SigningKey
from tenfold.observability import configure_logging, flush_logs, reset_logging
from tenfold.testing import ManualClock

ALGORITHMS = ["EdDSA", "ES256"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON logging into memory; call the fixture's value to read the lines so far."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=False, stream=buffer)

    def lines() -> list[dict[str, Any]]:
        flush_logs()
        return [orjson.loads(line) for line in buffer.getvalue().splitlines()]

    yield lines
    reset_logging()


def test_generated_set_has_one_active_key(algorithm: str, clock: ManualClock) -> None:
    """A generated set holds one active key of the algorithm, made now, with a URL-safe kid."""
    keys = KeySet.generate(algorithm, clock=clock)
    assert keys.algorithm == algorithm
    assert keys.keys == (keys.active,)
    assert keys.active.created_at == clock.now
    assert keys.active.retire_at is None
    assert len(keys.active.kid) >= 16
    assert re.fullmatch(r"[A-Za-z0-9_-]+", keys.active.kid)
    assert keys.verification_key(keys.active.kid) is keys.active.public_key


def test_kids_are_random(clock: ManualClock) -> None:
    """Two generated keys never share a kid."""
    kids = {KeySet.generate("EdDSA", clock=clock).active.kid for _ in range(20)}
    assert len(kids) == 20


def test_repr_shows_no_key_material(algorithm: str, clock: ManualClock) -> None:
    """Neither a key's nor a set's repr includes the key objects."""
    keys = KeySet.generate(algorithm, clock=clock)
    assert "Private" not in repr(keys.active)
    assert "Public" not in repr(keys.active)
    assert keys.active.kid in repr(keys)


def test_rotation_keeps_the_old_key_for_the_overlap(algorithm: str, clock: ManualClock) -> None:
    """After a rotation the old key verifies until now+overlap, and not from then on."""
    keys = KeySet.generate(algorithm, clock=clock)
    old = keys.active
    rotated = keys.rotate(overlap=600)
    assert rotated.active.kid != old.kid
    assert [k.kid for k in rotated.keys] == [rotated.active.kid, old.kid]
    assert rotated.keys[1].retire_at == clock.now + 600
    clock.advance(599.999)
    assert rotated.verification_key(old.kid) is old.public_key
    clock.advance(0.001)
    assert rotated.verification_key(old.kid) is None
    assert rotated.verification_key(rotated.active.kid) is rotated.active.public_key


def test_verification_key_refuses_unknown_and_odd_kids(clock: ManualClock) -> None:
    """An unknown kid, a path-like kid or a non-string kid has no key."""
    keys = KeySet.generate("EdDSA", clock=clock)
    for kid in ["nope", "../" + keys.active.kid, keys.active.kid + "\x00", 1, None, ["x"]]:
        assert keys.verification_key(kid) is None


def test_prune_drops_retired_keys(clock: ManualClock) -> None:
    """prune() keeps the active key and the keys still in their overlap."""
    keys = KeySet.generate("EdDSA", clock=clock).rotate(overlap=100)
    clock.advance(50)
    keys = keys.rotate(overlap=100)
    first, second = keys.keys[2].kid, keys.keys[1].kid
    assert [k.kid for k in keys.prune().keys] == [k.kid for k in keys.keys]
    clock.advance(50)
    pruned = keys.prune()
    assert [k.kid for k in pruned.keys] == [keys.active.kid, second]
    assert first not in pruned
    clock.advance(50)
    assert keys.prune().keys == (keys.active,)


def test_jwks_is_public_and_only_verifying_keys(algorithm: str, clock: ManualClock) -> None:
    """The JWKS lists public keys with kid, alg and use, no private member, no retired key."""
    keys = KeySet.generate(algorithm, clock=clock).rotate(overlap=10)
    document = keys.jwks()
    assert [k["kid"] for k in document["keys"]] == [k.kid for k in keys.keys]
    for jwk in document["keys"]:
        assert PRIVATE_MEMBERS.isdisjoint(jwk)
        assert (jwk["alg"], jwk["use"]) == (algorithm, "sig")
    clock.advance(10)
    assert [k["kid"] for k in keys.jwks()["keys"]] == [keys.active.kid]
    assert json.loads(json.dumps(document)) == document


def test_json_round_trip(algorithm: str, clock: ManualClock) -> None:
    """to_json() then from_json() gives the same keys, ids, times and active key."""
    keys = KeySet.generate(algorithm, clock=clock).rotate(overlap=300)
    document = keys.to_json()
    assert document["active"] == keys.active.kid
    assert all("d" in jwk for jwk in document["keys"])
    back = KeySet.from_json(json.dumps(document), algorithm=algorithm, clock=clock)
    assert back.active.kid == keys.active.kid
    assert [(k.kid, k.created_at, k.retire_at) for k in back.keys] == [
        (k.kid, k.created_at, k.retire_at) for k in keys.keys
    ]
    assert back.jwks() == keys.jwks()
    assert back.to_json() == document


def _document(algorithm: str = "EdDSA", clock: ManualClock | None = None) -> dict[str, Any]:
    return KeySet.generate(algorithm, clock=clock or ManualClock()).rotate(overlap=60).to_json()


def _broken(change: str) -> dict[str, Any]:
    document = _document()
    first = document["keys"][0]
    if change == "oct":
        document["keys"][0] = {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": first["kid"]}
    elif change == "other-alg":
        first["alg"] = "ES256"
    elif change == "rsa-alg":
        first["alg"] = "RS256"
    elif change == "no-kid":
        del first["kid"]
    elif change == "path-kid":
        first["kid"] = "../../etc/passwd"
        document["active"] = first["kid"]
    elif change == "duplicate-kid":
        document["keys"][1]["kid"] = first["kid"]
    elif change == "no-active":
        del document["active"]
    elif change == "unknown-active":
        document["active"] = "missing"
    elif change == "public-only":
        del first["d"]
    elif change == "bad-d":
        first["d"] = "AAAA"
    elif change == "curve":
        first["crv"] = "X25519"
    elif change == "active-retires":
        first["retire_at"] = 5.0
    elif change == "no-keys":
        document["keys"] = []
    elif change == "use-enc":
        first["use"] = "enc"
    elif change == "retire-text":
        document["keys"][1]["retire_at"] = "soon"
    return document


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("oct", "symmetric (oct)"),
        ("other-alg", "not an EdDSA key"),
        ("rsa-alg", "not an EdDSA key"),
        ("no-kid", "needs a kid"),
        ("path-kid", "needs a kid"),
        ("duplicate-kid", "two keys have the kid"),
        ("no-active", '"active" must name'),
        ("unknown-active", 'no key has the "active" kid'),
        ("public-only", "no private part"),
        ("bad-d", "not a valid EdDSA private key"),
        ("curve", "must have kty 'OKP' and crv 'Ed25519'"),
        ("active-retires", "active key has a retire_at"),
        ("no-keys", "non-empty list"),
        ("use-enc", "not a signing key"),
        ("retire-text", "epoch seconds"),
    ],
)
def test_unsafe_documents_name_the_setting(change: str, says: str) -> None:
    """Each wrong or unsafe document is a ConfigurationError naming the setting, quoting no key."""
    document = _broken(change)
    with pytest.raises(ConfigurationError) as caught:
        KeySet.from_json(document, algorithm="EdDSA", setting="TENFOLD_AUTH__KEYS")
    assert caught.value.setting == "TENFOLD_AUTH__KEYS"
    assert "TENFOLD_AUTH__KEYS" in str(caught.value)
    assert says in str(caught.value)
    for jwk in document.get("keys", []):
        if "d" in jwk and len(jwk["d"]) > 8:
            assert jwk["d"] not in str(caught.value)


@pytest.mark.parametrize("text", ["not json", "[]", '{"active": "x"}', "[[[[[[" * 5000])
def test_unreadable_documents_are_configuration_errors(text: str) -> None:
    """Text that is not a key set document is a ConfigurationError, never a parser's error."""
    with pytest.raises(ConfigurationError):
        KeySet.from_json(text, algorithm="EdDSA", setting="TENFOLD_AUTH__KEYS")


def test_document_of_another_algorithm_is_refused() -> None:
    """An ES256 document read for EdDSA is refused."""
    with pytest.raises(ConfigurationError, match="EdDSA"):
        KeySet.from_json(_document("ES256"), algorithm="EdDSA", setting="TENFOLD_AUTH__KEYS")


def test_from_settings_reads_inline_keys(clock: ManualClock) -> None:
    """TENFOLD_AUTH__KEYS holds the document inline."""
    document = _document("ES256", clock)
    settings = AuthSettings(keys=SecretStr(json.dumps(document)), algorithm="ES256")
    keys = KeySet.from_settings(settings, clock=clock)
    assert keys.to_json() == document


def test_from_settings_reads_the_key_file(tmp_path: Path, clock: ManualClock) -> None:
    """TENFOLD_AUTH__KEYS_FILE names a file holding the document."""
    path = tmp_path / "keys.json"
    document = _document("EdDSA", clock)
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)
    keys = KeySet.from_settings(AuthSettings(keys_file=path), clock=clock)
    assert keys.to_json() == document


def test_from_settings_names_the_file_setting(tmp_path: Path) -> None:
    """A missing or broken key file is a ConfigurationError naming TENFOLD_AUTH__KEYS_FILE."""
    path = tmp_path / "keys.json"
    with pytest.raises(ConfigurationError, match="does not exist") as missing:
        KeySet.from_settings(AuthSettings(keys_file=path))
    assert missing.value.setting == "TENFOLD_AUTH__KEYS_FILE"
    path.write_text(json.dumps(_broken("oct")))
    with pytest.raises(ConfigurationError, match="symmetric") as broken:
        KeySet.from_settings(AuthSettings(keys_file=path))
    assert broken.value.setting == "TENFOLD_AUTH__KEYS_FILE"


def test_from_settings_refuses_both_sources(tmp_path: Path) -> None:
    """Setting both the inline keys and the file is refused."""
    settings = AuthSettings(keys=SecretStr("{}"), keys_file=tmp_path / "k.json")
    with pytest.raises(ConfigurationError) as caught:
        KeySet.from_settings(settings)
    assert caught.value.setting == "TENFOLD_AUTH__KEYS"


def test_from_settings_without_keys_generates_and_warns(
    clock: ManualClock, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """Without keys a key of the process's own is made, with a warning about several processes."""
    keys = KeySet.from_settings(AuthSettings(algorithm="ES256"), clock=clock)
    assert keys.algorithm == "ES256"
    assert len(keys.keys) == 1
    (line,) = [entry for entry in log_lines() if entry["event"] == "auth_keys_generated"]
    assert line["level"] == "warning"
    assert "several processes" in line["hint"]


def test_signing_keys_of_mixed_algorithms_do_not_form_a_set(clock: ManualClock) -> None:
    """A set refuses keys of two algorithms and two keys with one kid."""
    ed = SigningKey.generate("EdDSA", now=clock.now)
    es = SigningKey.generate("ES256", now=clock.now)
    with pytest.raises(ValueError):
        KeySet(ed, [es])
    with pytest.raises(ValueError):
        KeySet(ed, [ed])
