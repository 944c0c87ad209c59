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

``strip_metadata(data, max_pixels=...)`` makes the checks of ``sniff`` and
gives the upload as it is stored and served: upright, with every metadata
block but the ICC colour profile dropped (EXIF carries GPS positions and
camera serials; XMP, comments and PNG text can carry anything). A JPEG is
encoded again, turned by its EXIF Orientation tag, with the upload's own
quantisation tables and chroma subsampling, so its quality and size stay
the upload's; only the first picture of a multi-picture JPEG is kept. A PNG
or WebP is rewritten chunk by chunk, losslessly: only the chunks that make
the picture and its colours are kept. One whose EXIF says to turn it is
encoded again, turned, instead.

``render(data, max_pixels=...)`` makes the renditions of ``RENDITIONS``:
oriented by the EXIF Orientation tag first, every metadata block but the
ICC colour profile dropped, encoded in the original's format.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from apps.tourney.media_store import CONTENT_TYPES
from tenfold import BadRequest, ProblemError

__all__ = [
    "DECODE_ERRORS",
    "RENDITIONS",
    "DamagedImage",
    "ImageTooLarge",
    "Original",
    "Rendition",
    "RenditionSpec",
    "Sniffed",
    "UnsupportedImage",
    "render",
    "sniff",
    "strip_metadata",
]

#: Pillow's format names, and the key extension each is stored under. A JPEG with
#: extra pictures (phones write them) opens as MPO; its first picture is the photo.
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
_DECODERS = ("JPEG", "PNG", "WEBP")
#: EXIF Orientation values that ask for the picture to be turned or flipped (1 is upright).
_TURNED = range(2, 9)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The PNG chunks that make the picture and its colours. Text (tEXt, zTXt, iTXt: XMP
#: lives there), eXIf, tIME, APNG frames and private chunks are dropped.
_PNG_KEPT = frozenset(
    (
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"iCCP",
        b"sBIT",
        b"cICP",
    )
)
#: The WebP chunks that make the picture, its animation and its colours (EXIF, XMP and
#: unknown chunks are dropped), and the VP8X flags announcing the dropped EXIF and XMP.
_WEBP_KEPT = frozenset((b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"))
_VP8X_METADATA = 0x08 | 0x04
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


@dataclass(frozen=True, slots=True)
class Original:
    """An upload as it is stored: upright, without metadata; ``width`` x ``height`` upright."""

    ext: str
    width: int
    height: int
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


def sniff(data: bytes, *, max_pixels: int) -> Sniffed:
    """What ``data`` is; ``UnsupportedImage``, ``DamagedImage`` or ``ImageTooLarge`` if refused."""
    found, image = _decoded(data, max_pixels)
    image.close()
    return found


def strip_metadata(data: bytes, *, max_pixels: int) -> Original:
    """``data`` upright and without metadata (see the module docstring), refused as ``sniff``
    refuses it."""
    found, image = _decoded(data, max_pixels)
    with image, _refusals(max_pixels):
        turned = image.getexif().get(ExifTags.Base.Orientation, 1) in _TURNED
        if found.ext == "jpg" or turned:
            lossless = found.ext == "webp" and _lossless_webp(data)
            return _encoded_upright(image, found.ext, turned=turned, lossless=lossless)
        rewrite = _png_without_metadata if found.ext == "png" else _webp_without_metadata
        return Original(found.ext, found.width, found.height, rewrite(data))


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


def _decoded(data: bytes, max_pixels: int) -> tuple[Sniffed, Image.Image]:
    """What ``data`` is and its decoded image (the caller closes it), or the refusal."""
    with _refusals(max_pixels):
        with Image.open(io.BytesIO(data), formats=_DECODERS) as image:
            found = Sniffed(_EXTENSIONS[image.format or ""], *image.size)
            _check_pixels(found.width, found.height, max_pixels)
            image.verify()
        # verify() leaves the image unusable and skips the pixel data of some formats.
        image = Image.open(io.BytesIO(data), formats=_DECODERS)
        try:
            image.load()
        except BaseException:
            image.close()
            raise
    return found, image


@contextmanager
def _refusals(max_pixels: int) -> Iterator[None]:
    """Pillow's errors on an upload, as the problems the client is answered with."""
    try:
        yield
    except UnidentifiedImageError:
        raise UnsupportedImage("the upload is not a JPEG, PNG or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(max_pixels) from None
    except DECODE_ERRORS as exc:
        raise DamagedImage(f"the image is truncated or corrupt ({type(exc).__name__})") from None


def _encoded_upright(image: Image.Image, ext: str, *, turned: bool, lossless: bool) -> Original:
    """``image`` (``turned`` by its EXIF orientation) encoded with its colour profile only."""
    options: dict[str, Any] = {}
    if icc := image.info.get("icc_profile"):
        options["icc_profile"] = icc
    if ext == "jpg":
        # The upload's own tables and subsampling: a fixed quality would bloat a rough upload
        # and coarsen a fine one; these keep its quality and size.
        options["qtables"] = image.quantization  # type: ignore[attr-defined]
        options["subsampling"] = JpegImagePlugin.get_sampling(image)
        options["progressive"] = bool(image.info.get("progressive"))
    elif ext == "png" and "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    elif ext == "webp":
        options.update({"lossless": True} if lossless else {"quality": 90})
    upright = ImageOps.exif_transpose(image) if turned else image
    # As in _encode: some encoders fall back to the image's own info (the JPEG comment).
    upright.info = {}
    out = io.BytesIO()
    upright.save(out, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[ext], **options)
    return Original(ext, *upright.size, out.getvalue())


def _png_without_metadata(data: bytes) -> bytes:
    """The PNG ``data`` with only the chunks of ``_PNG_KEPT``, up to IEND (nothing after)."""
    kept, pos = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, end = data[pos + 4 : pos + 8], pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            break
        if kind in _PNG_KEPT:
            kept.append(data[pos:end])
        if kind == b"IEND":
            return b"".join(kept)
        pos = end
    raise DamagedImage("the PNG ends inside a chunk or before its IEND chunk")


def _webp_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (fourcc, payload) of each top-level chunk of the WebP ``data``."""
    (size,) = struct.unpack_from("<I", data, 4)
    end, pos = min(len(data), 8 + size), 12  # "RIFF", size, "WEBP", then the chunks
    while pos + 8 <= end:
        (length,) = struct.unpack_from("<I", data, pos + 4)
        if pos + 8 + length > end:
            raise DamagedImage("the WebP ends inside a chunk")
        yield data[pos : pos + 4], data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)  # payloads are padded to an even length


def _webp_without_metadata(data: bytes) -> bytes:
    """The WebP ``data`` with only the chunks of ``_WEBP_KEPT``, its VP8X flags to match."""
    body = bytearray(b"WEBP")
    for kind, payload in _webp_chunks(data):
        if kind not in _WEBP_KEPT:
            continue
        if kind == b"VP8X":
            payload = bytes([payload[0] & ~_VP8X_METADATA]) + payload[1:]
        body += kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + bytes(body)


def _lossless_webp(data: bytes) -> bool:
    """Whether the WebP ``data`` is one lossless (VP8L) picture, to be encoded losslessly again."""
    kinds = {kind for kind, _ in _webp_chunks(data)}
    return b"VP8L" in kinds and b"VP8 " not in kinds


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
