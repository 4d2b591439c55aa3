"""Reading pictures of characters into the model's 105 x 105 ink frame.

:func:`read_image` reads a file, :func:`image_from_array` an in-memory array; both
return a bool array (105, 105), ``True`` = ink, row = -y and col = x of the motor
space (docs/image_model.md, "Reading images").

Omniglot files
    A 105 x 105 1-bit PNG (PIL mode ``"1"``, ink = pixel value 0) is read exactly as
    it is: no thresholding, cropping or scaling. A (105, 105) bool array likewise.
    One whose "ink" covers more than half the frame is taken as light ink on dark
    paper and inverted.

Any other picture (grey, colour, alpha, any size)
    1. Grey level: a camera picture is turned upright (EXIF orientation), alpha
       is composited onto white paper, colour is converted to luminance (PIL's
       ``"L"``; 16-bit grey keeps its depth), giving ``g`` in [0, 1].
    2. Threshold: Otsu's threshold ``t`` of ``g`` (scikit-image's
       ``threshold_otsu``) splits the pixels into dark (``g <= t``) and light. Ink is
       dark on light paper; when most of the picture's border is dark the picture is
       taken as light ink on dark paper and the classes are swapped (``inverted``).
       A picture of one grey level has no ink (or is all ink, if darker than 0.5).
    3. Crop to the bounding box of the ink, and scale it (PIL's antialiased
       bilinear resize of the ink mask, keeping the aspect ratio) so that its longer
       side is ``TARGET_EXTENT`` = 70 px, about the median extent of the Omniglot
       characters; centred in the frame. A pixel of the frame is ink when at least
       ``INK_FRACTION`` = 0.25 of it is covered by ink (so that thin lines survive
       a large reduction).

Pen width (both kinds)
    The image model's ink is about as wide as Omniglot's pen (ink area over skeleton
    length: 4.8 to 9.1 px, median 5.5, over the 4,060 shared images). A picture
    whose pen is far from it (outside ``PEN_WIDTH`` = 3 to 12 px after scaling) is
    redrawn with Omniglot's pen: its skeleton dilated by a disk of radius
    ``PEN_RADIUS`` = 2 (about 5 px wide). Otherwise refinement shrinks a 1-px line
    to a dot (a thin line cannot hold the model's wide ink). Omniglot's own images
    are never changed by this.

Limits (each a one-line :class:`~pyrochar.errors.PyrocharError`)
    files over ``MAX_FILE_BYTES``, pictures over ``MAX_PIXELS`` pixels (PIL's
    decompression-bomb guard is turned into the same error), missing, unreadable or
    not-an-image files, no ink, all ink.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PyrocharError

__all__ = [
    "IMAGE_SIZE",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "TARGET_EXTENT",
    "INK_FRACTION",
    "ImageReadError",
    "read_image",
    "image_from_array",
    "threshold",
]

IMAGE_SIZE = 105
MAX_FILE_BYTES = 50 * 2**20  # 50 MiB
MAX_PIXELS = 40_000_000  # 40 Mpx (e.g. 8000 x 5000)
TARGET_EXTENT = 70  # px, the longer side of a scaled character
INK_FRACTION = 0.25  # share of a frame pixel that ink must cover after scaling
PEN_WIDTH = (3.0, 12.0)  # px (ink area / skeleton length): a pen outside is redrawn
PEN_RADIUS = 2  # px, the redrawn pen: the skeleton dilated by a disk of this radius

INSTALL_IMAGES = 'reading this picture needs scikit-image: pip install "pyrochar[images]"'


class ImageReadError(PyrocharError):
    """A picture that cannot be read as a character (missing, not an image, too big,
    no ink, all ink)."""


@dataclass
class Thresholded:
    """Ink of a picture at its own size: ``ink`` (H, W) bool, and whether the picture
    was taken as light ink on dark paper."""

    ink: np.ndarray
    inverted: bool


def read_image(path) -> np.ndarray:
    """A picture file (PNG, JPEG, anything PIL reads) -> (105, 105) bool, True = ink."""
    from PIL import Image, UnidentifiedImageError

    path = Path(os.fspath(path))
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path} is not a file; give a PNG or JPEG picture")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageReadError(
            f"{path}: {size:,} bytes is over the {MAX_FILE_BYTES:,}-byte limit for a picture; "
            "give a smaller file"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_pixels(im.size, path)
                im.load()
                array = _array_of(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(
            f"{path}: the picture has too many pixels (over {MAX_PIXELS:,}); give a smaller picture"
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path} is not a picture PIL can read; give a PNG or JPEG") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{path}: cannot read the picture ({e}); give a PNG or JPEG") from None
    return image_from_array(array, name=str(path))


def _check_pixels(size: tuple[int, int], name) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageReadError(
            f"{name}: {w} x {h} pixels is over the {MAX_PIXELS:,}-pixel limit; give a smaller picture"
        )
    if w == 0 or h == 0:
        raise ImageReadError(f"{name}: the picture is empty ({w} x {h} pixels)")


def _array_of(im) -> np.ndarray:
    """A loaded PIL image -> bool (ink) for a 105 x 105 1-bit picture, else float grey in [0, 1].

    Camera pictures are turned upright by their EXIF orientation; 16-bit and 32-bit
    grey pictures keep their depth (0-65535 when any value exceeds 255, else 0-255;
    float pictures as [0, 1])."""
    from PIL import Image, ImageOps

    if im.mode == "1" and im.size == (IMAGE_SIZE, IMAGE_SIZE):
        return ~np.asarray(im, dtype=bool)  # Omniglot: ink is 0
    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I"):  # "I", "I;16", "I;16B"...: 16/32-bit integer grey
        a = np.asarray(im).astype(np.float64)
        return np.clip(a / (65535.0 if a.max(initial=0) > 255 else 255.0), 0.0, 1.0)
    if im.mode == "F":
        return np.clip(np.nan_to_num(np.asarray(im, dtype=np.float64), nan=1.0), 0.0, 1.0)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(paper, rgba)
    grey = np.asarray(im.convert("L"), dtype=np.float64) / 255.0  # (H, W)
    return grey


def image_from_array(a, name: str = "image") -> np.ndarray:
    """An in-memory picture -> (105, 105) bool, True = ink.

    ``a``: a bool array (True = ink; a (105, 105) one is returned as it is, after the
    checks), a 2-D grey array, or an (H, W, 3|4) colour array; integer arrays are
    read as 0-255 (uint16: 0-65535), float arrays as [0, 1] (0 = black). See the
    module docstring for thresholding, cropping and scaling.
    """
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.dtype != bool:
        a = _colour_to_grey(a)
    if a.ndim != 2:
        raise ImageReadError(
            f"{name}: expected a 2-D grey or (H, W, 3|4) colour array, got shape {a.shape}"
        )
    _check_pixels((a.shape[1], a.shape[0]), name)
    if a.dtype == bool:
        ink = a
        if ink.shape == (IMAGE_SIZE, IMAGE_SIZE):
            _check_ink(ink, name)
            if ink.mean() > 0.5:  # light ink on dark paper (an Omniglot picture has < 20 % ink)
                ink = ~ink
                _check_ink(ink, name)
            return with_omniglot_pen(ink.copy())
    else:
        ink = threshold(_grey(a, name), name).ink
    _check_ink(ink, name)
    return with_omniglot_pen(_fit_to_frame(ink, name))


def pen_width(ink: np.ndarray) -> float:
    """The pen's width in px: ink area over the length (pixels) of the ink's skeleton."""
    from skimage.morphology import skeletonize

    return float(ink.sum()) / max(int(skeletonize(ink).sum()), 1)


def with_omniglot_pen(ink: np.ndarray) -> np.ndarray:
    """The ink (105, 105) as it is, or, if its pen width is outside ``PEN_WIDTH``,
    redrawn with Omniglot's pen (the skeleton dilated by a disk of ``PEN_RADIUS``).
    Without scikit-image the ink is returned as it is (Omniglot files need none)."""
    try:
        from skimage.morphology import dilation, disk, skeletonize
    except ImportError:
        return ink
    lo, hi = PEN_WIDTH
    if lo <= pen_width(ink) <= hi:
        return ink
    return dilation(skeletonize(ink), disk(PEN_RADIUS)).astype(bool)


def _grey(a: np.ndarray, name: str) -> np.ndarray:
    """A numeric 2-D array -> float64 grey in [0, 1]."""
    if a.dtype.kind in "ui":
        top = 65535.0 if a.dtype.itemsize >= 2 and a.max(initial=0) > 255 else 255.0
        g = a.astype(np.float64) / top
    elif a.dtype.kind == "f":
        g = a.astype(np.float64)
    else:
        raise ImageReadError(f"{name}: cannot read an array of {a.dtype} as a picture")
    if not np.isfinite(g).all():
        raise ImageReadError(f"{name}: the picture holds NaN or infinite values")
    return np.clip(g, 0.0, 1.0)


def _colour_to_grey(a: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) colour -> (H, W) luminance (ITU-R 601, as PIL's "L"), alpha on white."""
    c = a.astype(np.float64)
    top = 255.0 if a.dtype.kind in "ui" else 1.0
    c = c / top
    rgb = c[..., :3]
    if a.shape[-1] == 4:
        alpha = c[..., 3:4]
        rgb = rgb * alpha + (1.0 - alpha)  # on white paper
    return rgb @ np.array([0.299, 0.587, 0.114])


def threshold(grey: np.ndarray, name: str = "image") -> Thresholded:
    """Grey (H, W) in [0, 1] -> ink by Otsu's threshold, dark ink unless the border is dark."""
    lo, hi = float(grey.min()), float(grey.max())
    if hi - lo < 1.0 / 255.0:  # one grey level: no contrast, no threshold
        ink = np.full(grey.shape, lo < 0.5)
        return Thresholded(ink, False)
    try:
        from skimage.filters import threshold_otsu
    except ImportError:
        raise ImageReadError(f"{name}: {INSTALL_IMAGES}") from None
    t = threshold_otsu(grey)
    dark = grey <= t
    border = np.concatenate([dark[0], dark[-1], dark[1:-1, 0], dark[1:-1, -1]])
    inverted = bool(border.mean() > 0.5)
    return Thresholded(~dark if inverted else dark, inverted)


def _check_ink(ink: np.ndarray, name: str) -> None:
    if not ink.any():
        raise ImageReadError(f"{name}: the picture has no ink (it is blank); give a drawing")
    if ink.all():
        raise ImageReadError(
            f"{name}: the picture is all ink (no paper around the drawing); give a drawing "
            "in dark ink on light paper"
        )


def _fit_to_frame(ink: np.ndarray, name: str) -> np.ndarray:
    """Crop ink (H, W) to its bounding box, scale its longer side to TARGET_EXTENT px,
    centre it in the 105 x 105 frame."""
    from PIL import Image

    rows, cols = np.nonzero(ink)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # (h, w)
    h, w = crop.shape
    factor = TARGET_EXTENT / max(h, w)
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    cover = Image.fromarray(crop.astype(np.float32), mode="F").resize((nw, nh), Image.BILINEAR)
    small = np.asarray(cover) >= INK_FRACTION  # (nh, nw)
    if not small.any():
        raise ImageReadError(
            f"{name}: the ink is too thin to survive scaling to the {IMAGE_SIZE}-px frame; "
            "give a picture with thicker lines or a tighter crop"
        )
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    r0, c0 = (IMAGE_SIZE - nh) // 2, (IMAGE_SIZE - nw) // 2
    out[r0 : r0 + nh, c0 : c0 + nw] = small
    _check_ink(out, name)
    return out
