"""Match photos: upload, renditions made in the background, immutable serving.

The core mounts it with one extension and one task group::

    from apps.tourney.media import MediaExtension, media_tasks

    create_app(
        settings,
        extensions=[
            JobsExtension(tasks=[media_tasks, ...]),
            RealtimeExtension(...),              # optional: media_ready messages
            MediaExtension(tournament_of=tournament_of),
        ],
        rate_limits=rate_limits(),               # apps.tourney.presets
    )

``tournament_of(session, match_id) -> tournament id | None`` is the seam to
the core's matches: the upload calls it in its own transaction, answers 404
when it gives None, and keeps the tournament id on the media row, so the
background job needs no lookup of its own. The tables are created by
``create_media_tables(db)`` or by Alembic from ``media_metadata``.

Routes:

``POST /api/media/matches/{match_id}``
    The photo's bytes **as the raw request body** (no multipart: the app
    ships no multipart parser), with ``Content-Type: image/jpeg``,
    ``image/png``, ``image/webp`` or ``application/octet-stream``; the type is
    decided by sniffing the bytes (``apps.tourney.media_images``), the header
    only turns away forms. ``curl --data-binary @photo.jpg -H 'Content-Type:
    image/jpeg' .../api/media/matches/7``. It lives under the presets'
    ``MEDIA_PREFIX`` so the ``media_upload`` rate limit applies. The original
    is stored at once, upright and without its metadata (EXIF with its GPS
    position, XMP, comments: ``media_images.strip_metadata``), under the
    SHA-256 of the stored bytes, and the answer is ``202`` with the media's
    id, status ``pending`` and the original's URL and upright size;
    ``make_renditions`` is enqueued through the outbox, so it runs only if the
    row committed.
    Refusals (problem+json): 413 over ``TENFOLD_MEDIA__MAX_UPLOAD`` bytes, 415
    not a JPEG/PNG/WebP image or a form body, 422 a damaged image or more than
    ``TENFOLD_MEDIA__MAX_PIXELS`` pixels, 404 an unknown match.

``GET /api/matches/{match_id}/media`` and ``.../media/{media_id}``
    The match's photos (newest first) and one photo, with status and URLs.

``GET /media/{key}``
    The stored bytes, ``Cache-Control: public, max-age=31536000, immutable``,
    ``ETag`` the SHA-256, ``304`` for a matching ``If-None-Match``. A key
    that is not ``<sha256 hex>.<jpg|png|webp>`` is a 404 like an unknown one.

When the renditions are stored, ``{"type": "media_ready", "match_id": ...,
"media": {"id", "original", "large", "medium", "thumb"}}`` is published on
``tournament:{tournament_id}`` (``media_failed`` with the id if the image
cannot be rendered), when the realtime extension is installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from apps.tourney.media_images import (
    DECODE_ERRORS,
    DamagedImage,
    ImageTooLarge,
    UnsupportedImage,
    render,
    strip_metadata,
)
from apps.tourney.media_store import (
    LocalMediaStore,
    MediaStore,
    check_key,
    content_type_of,
    media_key,
)
from tenfold import (
    BadRequest,
    Build,
    Extension,
    NotFound,
    SettingsSection,
    current_user_id,
)
from tenfold.db import Database, DbSession, ReadSession, TenfoldSession
from tenfold.jobs import Tasks, current_platform
from tenfold.observability import get_logger
from tenfold.realtime import Realtime
from tenfold.web import KiB, MiB, Problem, ProblemEntry

__all__ = [
    "MEDIA_PROBLEMS",
    "ImageOut",
    "Media",
    "MediaExtension",
    "MediaOut",
    "MediaSettings",
    "TournamentOf",
    "UploadTooLarge",
    "create_media_tables",
    "make_renditions",
    "media_metadata",
    "media_router",
    "media_tasks",
    "tourney_media",
]

_log = get_logger("apps.tourney.media")

#: The seam to the core: the tournament of a match, read in the caller's session; None when
#: the match does not exist (the upload answers 404).
TournamentOf = Callable[[TenfoldSession, int], Awaitable[int | None]]

IMMUTABLE = "public, max-age=31536000, immutable"
_ACCEPTED_TYPES = ("image/", "application/octet-stream")
_BINARY = {"schema": {"type": "string", "format": "binary"}}
#: The upload's body in the API document: the photo's raw bytes, not a form.
_RAW_IMAGE_BODY = {
    "required": True,
    "content": {t: _BINARY for t in ("image/jpeg", "image/png", "image/webp")},
}


class MediaSettings(SettingsSection):
    """Match photos (``TENFOLD_MEDIA__*``)."""

    root: Path = Field(Path("var/media"), description="Directory of the local media store.")
    max_upload: int = Field(
        10 * MiB, ge=1 * KiB, description="Bytes one uploaded photo may have (413 above)."
    )
    max_pixels: int = Field(
        40_000_000,
        ge=1_000_000,
        description="Pixels (width x height) one photo may have; more is refused (422) "
        "before it is decoded, which stops decompression bombs.",
    )
    public_url: str = Field(
        "/media",
        description="Base of the URLs handed to clients: /media (served by the app) or a "
        "CDN's origin that maps to it, e.g. https://cdn.example.com/media.",
    )


class UploadTooLarge(BadRequest):
    """The photo has more bytes than ``TENFOLD_MEDIA__MAX_UPLOAD``."""


_T = "/problems/media/"
#: How the media errors are answered; ``MediaExtension`` registers it.
MEDIA_PROBLEMS: dict[type[BaseException], ProblemEntry] = {
    UnsupportedImage: Problem(415, "Unsupported Media Type", type=_T + "unsupported-image"),
    DamagedImage: Problem(422, "Damaged Image", type=_T + "damaged-image"),
    ImageTooLarge: Problem(422, "Image Too Large", type=_T + "too-many-pixels"),
    UploadTooLarge: Problem(413, "Content Too Large", type=_T + "upload-too-large"),
}

media_metadata = sa.MetaData()
#: One uploaded photo. ``match_id`` and ``tournament_id`` point at the core's tables.
tourney_media = sa.Table(
    "tourney_media",
    media_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("match_id", sa.Integer, nullable=False, index=True),
    sa.Column("tournament_id", sa.Integer, nullable=False),
    sa.Column("uploader_id", sa.String(200), nullable=True),
    sa.Column("original_key", sa.String(80), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    # {"large": {"key": ..., "width": ..., "height": ...}, "medium": ..., "thumb": ...}
    sa.Column("renditions", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'ready', 'failed')", name="tourney_media_status"),
)


async def create_media_tables(db: Database) -> None:
    """Create ``tourney_media`` if missing (the embedded profile; use Alembic elsewhere)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(media_metadata.create_all)


class ImageOut(BaseModel):
    """One stored image: where it is served and its size."""

    url: str
    width: int
    height: int


class MediaOut(BaseModel):
    """A photo as clients see it; ``renditions`` is empty until ``status`` is ``ready``."""

    id: int
    match_id: int
    tournament_id: int
    uploader_id: str | None
    status: str
    original: ImageOut
    renditions: dict[str, ImageOut]
    created_at: datetime


class Media:
    """The media service: the store, the limits and the seam to the core's matches."""

    def __init__(
        self,
        store: MediaStore,
        settings: MediaSettings,
        tournament_of: TournamentOf,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.tournament_of = tournament_of
        self.clock = clock

    def url(self, key: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/{key}"

    def out(self, row: Any) -> MediaOut:
        renditions = {
            name: ImageOut(url=self.url(r["key"]), width=r["width"], height=r["height"])
            for name, r in row.renditions.items()
        }
        original = ImageOut(url=self.url(row.original_key), width=row.width, height=row.height)
        return MediaOut(
            id=row.id,
            match_id=row.match_id,
            tournament_id=row.tournament_id,
            uploader_id=row.uploader_id,
            status=row.status,
            original=original,
            renditions=renditions,
            created_at=row.created_at,
        )

    async def accept(self, session: TenfoldSession, match_id: int, data: bytes) -> MediaOut:
        """Check and store an upload, record it ``pending`` and enqueue its renditions."""
        if len(data) > self.settings.max_upload:
            raise UploadTooLarge(f"the photo is larger than {self.settings.max_upload} bytes")
        if not data:
            raise BadRequest("the request body is empty; send the photo's bytes")
        # Checked and rewritten before the first query, so no transaction is open meanwhile.
        # Here rather than in the job: the answer hands out the original's URL, the hash of
        # the stored bytes, and the bytes as uploaded (GPS included) are never stored. It
        # costs little: the checks decode the image anyway, a JPEG's encoding is a fraction
        # of its decoding, and a PNG or WebP is rewritten chunk by chunk.
        original = await asyncio.to_thread(
            strip_metadata, data, max_pixels=self.settings.max_pixels
        )
        tournament_id = await self.tournament_of(session, match_id)
        if tournament_id is None:
            raise NotFound(f"match {match_id} does not exist")
        key = media_key(original.data, original.ext)
        # Stored before the row exists, so a committed row never names a missing object;
        # a rolled-back upload leaves an unreferenced object, never a broken reference.
        await self.store.put(key, original.data, original.content_type)
        values = {
            "match_id": match_id,
            "tournament_id": tournament_id,
            "uploader_id": current_user_id(),
            "original_key": key,
            "width": original.width,
            "height": original.height,
            "renditions": {},
            "status": "pending",
            "created_at": self.clock(),
        }
        result = await session.execute(sa.insert(tourney_media).values(**values))
        media_id = result.inserted_primary_key[0]
        await make_renditions.enqueue(media_id, session=session)
        return self.out(_Row(id=media_id, **values))

    async def process(self, db: Database, realtime: Realtime | None, media_id: int) -> None:
        """Make, store and record the renditions of ``media_id``; publish the outcome.

        Safe to run twice: renditions are content-addressed, and only the run whose
        update moves the row out of ``pending`` publishes.
        """
        # On the primary: the row committed just before the job was sent, and a lagging
        # replica would not have it yet (the job would then skip a photo for good).
        async with db.session() as session:
            query = sa.select(tourney_media).where(tourney_media.c.id == media_id)
            row = (await session.execute(query)).first()
        if row is None or row.status != "pending":
            return
        original = await self.store.get(row.original_key)
        try:
            if original is None:
                raise DamagedImage(f"the original {row.original_key} is not in the store")
            made = await asyncio.to_thread(render, original, max_pixels=self.settings.max_pixels)
        except (DamagedImage, ImageTooLarge, *DECODE_ERRORS) as exc:
            _log.warning("media_rendition_failed", media_id=media_id, error=repr(exc))
            await self._finish(db, realtime, row, "failed", {})
            return
        renditions: dict[str, dict[str, Any]] = {}
        for rendition in made:
            key = media_key(rendition.data, rendition.ext)
            await self.store.put(key, rendition.data, content_type_of(key))
            renditions[rendition.name] = {
                "key": key,
                "width": rendition.width,
                "height": rendition.height,
            }
        await self._finish(db, realtime, row, "ready", renditions)

    async def _finish(
        self,
        db: Database,
        realtime: Realtime | None,
        row: Any,
        status: str,
        renditions: dict[str, dict[str, Any]],
    ) -> None:
        async with db.session() as session:
            result = await session.execute(
                sa.update(tourney_media)
                .where(tourney_media.c.id == row.id, tourney_media.c.status == "pending")
                .values(status=status, renditions=renditions)
            )
            if result.rowcount != 1 or realtime is None:
                return
            media: dict[str, Any] = {"id": row.id}
            if status == "ready":
                media["original"] = self.url(row.original_key)
                media.update({name: self.url(r["key"]) for name, r in renditions.items()})
            message = {"type": f"media_{status}", "match_id": row.match_id, "media": media}
            channel = f"tournament:{row.tournament_id}"
            session.after_commit(lambda: realtime.publish(channel, message))


class _Row:
    """A row built from the values just inserted (no read back)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


media_tasks = Tasks(queue="media")


@media_tasks.task(max_retries=5)
async def make_renditions(media_id: int) -> None:
    """Make the thumb, medium and large renditions of one uploaded photo."""
    platform = current_platform()
    await platform.get(Media).process(platform.db, platform.find(Realtime), media_id)


MatchId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
MediaId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def media_router(media: Media, *, upload_dependencies: Sequence[Any] = ()) -> APIRouter:
    """The media routes over ``media`` (see the module docstring).

    ``upload_dependencies`` guard the upload (``[Depends(require_player)]``).
    """
    router = APIRouter(tags=["media"])

    @router.post(
        "/api/media/matches/{match_id}",
        status_code=202,
        dependencies=list(upload_dependencies),
        max_body_size=media.settings.max_upload,
        openapi_extra={"requestBody": _RAW_IMAGE_BODY},
        responses={
            415: {
                "description": "Not a JPEG, PNG or WebP image (sniffed), or a form body.",
                "content": {"application/problem+json": {}},
            }
        },
    )
    async def upload_media(match_id: MatchId, request: Request, session: DbSession) -> MediaOut:
        """Upload a photo of a match: the raw image bytes as the body."""
        sent = request.headers.get("content-type", "application/octet-stream").lower()
        if not sent.startswith(_ACCEPTED_TYPES):
            raise UnsupportedImage(
                "send the photo's bytes as the body with Content-Type image/jpeg, image/png "
                "or image/webp; forms (multipart) are not accepted"
            )
        return await media.accept(session, match_id, await request.body())

    @router.get("/api/matches/{match_id}/media")
    async def list_media(
        match_id: MatchId, session: ReadSession, limit: Annotated[int, Query(ge=1, le=100)] = 50
    ) -> list[MediaOut]:
        """The match's photos, newest first."""
        query = (
            sa.select(tourney_media)
            .where(tourney_media.c.match_id == match_id)
            .order_by(tourney_media.c.id.desc())
            .limit(limit)
        )
        return [media.out(row) for row in await session.execute(query)]

    @router.get("/api/matches/{match_id}/media/{media_id}")
    async def get_media(match_id: MatchId, media_id: MediaId, session: ReadSession) -> MediaOut:
        """One photo of the match, with its status and URLs."""
        query = sa.select(tourney_media).where(
            tourney_media.c.id == media_id, tourney_media.c.match_id == match_id
        )
        row = (await session.execute(query)).first()
        if row is None:
            raise NotFound(f"match {match_id} has no photo {media_id}")
        return media.out(row)

    @router.get("/media/{key}")
    async def serve_media(key: str, request: Request) -> Response:
        """A stored photo or rendition, cacheable for ever."""
        data = await media.store.get(key) if check_key(key) else None
        if data is None:
            raise NotFound("no such media")
        headers = {
            "Cache-Control": IMMUTABLE,
            "ETag": f'"{key.split(".", 1)[0]}"',
            "X-Content-Type-Options": "nosniff",
        }
        if _matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        body = b"" if request.method == "HEAD" else data
        headers["Content-Length"] = str(len(data))
        return Response(body, media_type=content_type_of(key), headers=headers)

    # HEAD answers like GET without the body; one operation in the API document is enough.
    router.add_api_route("/media/{key}", serve_media, methods=["HEAD"], include_in_schema=False)
    return router


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class MediaExtension(Extension):
    """Match photos: ``platform.get(Media)``, the routes, ``TENFOLD_MEDIA__*``.

    ``tournament_of`` is the seam to the core's matches (see ``TournamentOf``).
    ``store`` replaces the local store under ``TENFOLD_MEDIA__ROOT``.
    ``upload_dependencies`` guard the upload route. The app's jobs extension must
    register ``media_tasks``.
    """

    name = "media"
    settings_model = MediaSettings
    requires = ("db", "jobs")
    after = ("realtime",)

    def __init__(
        self,
        *,
        tournament_of: TournamentOf,
        store: MediaStore | None = None,
        upload_dependencies: Sequence[Any] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.tournament_of = tournament_of
        self.store = store
        self.upload_dependencies = tuple(upload_dependencies)
        self.clock = clock

    def build(self, build: Build) -> None:
        settings: MediaSettings = build.section
        store = self.store if self.store is not None else LocalMediaStore(settings.root)
        options = {"clock": self.clock} if self.clock is not None else {}
        media = Media(store, settings, self.tournament_of, **options)
        build.provide(media)
        build.problems(MEDIA_PROBLEMS)
        build.router(media_router(media, upload_dependencies=self.upload_dependencies))
