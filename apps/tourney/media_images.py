"""What an uploaded photo is, decided from its bytes, and the sizes it is served in.

Both functions are synchronous and CPU-bound (Pillow decodes the whole
image): call them through ``asyncio.to_thread``, never on the event loop.

``sniff(data, max_pixels=...)`` decides the type from the content, never
from the client's Content-Type or file name. Only Pillow's JPEG, PNG and
WebP decoders are tried (``Image.open(formats=...)``), so a file no decoder
of those recognises is refused before any other plugin parses it. Then:

- the header's pixel count is checked against ``max_pixels`` **before**
  anything is decoded: a few hundred bytes claiming 100000 x 100000 pixels
  (a decompression bomb) are refused without allocating the image.
  Pillow's own process-wide ``Image.MAX_IMAGE_PIXELS`` is left as it is
  (changing a library's global would change it for every other user in the
  process); it still stops anything past twice its value inside
  ``Image.open``, and that is answered the same way;
- ``verify()`` checks the file's structure (PNG chunk checksums);
- the image is decoded once, which finds what ``verify()`` does not check
  (a JPEG cut short).

The errors are problems (``tenfold.ProblemError``), answered as
problem+json once ``MEDIA_PROBLEMS`` is registered:

    UnsupportedImage   415  not a JPEG, PNG or WebP image (text, HTML, GIF...)
    DamagedImage       422  a known format, but truncated or corrupt
    ImageTooLarge      422  more pixels than allowed: the bytes are small, the
                            image is not, and sending it again will not help

``render(data, max_pixels=...)`` makes the renditions of ``RENDITIONS``:
oriented by the EXIF Orientation tag first, every metadata block but the
ICC colour profile dropped (EXIF carries GPS positions and camera serials),
encoded in the original's format.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from apps.tourney.media_store import CONTENT_TYPES
from tenfold import BadRequest, ProblemError

__all__ = [
    "DECODE_ERRORS",
    "RENDITIONS",
    "DamagedImage",
    "ImageTooLarge",
    "Rendition",
    "RenditionSpec",
    "Sniffed",
    "UnsupportedImage",
    "render",
    "sniff",
]

#: Pillow's format names, and the key extension each is stored under. A JPEG with
#: extra pictures (phones write them) opens as MPO; its first picture is the photo.
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
_DECODERS = ("JPEG", "PNG", "WEBP")
#: What Pillow's decoders raise on malformed input (its fuzzing harness accepts these).
DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    IndexError,
    struct.error,
    zlib.error,
)


class UnsupportedImage(ProblemError):
    """The upload is not a JPEG, PNG or WebP image, whatever its Content-Type says."""


class DamagedImage(BadRequest):
    """The upload starts like a supported image but is truncated or corrupt."""


class ImageTooLarge(BadRequest):
    """The image has more pixels than ``TENFOLD_MEDIA__MAX_PIXELS`` (a decompression bomb)."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What an upload turned out to be."""

    ext: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


@dataclass(frozen=True, slots=True)
class RenditionSpec:
    """A served size: a ``width`` x ``height`` box, filled by a centred crop when ``crop``,
    else fitted inside it with the aspect ratio kept and never enlarged."""

    name: str
    width: int
    height: int
    crop: bool = False


#: The plan's sizes. ``medium`` is made from ``large``, so keep the boxes nested.
RENDITIONS: tuple[RenditionSpec, ...] = (
    RenditionSpec("large", 1920, 1080),
    RenditionSpec("medium", 800, 600),
    RenditionSpec("thumb", 150, 150, crop=True),
)


@dataclass(frozen=True, slots=True)
class Rendition:
    """One encoded rendition."""

    name: str
    width: int
    height: int
    ext: str
    data: bytes


def sniff(data: bytes, *, max_pixels: int) -> Sniffed:
    """What ``data`` is; ``UnsupportedImage``, ``DamagedImage`` or ``ImageTooLarge`` if refused."""
    try:
        with Image.open(io.BytesIO(data), formats=_DECODERS) as image:
            found = Sniffed(_EXTENSIONS[image.format or ""], *image.size)
            _check_pixels(found.width, found.height, max_pixels)
            image.verify()
        # verify() leaves the image unusable and skips the pixel data of some formats.
        with Image.open(io.BytesIO(data), formats=_DECODERS) as image:
            image.load()
    except UnidentifiedImageError:
        raise UnsupportedImage("the upload is not a JPEG, PNG or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(max_pixels) from None
    except DECODE_ERRORS as exc:
        raise DamagedImage(f"the image is truncated or corrupt ({type(exc).__name__})") from None
    return found


def render(
    data: bytes, *, max_pixels: int, specs: tuple[RenditionSpec, ...] = RENDITIONS
) -> list[Rendition]:
    """The renditions of ``specs`` made from the image ``data``, in the order of ``specs``.

    Each spec after the first is made from the first one that was not
    cropped (a smaller image to scale from); that needs its box inside the
    first one's. Raises ``ImageTooLarge`` or Pillow's decoding errors.
    """
    with Image.open(io.BytesIO(data), formats=_DECODERS) as image:
        _check_pixels(*image.size, max_pixels)
        ext = _EXTENSIONS[image.format or ""]
        icc = image.info.get("icc_profile")
        oriented = ImageOps.exif_transpose(image)  # a new, loaded image
    source = _web_mode(oriented, ext)
    made: list[Rendition] = []
    scaled: Image.Image | None = None
    for spec in specs:
        base = scaled if scaled is not None else source
        if spec.crop:
            out = ImageOps.fit(base, (spec.width, spec.height), method=Image.Resampling.LANCZOS)
        else:
            out = base.copy()
            out.thumbnail((spec.width, spec.height), Image.Resampling.LANCZOS)
            scaled = scaled or out
        made.append(Rendition(spec.name, *out.size, ext, _encode(out, ext, icc)))
    return made


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise _too_large(max_pixels)


def _too_large(max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"the image has more than {max_pixels} pixels; send a smaller one", max_pixels=max_pixels
    )


def _web_mode(image: Image.Image, ext: str) -> Image.Image:
    """``image`` in a mode the output format takes and browsers show (8 bits, RGB or grey)."""
    if ext == "jpg":
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    if image.mode == "PA" or "transparency" in image.info:
        return image.convert("RGBA")
    if image.mode.startswith("I"):  # 16- and 32-bit grey: scale to 8 bits
        return image.point(lambda v: v / 256).convert("L")
    return image.convert("L" if image.mode == "1" else "RGB")


def _encode(image: Image.Image, ext: str, icc: bytes | None) -> bytes:
    # Encoders read EXIF and XMP from the save arguments, but some fall back to the
    # image's own info (copied through every resize): empty it so nothing rides along.
    image.info = {}
    extra = {"icc_profile": icc} if icc else {}
    out = io.BytesIO()
    if ext == "jpg":
        image.save(out, "JPEG", quality=85, optimize=True, progressive=True, **extra)
    elif ext == "png":
        image.save(out, "PNG", optimize=False, **extra)
    else:
        image.save(out, "WEBP", quality=80, method=4, **extra)
    return out.getvalue()
