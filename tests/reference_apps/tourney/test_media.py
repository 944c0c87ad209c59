"""The tournament app's media (apps/tourney/media.py): uploads, renditions, serving.

The app runs on the embedded profile: SQLite, the memory broker with the
embedded worker running ``make_renditions`` in process, the memory realtime
backplane, and a local media store in the test's directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from PIL import ExifTags, Image, PngImagePlugin

from apps.tourney.media import (
    Media,
    MediaExtension,
    create_media_tables,
    make_renditions,
    media_tasks,
    tourney_media,
)
from apps.tourney.media_store import LocalMediaStore
from apps.tourney.presets import rate_limits
from tenfold import Platform, Settings, create_app, platform_of
from tenfold.db import TenfoldSession
from tenfold.jobs import JobsExtension
from tenfold.realtime import ChannelHub, Realtime, RealtimeExtension, StreamPosition
from tenfold.testing import app_client

TOURNAMENT = 7
MATCHES = {1: TOURNAMENT, 2: TOURNAMENT}
PROBLEM = "application/problem+json"


async def tournament_of(session: TenfoldSession, match_id: int) -> int | None:
    """The seam the core fills: here two matches of tournament 7."""
    return MATCHES.get(match_id)


def build(settings: Settings, store: Path, **options: Any) -> FastAPI:
    async def tables(platform: Platform) -> None:
        await create_media_tables(platform.db)

    return create_app(
        settings,
        extensions=[
            JobsExtension(tasks=[media_tasks]),
            RealtimeExtension(),
            MediaExtension(tournament_of=tournament_of, store=LocalMediaStore(store)),
        ],
        on_startup=[tables],
        configure_logs=False,
        **options,
    )


@pytest.fixture
def app(embedded_settings: Settings, tmp_path: Path) -> FastAPI:
    return build(embedded_settings, tmp_path / "media")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as client:
        yield client


# -- images -------------------------------------------------------------------------------------


def picture(width: int, height: int) -> Image.Image:
    """An RGB image with some structure (gradients), so encoders have real work."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    blue = red.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return Image.merge("RGB", (red, green, blue))


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header is patched to claim ``width`` x ``height`` pixels."""
    data = bytearray(encoded(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), then width and height
    assert data[ihdr + 4 : ihdr + 8] == b"IHDR"
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 8 + 13]))
    data[ihdr + 8 + 13 : ihdr + 8 + 17] = struct.pack(">I", crc)
    return bytes(data)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- helpers ------------------------------------------------------------------------------------


async def upload(
    client: httpx.AsyncClient, data: bytes, content_type: str = "image/jpeg", match_id: int = 1
) -> httpx.Response:
    return await client.post(
        f"/api/media/matches/{match_id}", content=data, headers={"Content-Type": content_type}
    )


async def eventually(probe: Callable[[], Any], what: str) -> Any:
    """``await probe()`` until it returns something truthy; fails after about 30 s."""
    for _ in range(600):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not after 30 s")


async def processed(client: httpx.AsyncClient, media: dict[str, Any]) -> dict[str, Any]:
    """The media once its job has run (status ready or failed)."""
    url = f"/api/matches/{media['match_id']}/media/{media['id']}"

    async def probe() -> dict[str, Any] | None:
        found = (await client.get(url)).json()
        return found if found["status"] != "pending" else None

    return await eventually(probe, f"media {media['id']} processed")  # type: ignore[no-any-return]


async def published(app: FastAPI, channel: str) -> list[dict[str, Any]]:
    """Every message in ``channel``'s history, as a client resuming from its start sees it."""
    backplane = platform_of(app).get(ChannelHub).backplane
    start = StreamPosition(0, (await backplane.top(channel)).epoch)
    recovery = await backplane.recover(channel, start)
    assert not recovery.resync
    return [json.loads(p.data) for p in recovery.publications]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body  # type: ignore[no-any-return]


async def stored_rows(app: FastAPI) -> int:
    async with platform_of(app).db.session(readonly=True) as session:
        return int(
            (
                await session.execute(sa.select(sa.func.count()).select_from(tourney_media))
            ).scalar_one()
        )


# -- uploads and renditions ---------------------------------------------------------------------


async def test_a_jpeg_answers_at_once_and_gets_three_renditions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A 2400x1600 JPEG is accepted as pending under its SHA-256, then gets a 150x150 thumb, a
    medium inside 800x600 and a large inside 1920x1080, each stored under its own hash."""
    data = encoded(picture(2400, 1600), "JPEG", quality=90)
    response = await upload(client, data)
    assert response.status_code == 202, response.text
    media = response.json()
    assert media["status"] == "pending"
    assert media["renditions"] == {}
    assert media["match_id"] == 1
    assert media["tournament_id"] == TOURNAMENT
    stored = (await client.get(media["original"]["url"])).content
    sha = hashlib.sha256(stored).hexdigest()
    assert media["original"] == {"url": f"/media/{sha}.jpg", "width": 2400, "height": 1600}
    assert (decoded(stored).format, decoded(stored).size) == ("JPEG", (2400, 1600))

    ready = await processed(client, media)
    assert ready["status"] == "ready"
    sizes = {name: (r["width"], r["height"]) for name, r in ready["renditions"].items()}
    assert sizes == {"thumb": (150, 150), "medium": (800, 533), "large": (1620, 1080)}
    for name, rendition in ready["renditions"].items():
        served = await client.get(rendition["url"])
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/jpeg"
        assert rendition["url"] == f"/media/{hashlib.sha256(served.content).hexdigest()}.jpg"
        image = decoded(served.content)
        assert (image.format, image.size) == ("JPEG", sizes[name])


async def test_a_small_png_is_not_enlarged(client: httpx.AsyncClient) -> None:
    """A 320x240 PNG keeps its size for medium and large (no upscaling); the thumb is cropped
    to 150x150; renditions stay PNG."""
    response = await upload(client, encoded(picture(320, 240), "PNG"), "image/png")
    assert response.status_code == 202, response.text
    assert response.json()["original"]["url"].endswith(".png")
    ready = await processed(client, response.json())
    assert ready["status"] == "ready"
    sizes = {name: (r["width"], r["height"]) for name, r in ready["renditions"].items()}
    assert sizes == {"thumb": (150, 150), "medium": (320, 240), "large": (320, 240)}
    for rendition in ready["renditions"].values():
        served = await client.get(rendition["url"])
        assert served.headers["content-type"] == "image/png"
        assert decoded(served.content).format == "PNG"


async def test_renditions_are_oriented_by_exif_and_carry_none(client: httpx.AsyncClient) -> None:
    """A landscape JPEG tagged 'rotate 90' gives portrait renditions with no EXIF left."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise to display
    exif[0x010F] = "Camera Maker"
    data = encoded(picture(1200, 800), "JPEG", exif=exif)
    assert decoded(data).getexif()[0x0112] == 6
    response = await upload(client, data)
    ready = await processed(client, response.json())
    sizes = {name: (r["width"], r["height"]) for name, r in ready["renditions"].items()}
    assert sizes == {"thumb": (150, 150), "medium": (400, 600), "large": (720, 1080)}
    for rendition in ready["renditions"].values():
        image = decoded((await client.get(rendition["url"])).content)
        assert "exif" not in image.info
        assert dict(image.getexif()) == {}


def gps_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: camera, serial number and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Camera Maker"
    exif[ExifTags.Base.Model] = "Model X"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (52.0, 22.0, 12.5),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (4.0, 53.0, 30.25),
    }
    return exif


#: What the metadata of the uploads below spell out; none of it may be in a served file.
SECRETS = (b"Exif", b"Camera Maker", b"Model X", b"secret-xmp", b"secret-comment")


def assert_no_metadata(data: bytes) -> Image.Image:
    """``data`` decodes with no EXIF (so no GPS), XMP, comment or text, and none of SECRETS."""
    image = decoded(data)
    assert dict(image.getexif()) == {}
    assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"} & set(image.info)
    assert getattr(image, "text", {}) == {}
    assert [secret for secret in SECRETS if secret in data] == []
    return image


def marked(width: int, height: int) -> Image.Image:
    """``picture`` with a red block in its top-left corner, to see where it ends up."""
    image = picture(width, height)
    image.paste((255, 0, 0), (0, 0, width // 6, height // 6))
    return image


def is_red(pixel: Any) -> bool:
    red, green, blue = pixel[:3]
    return bool(red > 200 and green < 60 and blue < 60)


async def test_no_served_file_of_a_photo_carries_its_metadata(client: httpx.AsyncClient) -> None:
    """A JPEG with GPS in its EXIF, XMP and a comment is stored without them and upright (its
    Orientation applied, its size the upright one); no rendition carries them either."""
    data = encoded(
        marked(1200, 800),
        "JPEG",
        quality=90,
        exif=gps_exif(orientation=6),  # rotate 90 degrees clockwise to display
        xmp=b"<x:xmpmeta>secret-xmp</x:xmpmeta>",
        comment=b"secret-comment",
    )
    uploaded = decoded(data)
    assert uploaded.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    assert all(secret in data for secret in SECRETS)
    response = await upload(client, data)
    assert response.status_code == 202, response.text
    media = response.json()
    assert (media["original"]["width"], media["original"]["height"]) == (800, 1200)

    served = await client.get(media["original"]["url"])
    assert served.status_code == 200
    assert media["original"]["url"] == f"/media/{hashlib.sha256(served.content).hexdigest()}.jpg"
    original = assert_no_metadata(served.content)
    assert original.size == (800, 1200)
    # Turned clockwise: the top-left corner is now the top-right one.
    assert is_red(original.getpixel((800 - 10, 10)))
    assert not is_red(original.getpixel((10, 10)))
    # Encoded again with the upload's own tables: its quality is the upload's.
    assert original.quantization == uploaded.quantization  # type: ignore[attr-defined]

    ready = await processed(client, media)
    assert ready["status"] == "ready"
    assert set(ready["renditions"]) == {"thumb", "medium", "large"}
    for name, rendition in ready["renditions"].items():
        served = await client.get(rendition["url"])
        assert served.status_code == 200
        image = assert_no_metadata(served.content)
        assert image.size == (rendition["width"], rendition["height"])
        if name != "thumb":  # the thumb is a square crop
            assert image.height > image.width


def _png_with_metadata(image: Image.Image) -> bytes:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "secret-comment")
    text.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>secret-xmp</x:xmpmeta>")
    return encoded(image, "PNG", exif=gps_exif(), pnginfo=text)


def _webp_with_metadata(image: Image.Image) -> bytes:
    xmp = b"<x:xmpmeta>secret-xmp</x:xmpmeta>"
    return encoded(image, "WEBP", lossless=True, exif=gps_exif(), xmp=xmp)


@pytest.mark.parametrize(
    ("content_type", "made"),
    [("image/png", _png_with_metadata), ("image/webp", _webp_with_metadata)],
)
async def test_a_png_or_webp_loses_its_metadata_and_nothing_else(
    client: httpx.AsyncClient, content_type: str, made: Callable[[Image.Image], bytes]
) -> None:
    """A PNG (text, XMP, eXIf) or lossless WebP (EXIF with GPS, XMP) is stored without its
    metadata, pixel for pixel as uploaded."""
    image = marked(300, 200)
    data = made(image)
    assert decoded(data).getexif().get_ifd(ExifTags.IFD.GPSInfo) != {}
    media = (await upload(client, data, content_type)).json()
    stored = (await client.get(media["original"]["url"])).content
    assert hashlib.sha256(stored).hexdigest() != hashlib.sha256(data).hexdigest()
    original = assert_no_metadata(stored)
    assert original.format == decoded(data).format
    assert original.convert("RGB").tobytes() == image.tobytes()
    ready = await processed(client, media)
    for rendition in ready["renditions"].values():
        assert_no_metadata((await client.get(rendition["url"])).content)


async def test_a_webp_is_accepted(client: httpx.AsyncClient) -> None:
    """WebP is the third accepted format; its renditions are WebP."""
    response = await upload(client, encoded(picture(900, 900), "WEBP"), "image/webp")
    assert response.status_code == 202, response.text
    ready = await processed(client, response.json())
    assert ready["renditions"]["medium"]["width"] == 600
    served = await client.get(ready["renditions"]["medium"]["url"])
    assert served.headers["content-type"] == "image/webp"


async def test_media_ready_is_published_on_the_tournament_channel(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Once the renditions are recorded, one media_ready message with their URLs goes to
    tournament:{id}; running the job again changes and publishes nothing."""
    media = (await upload(client, encoded(picture(640, 480), "JPEG"))).json()
    ready = await processed(client, media)
    channel = f"tournament:{TOURNAMENT}"
    [message] = await eventually(lambda: published(app, channel), "media_ready published")
    expected = {
        "id": media["id"],
        "original": media["original"]["url"],
        **{name: r["url"] for name, r in ready["renditions"].items()},
    }
    assert message == {"type": "media_ready", "match_id": 1, "media": expected}

    platform = platform_of(app)
    await platform.get(Media).process(platform.db, platform.get(Realtime), media["id"])
    assert len(await published(app, channel)) == 1
    again = (await client.get(f"/api/matches/1/media/{media['id']}")).json()
    assert again == ready


async def test_a_photo_whose_original_is_gone_is_marked_failed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A job that cannot read its original records 'failed' and publishes media_failed."""
    platform = platform_of(app)
    missing = "0" * 64 + ".jpg"
    async with platform.db.session() as session:
        result = await session.execute(
            sa.insert(tourney_media).values(
                match_id=2,
                tournament_id=TOURNAMENT,
                original_key=missing,
                width=10,
                height=10,
                renditions={},
                status="pending",
                created_at=sa.func.current_timestamp(),
            )
        )
        media_id = result.inserted_primary_key[0]
    await make_renditions.enqueue(media_id)
    failed = await processed(client, {"id": media_id, "match_id": 2})
    assert failed["status"] == "failed"
    assert failed["renditions"] == {}
    messages = await eventually(lambda: published(app, f"tournament:{TOURNAMENT}"), "published")
    assert messages == [{"type": "media_failed", "match_id": 2, "media": {"id": media_id}}]


async def test_the_same_photo_twice_is_stored_once(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Two uploads of the same bytes are two media with one stored original."""
    data = encoded(picture(200, 200), "PNG")
    first = (await upload(client, data, "image/png")).json()
    second = (await upload(client, data, "image/png", match_id=2)).json()
    assert first["id"] != second["id"]
    assert first["original"]["url"] == second["original"]["url"]
    await processed(client, first)
    await processed(client, second)
    originals = [p for p in (tmp_path / "media").rglob("*.png") if p.read_bytes() == data]
    assert len(originals) == 1
    listed = (await client.get("/api/matches/1/media")).json()
    assert [m["id"] for m in listed] == [first["id"]]


# -- refusals -----------------------------------------------------------------------------------


def _truncated_jpeg() -> bytes:
    data = encoded(picture(800, 600), "JPEG")
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    data = encoded(picture(800, 600), "PNG")
    return data[: len(data) // 2]


REFUSED = {
    "text": (b"just some words, not a photo\n", "image/jpeg", 415, "unsupported-image"),
    "html named .png": (
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "image/png",
        415,
        "unsupported-image",
    ),
    "gif": (encoded(Image.new("RGB", (10, 10)), "GIF"), "image/gif", 415, "unsupported-image"),
    "truncated jpeg": (_truncated_jpeg(), "image/jpeg", 422, "damaged-image"),
    "truncated png": (_truncated_png(), "image/png", 422, "damaged-image"),
    "bomb 100000x100000": (png_claiming(100_000, 100_000), "image/png", 422, "too-many-pixels"),
    "bomb 7000x7000": (png_claiming(7000, 7000), "image/png", 422, "too-many-pixels"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_what_is_not_a_sound_photo_is_refused(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path, case: str
) -> None:
    """Text, HTML named .png, GIF, truncated images and decompression bombs are problems,
    whatever the Content-Type claims; nothing is recorded or stored."""
    data, content_type, status, kind = REFUSED[case]
    body = assert_problem(await upload(client, data, content_type), status)
    assert body["type"] == f"/problems/media/{kind}"
    assert await stored_rows(app) == 0
    assert not any(p.is_file() for p in (tmp_path / "media").rglob("*"))


async def test_forms_and_empty_bodies_are_refused(client: httpx.AsyncClient) -> None:
    """A multipart form is a 415 saying to send raw bytes; an empty body is a 400."""
    photo = encoded(picture(50, 50), "PNG")
    form = await client.post("/api/media/matches/1", files={"file": ("p.png", photo, "image/png")})
    assert "multipart" in assert_problem(form, 415)["detail"]
    assert_problem(await upload(client, b"", "image/png"), 400)


async def test_an_oversized_upload_is_refused(client: httpx.AsyncClient) -> None:
    """A body over TENFOLD_MEDIA__MAX_UPLOAD (10 MiB) is a 413 problem, never decoded."""
    assert_problem(await upload(client, b"\xff" * (10 * 1024 * 1024 + 1)), 413)


async def test_an_unknown_match_is_a_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    """The seam said the match does not exist: 404, nothing recorded."""
    assert_problem(await upload(client, encoded(picture(50, 50), "PNG"), match_id=99), 404)
    assert await stored_rows(app) == 0


async def test_uploads_count_against_the_presets_media_limit(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    """The upload route lives under MEDIA_PREFIX: the 11th upload in a minute is a 429."""
    app = build(embedded_settings, tmp_path / "media", rate_limits=rate_limits())
    async with app_client(app) as client:
        statuses = [(await upload(client, b"not a photo")).status_code for _ in range(11)]
        assert (await client.get("/api/matches/1/media")).status_code == 200
    assert statuses == [415] * 10 + [429]


# -- serving ------------------------------------------------------------------------------------


async def test_media_is_served_immutable_with_its_hash_as_etag(client: httpx.AsyncClient) -> None:
    """Cache-Control immutable for a year, ETag the SHA-256, nosniff; If-None-Match gets 304."""
    data = encoded(picture(64, 64), "PNG")
    url = (await upload(client, data, "image/png")).json()["original"]["url"]
    served = await client.get(url)
    assert served.status_code == 200
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-type"] == "image/png"
    etag = served.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get(url, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
    changed = await client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200
    assert changed.content == data
    head = await client.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))


@pytest.mark.parametrize(
    "path",
    [
        "/media/..%2Fx",
        "/media/..%2F..%2Fapp.db",
        "/media/%2E%2E%2Fetc%2Fpasswd",
        "/media/" + "A" * 64 + ".png",
        "/media/" + "a" * 64 + ".gif",
        "/media/" + "a" * 64 + ".png",
        "/media/" + "a" * 63 + ".png",
        "/media/app.db",
    ],
)
async def test_bad_or_unknown_keys_are_404(client: httpx.AsyncClient, path: str) -> None:
    """Only <sha256 hex>.<jpg|png|webp> names a stored object; anything else, traversal
    included, is the same 404 problem as an unknown key."""
    assert_problem(await client.get(path), 404)
