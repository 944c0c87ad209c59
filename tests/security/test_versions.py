"""Known-CVE floors: every installed dependency is at or above the release that fixed each
advisory listed here.

One row per advisory. To add one, append a ``Floor`` to ``FLOORS`` with the distribution's
name, the first fixed release and the advisory's id; ``required=False`` when the package is
optional (the row then applies only where it is installed).
"""

# The table below keeps one advisory per line, aligned, whatever its length.
# ruff: noqa: E501

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import NamedTuple

import pytest
from packaging.version import Version


class Floor(NamedTuple):
    """The first release of ``package`` that fixes ``advisory``."""

    package: str
    fixed: str
    advisory: str
    summary: str
    required: bool = True


# fmt: off
FLOORS: tuple[Floor, ...] = (
    # package              fixed in    advisory           what the fix closes
    Floor("starlette",        "0.40.0",  "CVE-2024-47874", "multipart fields without a filename buffered whole in memory"),
    Floor("starlette",        "0.47.2",  "CVE-2025-54121", "UploadFile rolling over to disk blocks the event loop"),
    Floor("starlette",        "0.49.1",  "CVE-2025-62727", "quadratic Range header parsing in FileResponse"),
    Floor("starlette",        "1.0.1",   "CVE-2026-48710", "a malformed Host header poisons request.url.path"),
    Floor("PyJWT",            "2.13.0",  "CVE-2026-48526", "a JWK document accepted as an HMAC secret"),
    Floor("setuptools",       "78.1.1",  "CVE-2025-47273", "path traversal in PackageIndex.download"),
    Floor("python-multipart", "0.0.27",  "CVE-2026-42561", "denial of service by excessive part headers", required=False),
    Floor("h11",              "0.16.0",  "CVE-2025-43859", "lenient chunked-encoding parsing (request smuggling)", required=False),
    Floor("jinja2",           "3.1.6",   "CVE-2025-27516", "sandbox escape through the |attr filter", required=False),
)
# fmt: on


def installed(package: str) -> Version | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return Version(version(package))
    except PackageNotFoundError:
        return None


def violation(floor: Floor, found: Version | None) -> str | None:
    """Why ``found`` breaks ``floor``, or None when it does not."""
    if found is None:
        return f"{floor.package} is not installed" if floor.required else None
    if found < Version(floor.fixed):
        return (
            f"{floor.package} {found} is below {floor.fixed}, the first release fixing "
            f"{floor.advisory} ({floor.summary})"
        )
    return None


#: The floors that apply here: every required one, and the optional ones installed.
APPLICABLE = [f for f in FLOORS if f.required or installed(f.package) is not None]


@pytest.mark.parametrize("floor", APPLICABLE, ids=lambda f: f"{f.package}-{f.advisory}")
def test_installed_version_is_at_or_above_the_fix(floor: Floor) -> None:
    """The installed release of each applicable package includes the advisory's fix (an
    optional package that is not installed has nothing to fix)."""
    found = installed(floor.package)
    problem = violation(floor, found)
    if problem is not None:
        pytest.fail(problem)


def test_a_release_below_the_floor_is_reported() -> None:
    """The check names the package, both versions and the advisory when a release is too old."""
    floor = Floor("setuptools", "78.1.1", "CVE-2025-47273", "path traversal")
    message = violation(floor, Version("65.5.0"))
    assert message is not None
    assert "setuptools 65.5.0 is below 78.1.1" in message
    assert "CVE-2025-47273" in message
    assert violation(floor, Version("78.1.1")) is None
    assert violation(floor, Version("80.0")) is None


def test_a_missing_package_fails_only_when_required() -> None:
    """A required package that is absent is a failure; an optional one is not."""
    required = Floor("somepackage", "1.0", "CVE-0000-0000", "example")
    optional = required._replace(required=False)
    assert violation(required, None) == "somepackage is not installed"
    assert violation(optional, None) is None


def test_the_table_is_well_formed() -> None:
    """Every row parses as a version and names a CVE or GHSA advisory, once per package."""
    for floor in FLOORS:
        Version(floor.fixed)
        assert floor.advisory.startswith(("CVE-", "GHSA-")), floor
    keys = [(f.package.lower(), f.advisory) for f in FLOORS]
    assert len(keys) == len(set(keys))
