"""Collect mode's prompts: characters to copy, interleaved with "invent a new character".

By default the characters to copy are drawn by the Full NS model itself (a fixed
seed, so every run shows the same ones) and rendered as images: no data outside
the package is read. ``pyrochar serve --prompts DIR`` uses the images of DIR
instead (``.png``, ``.jpg``, ``.gif``, ``.bmp``, ``.webp``; each re-encoded as a
PNG of at most 256 px, read once at start). After every ``invent_every`` characters
to copy comes one "invent a new character" prompt.
"""

from __future__ import annotations

import base64
import io
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ..errors import PyrocharError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
MAX_PROMPT_IMAGES = 200  # images read from --prompts DIR
MAX_IMAGE_BYTES = 5 << 20  # bytes of one image file
MAX_IMAGE_PIXELS = 25_000_000  # pixels of one decoded image
IMAGE_SIZE = 256  # px, the largest side of a prompt image
COPY_TEXT = "Copy this character: draw it stroke by stroke, as you would write it."
INVENT_TEXT = ("Invent a new character that could belong to the same alphabet, "
               "and draw it stroke by stroke.")


@dataclass(frozen=True)
class Prompt:
    """One prompt: ``kind`` "copy" (with an ``image`` data: URL) or "invent" (no image)."""

    id: str
    kind: str
    image: str | None
    text: str

    def as_json(self) -> dict:
        return asdict(self)


def png_data_url(img: Image.Image) -> str:
    """An image as a ``data:image/png;base64,...`` URL."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def character_image(polylines, size: int = IMAGE_SIZE, width: int = 6) -> Image.Image:
    """Strokes as motor polylines (k, 2) -> a black-on-white image of the 105 x 105 frame."""
    from ..viz import draw_character

    img = Image.new("RGB", (size, size), "white")
    draw_character(ImageDraw.Draw(img), polylines, (0, 0), size, width=width)
    return img


def interleave(copies: list[Prompt], invent_every: int = 2) -> list[Prompt]:
    """The copy prompts with an "invent" prompt after every ``invent_every`` of them."""
    out, n_invent = [], 0
    for i, p in enumerate(copies, 1):
        out.append(p)
        if i % invent_every == 0:
            n_invent += 1
            out.append(Prompt(f"invent-{n_invent:02d}", "invent", None, INVENT_TEXT))
    if n_invent == 0:
        out.append(Prompt("invent-01", "invent", None, INVENT_TEXT))
    return out


def default_prompts(model, n_copy: int = 4, seed: int = 14, temperature: float = 0.5) -> list[Prompt]:
    """``n_copy`` characters sampled from ``model`` (seeded) to copy, interleaved with
    invent prompts."""
    from ..api import sample

    drawings = sample(model, n_copy, temperature=temperature, seed=seed)
    copies = [Prompt(f"copy-{i:02d}", "copy", png_data_url(character_image(
        [s[:, :2] for s in d.strokes])), COPY_TEXT) for i, d in enumerate(drawings, 1)]
    return interleave(copies)


def _image_prompt(path: Path) -> str:
    """An image file -> a PNG data URL of at most IMAGE_SIZE px; PyrocharError naming it."""
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise PyrocharError(f"--prompts: {path} is larger than {MAX_IMAGE_BYTES >> 20} MB; "
                                "use a smaller image")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise PyrocharError(f"--prompts: {path} has {img.width} x {img.height} pixels, "
                                        f"more than {MAX_IMAGE_PIXELS:,}; use a smaller image")
                img = img.convert("RGBA")
                flat = Image.new("RGBA", img.size, "white")
                flat.alpha_composite(img)
                flat = flat.convert("RGB")
                flat.thumbnail((IMAGE_SIZE, IMAGE_SIZE))
                return png_data_url(flat)
    except (OSError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise PyrocharError(f"--prompts: cannot read the image {path} ({e})") from None


def prompts_from_folder(folder) -> list[Prompt]:
    """The images of ``folder`` (sorted by name) as copy prompts, interleaved with invent ones."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PyrocharError(f"--prompts {folder} is not a folder; give a folder of images")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise PyrocharError(f"--prompts {folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    if len(files) > MAX_PROMPT_IMAGES:
        raise PyrocharError(f"--prompts {folder} holds {len(files)} images; at most "
                            f"{MAX_PROMPT_IMAGES} are accepted")
    copies, seen = [], set()
    for path in files:
        pid = "copy-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-")[:40] or "image")
        while pid in seen:
            pid += "-"
        seen.add(pid)
        copies.append(Prompt(pid, "copy", _image_prompt(path), COPY_TEXT))
    return interleave(copies)
