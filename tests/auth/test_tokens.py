"""Access tokens: what ``issue`` signs, what ``verify`` accepts, and each token it refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenfold import Principal, Unauthorized
from tenfold.auth._keys import KeySet
from tenfold.auth._problems import PROBLEMS
from tenfold.auth._tokens import MAX_TOKEN_LENGTH, AccessTokens, InvalidToken
from tenfold.testing import ManualClock
from tenfold.web import ProblemRegistry, problem_for_exception

ISSUER = "https://issuer.test"
AUDIENCE = "tenfold-tests"
TTL = 900
LEEWAY = 30
START = 1_700_000_000.0


@pytest.fixture(params=["EdDSA", "ES256"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def keys(algorithm: str, clock: ManualClock) -> KeySet:
    return KeySet.generate(algorithm, clock=clock)


@pytest.fixture
def tokens(keys: KeySet, clock: ManualClock) -> AccessTokens:
    return make_tokens(keys, clock)


def make_tokens(keys: KeySet, clock: ManualClock, **kw: Any) -> AccessTokens:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "ttl": TTL}
    options.update(kw)
    return AccessTokens(keys, leeway=LEEWAY, algorithm=keys.algorithm, clock=clock, **options)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims_now(**overrides: Any) -> dict[str, Any]:
    """Valid claims at START, as ``issue`` would set them; ``None`` drops a claim."""
    now = int(START)
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1"}
    claims.update(iat=now, nbf=now, exp=now + TTL, jti="j1")
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(keys: KeySet, claims: dict[str, Any], **headers: Any) -> str:
    """A token signed with the active key; ``headers`` add to or replace kid and typ.

    Built by hand (with PyJWT's algorithm for the signature) so that headers
    PyJWT would refuse to write can be sent.
    """
    header: dict[str, Any] = {"alg": keys.algorithm, "kid": keys.active.kid, "typ": "at+jwt"}
    header.update(headers)
    header = {k: v for k, v in header.items() if v is not None}
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    algorithm = jwt.get_algorithm_by_name(keys.algorithm)
    return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), keys.active.private_key))}"


def refused(tokens: AccessTokens, token: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        tokens.verify(token)
    return caught.value


# -- issue and verify ------------------------------------------------------------------------


def test_round_trip_gives_the_principal_back(tokens: AccessTokens, keys: KeySet) -> None:
    """A token issued for a principal verifies to the same id, roles, scopes, kind and extras."""
    principal = Principal(
        "u-42", roles={"admin", "staff"}, scopes={"read", "write"}, kind="service"
    )
    token = tokens.issue(principal, extra={"tenant": "t1", "amr": ["pwd"]})
    back = tokens.verify(token)
    assert back == principal
    assert back.kind == "service"
    assert dict(back.claims) == {"tenant": "t1", "amr": ["pwd"]}
    header = jwt.get_unverified_header(token)
    assert header == {"alg": keys.algorithm, "kid": keys.active.kid, "typ": "at+jwt"}


def test_claims_are_the_registered_ones(tokens: AccessTokens) -> None:
    """decode() shows iss, aud, sub, iat, nbf, exp and a random jti; defaults are left out."""
    first = tokens.decode(tokens.issue(Principal("u1")))
    second = tokens.decode(tokens.issue(Principal("u1")))
    assert set(first) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti"}
    assert (first["iss"], first["aud"], first["sub"]) == (ISSUER, AUDIENCE, "u1")
    assert first["iat"] == first["nbf"] == int(START)
    assert first["exp"] == int(START) + TTL
    assert first["jti"] != second["jti"]


def test_scopes_travel_as_one_space_separated_claim(tokens: AccessTokens) -> None:
    """Scopes are the RFC 8693 ``scope`` string; roles a list; a user's kind is implied."""
    claims = tokens.decode(tokens.issue(Principal("u1", roles={"b", "a"}, scopes={"y", "x"})))
    assert claims["scope"] == "x y"
    assert claims["roles"] == ["a", "b"]
    assert "kind" not in claims


@pytest.mark.parametrize("name", ["sub", "exp", "iss", "jti", "roles", "scope", "kind"])
def test_extra_cannot_override_registered_claims(tokens: AccessTokens, name: str) -> None:
    """extra may not set a claim that issue sets from the principal or itself."""
    with pytest.raises(ValueError, match=name):
        tokens.issue(Principal("u1"), extra={name: "x"})


def test_scope_with_a_space_cannot_be_issued(tokens: AccessTokens) -> None:
    """A scope containing whitespace would split in two on the way back, so it is refused."""
    with pytest.raises(ValueError):
        tokens.issue(Principal("u1", scopes={"read write"}))


def test_tokens_need_the_key_sets_algorithm(keys: KeySet, clock: ManualClock) -> None:
    """AccessTokens refuse a key set of another algorithm, or an algorithm not supported."""
    other = "ES256" if keys.algorithm == "EdDSA" else "EdDSA"
    with pytest.raises(ValueError):
        AccessTokens(keys, issuer=ISSUER, audience=AUDIENCE, algorithm=other, clock=clock)
    with pytest.raises(ValueError):
        AccessTokens(keys, issuer=ISSUER, audience=AUDIENCE, algorithm="HS256", clock=clock)


# -- time --------------------------------------------------------------------------------------


def test_expiry_is_exact_with_the_leeway(tokens: AccessTokens, clock: ManualClock) -> None:
    """A token verifies until exp + leeway (exclusive) and is refused from then on."""
    token = tokens.issue(Principal("u1"))
    clock.advance(TTL + LEEWAY - 0.001)
    assert tokens.verify(token).id == "u1"
    clock.advance(0.001)
    assert refused(tokens, token).reason == "expired (exp)"


def test_future_nbf_is_refused_beyond_the_leeway(tokens: AccessTokens, keys: KeySet) -> None:
    """A token whose nbf is more than the leeway ahead is refused; within the leeway it passes."""
    at_edge = signed(keys, claims_now(nbf=int(START) + LEEWAY))
    assert tokens.verify(at_edge).id == "u1"
    ahead = signed(keys, claims_now(nbf=int(START) + LEEWAY + 1))
    assert refused(tokens, ahead).reason == "not yet valid (nbf)"


def test_future_iat_is_refused_beyond_the_leeway(tokens: AccessTokens, keys: KeySet) -> None:
    """A token issued more than the leeway in the future is refused."""
    assert tokens.verify(signed(keys, claims_now(iat=int(START) + LEEWAY))).id == "u1"
    token = signed(keys, claims_now(iat=int(START) + LEEWAY + 1))
    assert refused(tokens, token).reason == "issued in the future (iat)"


@pytest.mark.parametrize("value", ["soon", True, float("inf"), float("nan"), [1]])
def test_times_must_be_finite_numbers(tokens: AccessTokens, keys: KeySet, value: Any) -> None:
    """An exp that is text, a boolean, infinite or NaN is refused."""
    refused(tokens, signed(keys, claims_now(exp=value)))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub"])
def test_missing_required_claim_is_refused(tokens: AccessTokens, keys: KeySet, claim: str) -> None:
    """Tokens without exp, iat, nbf, iss, aud or sub are refused."""
    error = refused(tokens, signed(keys, claims_now(**{claim: None})))
    assert "MissingRequiredClaimError" in error.reason


# -- refused tokens ----------------------------------------------------------------------------


def test_tampered_signature_is_refused(tokens: AccessTokens) -> None:
    """Changing one byte of the signature makes the token invalid."""
    head, payload, signature = tokens.issue(Principal("u1")).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    refused(tokens, f"{head}.{payload}.{b64(bytes(raw))}")


def test_tampered_payload_is_refused(tokens: AccessTokens) -> None:
    """A payload changed to another subject does not match the signature."""
    head, _, signature = tokens.issue(Principal("u1")).split(".")
    payload = b64json(claims_now(sub="admin"))
    refused(tokens, f"{head}.{payload}.{signature}")


def test_alg_none_is_refused(tokens: AccessTokens, keys: KeySet) -> None:
    """An unsigned token (alg none, empty signature) is refused."""
    header = {"alg": "none", "typ": "at+jwt", "kid": keys.active.kid}
    for alg in ("none", "None", "NONE"):
        header["alg"] = alg
        error = refused(tokens, f"{b64json(header)}.{b64json(claims_now())}.")
        assert error.reason == "the alg is not the configured algorithm"


def test_hs256_with_the_public_key_as_secret_is_refused(tokens: AccessTokens, keys: KeySet) -> None:
    """The HS/asymmetric confusion: HMAC signed with the public key's PEM is refused."""
    pem = keys.active.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": keys.active.kid}
    signing_input = f"{b64json(header)}.{b64json(claims_now())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    error = refused(tokens, f"{signing_input}.{b64(mac)}")
    assert error.reason == "the alg is not the configured algorithm"


def test_rs256_token_from_another_key_is_refused(tokens: AccessTokens, keys: KeySet) -> None:
    """A token signed with someone else's RSA key, naming our kid, is refused."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"kid": keys.active.kid, "typ": "at+jwt"}
    token = jwt.encode(claims_now(), other, algorithm="RS256", headers=headers)
    refused(tokens, token)


def test_same_algorithm_other_key_is_refused(
    tokens: AccessTokens, keys: KeySet, clock: ManualClock
) -> None:
    """A token signed by another key of the right algorithm, claiming our kid, is refused."""
    stranger = KeySet.generate(keys.algorithm, clock=clock).active
    token = jwt.encode(
        claims_now(),
        stranger.private_key,
        algorithm=keys.algorithm,
        headers={"kid": keys.active.kid, "typ": "at+jwt"},
    )
    assert "InvalidSignatureError" in refused(tokens, token).reason


def test_other_audience_or_issuer_is_refused(keys: KeySet, clock: ManualClock) -> None:
    """A token for another audience, or from another issuer, is refused with the same keys."""
    ours = make_tokens(keys, clock)
    theirs_aud = make_tokens(keys, clock, audience="another-api")
    theirs_iss = make_tokens(keys, clock, issuer="https://evil.test")
    assert "InvalidAudienceError" in refused(ours, theirs_aud.issue(Principal("u1"))).reason
    assert "InvalidIssuerError" in refused(ours, theirs_iss.issue(Principal("u1"))).reason


@pytest.mark.parametrize(
    "kid", ["unknown", "../keys.json", "../../etc/passwd", "", 7, None, ["k"], {"k": 1}]
)
def test_bad_kid_is_refused(tokens: AccessTokens, keys: KeySet, kid: Any) -> None:
    """A kid that is unknown, path-like, missing or not a string is refused."""
    error = refused(tokens, signed(keys, claims_now(), kid=kid))
    # PyJWT itself refuses a kid that is not a string.
    assert error.reason in (
        "the kid is missing or unknown",
        "InvalidTokenError: Key ID header parameter must be a string",
    )


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c", "crit"])
def test_headers_naming_keys_are_refused(tokens: AccessTokens, keys: KeySet, member: str) -> None:
    """jku, x5u, jwk, x5c and crit are refused even on a token our key signed."""
    values: dict[str, Any] = {
        "jku": "https://evil.test/jwks.json",
        "x5u": "https://evil.test/cert.pem",
        "jwk": keys.active.public_jwk(),
        "x5c": ["MIIB"],
        "crit": ["exp"],
    }
    error = refused(tokens, signed(keys, claims_now(), **{member: values[member]}))
    if member == "crit":  # PyJWT refuses unknown critical extensions itself
        assert "critical extension" in error.reason
    else:
        assert error.reason == "the header names a key, a key URL or a critical extension"


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt2", 5])
def test_other_token_types_are_refused(tokens: AccessTokens, keys: KeySet, typ: Any) -> None:
    """Only typ at+jwt (RFC 9068) is an access token: an ID token of the same key is not one."""
    refused(tokens, signed(keys, claims_now(), typ=typ))


def test_media_type_form_of_typ_is_accepted(tokens: AccessTokens, keys: KeySet) -> None:
    """typ application/at+jwt (any case) is the same type."""
    assert tokens.verify(signed(keys, claims_now(), typ="application/AT+JWT")).id == "u1"


def test_huge_tokens_are_refused_before_decoding(tokens: AccessTokens, keys: KeySet) -> None:
    """A token over MAX_TOKEN_LENGTH is refused even when its signature is valid."""
    token = signed(keys, claims_now(padding="x" * MAX_TOKEN_LENGTH))
    assert refused(tokens, token).reason == "not a string, or longer than MAX_TOKEN_LENGTH"
    refused(tokens, "a" * 1_000_000)


@pytest.mark.parametrize(
    "token",
    ["", ".", "a.b", "a.b.c", "a.b.c.d", "\u00e9.\u00e9.\u00e9", b"x.y.z", None, 12],
)
def test_garbage_is_refused(tokens: AccessTokens, token: Any) -> None:
    """Anything that is not a compact JWS string is an InvalidToken, never another error."""
    refused(tokens, token)


def test_deeply_nested_header_is_refused(tokens: AccessTokens) -> None:
    """A header of thousands of nested arrays is an InvalidToken, not a RecursionError."""
    header = b64(b"[" * 3000 + b"]" * 3000)
    refused(tokens, f"{header}.{b64json(claims_now())}.AAAA")


@pytest.mark.parametrize(
    "claims",
    [{"roles": "admin"}, {"roles": [1]}, {"scope": ["read"]}, {"kind": 3}, {"sub": ""}],
)
def test_ill_typed_principal_claims_are_refused(
    tokens: AccessTokens, keys: KeySet, claims: dict[str, Any]
) -> None:
    """Roles that are not a list of strings, a scope or kind not a string, or an empty sub."""
    refused(tokens, signed(keys, claims_now(**claims)))


def test_header_check_still_applies_to_a_known_header(tokens: AccessTokens, keys: KeySet) -> None:
    """A header seen before is still tied to its signature: forged payloads stay refused."""
    token = tokens.issue(Principal("u1"))
    assert tokens.verify(token).id == "u1"
    head, _, signature = token.split(".")
    refused(tokens, f"{head}.{b64json(claims_now(sub='root'))}.{signature}")


# -- rotation ----------------------------------------------------------------------------------


def test_previous_key_verifies_during_the_overlap_only(
    tokens: AccessTokens, keys: KeySet, clock: ManualClock
) -> None:
    """After a rotation, old-key tokens verify until the overlap ends; new ones use the new key."""
    old_token = tokens.issue(Principal("u1"))
    assert tokens.verify(old_token).id == "u1"
    tokens.keys = keys.rotate(overlap=600)
    new_token = tokens.issue(Principal("u2"))
    assert jwt.get_unverified_header(new_token)["kid"] == tokens.keys.active.kid != keys.active.kid
    clock.advance(599)
    assert tokens.verify(old_token).id == "u1"
    clock.advance(1)
    assert refused(tokens, old_token).reason == "the key of this kid has retired"
    assert tokens.verify(new_token).id == "u2"


def test_pruned_key_is_unknown(tokens: AccessTokens, keys: KeySet, clock: ManualClock) -> None:
    """Once a retired key is pruned its kid is unknown."""
    old_token = tokens.issue(Principal("u1"))
    tokens.keys = keys.rotate(overlap=0)
    tokens.keys = tokens.keys.prune()
    assert refused(tokens, old_token).reason == "the kid is missing or unknown"


def test_key_set_of_another_algorithm_cannot_be_swapped_in(
    tokens: AccessTokens, keys: KeySet, clock: ManualClock
) -> None:
    """Assigning a key set of another algorithm is refused."""
    other = "ES256" if keys.algorithm == "EdDSA" else "EdDSA"
    with pytest.raises(ValueError):
        tokens.keys = KeySet.generate(other, clock=clock)


# -- how a refusal is answered -----------------------------------------------------------------


def test_invalid_token_is_a_401_problem_that_leaks_nothing(
    tokens: AccessTokens, keys: KeySet
) -> None:
    """InvalidToken is a 401 problem+json with the invalid_token challenge, a generic detail."""
    token = signed(keys, claims_now(secret_marker="s3cr3t", exp=int(START) - 3600))
    error = refused(tokens, token)
    assert isinstance(error, Unauthorized)
    for problems in (ProblemRegistry(PROBLEMS), None):
        response = problem_for_exception(error, problems)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.headers["content-type"] == "application/problem+json"
        body = json.loads(bytes(response.body))
        assert body["detail"] == "the access token is not valid"
        assert body["status"] == 401
        raw = bytes(response.body).decode()
        assert "s3cr3t" not in raw
        assert "expired" not in raw
        assert token.split(".")[1] not in raw
    assert json.loads(bytes(problem_for_exception(error, ProblemRegistry(PROBLEMS)).body))[
        "type"
    ] == ("https://tenfold.dev/problems/invalid-token")
