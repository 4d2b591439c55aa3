"""Reading pictures into the 105 x 105 ink frame (pyrochar.image.io)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyrochar.errors import PyrocharError
from pyrochar.image import io

DATA = Path(__file__).resolve().parent / "data" / "images"
SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "omniglot" / "images_background"


def _ink_of_png(path: Path) -> np.ndarray:
    return ~np.asarray(Image.open(path), dtype=bool)


@pytest.mark.parametrize("name", ["0683_01.png", "0394_01.png"])
def test_committed_omniglot_png_is_read_exactly(name):
    path = DATA / "omniglot" / name
    got = io.read_image(path)
    assert got.dtype == bool and got.shape == (105, 105)
    np.testing.assert_array_equal(got, _ink_of_png(path))
    assert 0 < got.sum() < 105 * 105 // 2


def test_shared_omniglot_png_is_read_exactly():
    paths = sorted(SHARED_IMAGES.glob("Japanese_(katakana)/character01/*.png"))
    if not paths:
        pytest.skip("../shared/omniglot/images_background is absent")
    for path in paths[:3]:
        np.testing.assert_array_equal(io.read_image(path), _ink_of_png(path))


def test_grey_picture_is_thresholded_cropped_and_scaled():
    got = io.read_image(DATA / "grey_t.png")  # a 60 x 90 "T", dark on light
    rows, cols = np.nonzero(got)
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert max(h, w) == io.TARGET_EXTENT  # the longer side (height) scaled to 70 px
    assert abs((rows.min() + rows.max()) / 2 - 52) <= 1  # centred
    assert abs((cols.min() + cols.max()) / 2 - 52) <= 1
    # the T's bar is at the top: the top rows of the ink are wider than the stem
    assert got[rows.min() + 1].sum() > 3 * got[rows.max() - 1].sum()


def test_light_ink_on_dark_paper_is_inverted():
    grey = np.asarray(Image.open(DATA / "inverted_l.png").convert("L"), dtype=np.float64) / 255
    t = io.threshold(grey)
    assert t.inverted
    assert t.ink.mean() < 0.2  # the ink is the thin light L, not the dark paper
    got = io.read_image(DATA / "inverted_l.png")
    # the L: a vertical stem on the left, a foot at the bottom
    rows, cols = np.nonzero(got)
    assert got[rows.max() - 1].sum() > 3 * got[rows.min() + 1].sum()


def test_dark_ink_on_light_paper_is_not_inverted():
    grey = np.ones((40, 40))
    grey[10:30, 18:22] = 0.1
    t = io.threshold(grey)
    assert not t.inverted
    np.testing.assert_array_equal(t.ink, grey < 0.5)


def test_array_inputs_agree_with_files():
    rgb = np.asarray(Image.open(DATA / "inverted_l.png").convert("RGB"))
    np.testing.assert_array_equal(io.image_from_array(rgb), io.read_image(DATA / "inverted_l.png"))
    ink = _ink_of_png(DATA / "omniglot" / "0683_01.png")
    np.testing.assert_array_equal(io.image_from_array(ink), ink)


def _nearly_equal(got: np.ndarray, want: np.ndarray) -> None:
    """The same ink up to a few pixels at its edges (5 percent of the ink)."""
    assert (got != want).sum() <= 0.05 * want.sum()


def test_jpeg_and_16_bit_pictures_read_like_the_png(tmp_path):
    want = io.read_image(DATA / "grey_t.png")
    grey = Image.open(DATA / "grey_t.png")
    grey.convert("RGB").save(tmp_path / "t.jpg", quality=95)
    _nearly_equal(io.read_image(tmp_path / "t.jpg"), want)  # JPEG is lossy
    deep = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)  # 16-bit grey
    assert deep.mode.startswith("I")
    deep.save(tmp_path / "t16.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "t16.png"), want)


def test_exif_orientation_is_applied(tmp_path):
    grey = Image.open(DATA / "grey_t.png")
    turned = grey.transpose(Image.Transpose.ROTATE_90)  # stored on its side...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with "rotate 90 clockwise to view"
    turned.convert("RGB").save(tmp_path / "side.jpg", exif=exif, quality=95)
    _nearly_equal(io.read_image(tmp_path / "side.jpg"), io.read_image(DATA / "grey_t.png"))


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)  # transparent black everywhere...
    rgba[10:40, 20:25] = (0, 0, 0, 255)  # ...but an opaque black bar
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    got = io.read_image(tmp_path / "a.png")
    rows, cols = np.nonzero(got)
    # the bar, not the whole square (scaled to 70 px, then redrawn with Omniglot's pen: its
    # skeleton, a few px shorter, dilated by PEN_RADIUS)
    assert io.TARGET_EXTENT - 12 <= rows.max() - rows.min() + 1 <= io.TARGET_EXTENT
    assert cols.max() - cols.min() + 1 < 20


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((105, 105), dtype=bool), "no ink"),
        (np.ones((105, 105), dtype=bool), "all ink"),
        (np.full((30, 40), 255, dtype=np.uint8), "no ink"),
        (np.zeros((30, 40), dtype=np.uint8), "all ink"),
        (np.full((30, 40), np.nan), "NaN"),
        (np.zeros((3, 4, 5)), "expected a 2-D"),
        (np.zeros((0, 4)), "empty"),
    ],
)
def test_bad_arrays_give_one_clear_line(array, message):
    with pytest.raises(PyrocharError, match=message) as e:
        io.image_from_array(array)
    assert "\n" not in str(e.value)


def test_missing_folder_and_non_image_files(tmp_path):
    with pytest.raises(PyrocharError, match="no such file"):
        io.read_image(tmp_path / "nope.png")
    with pytest.raises(PyrocharError, match="not a file"):
        io.read_image(tmp_path)
    (tmp_path / "x.png").write_text("this is not a picture")
    with pytest.raises(PyrocharError, match="not a picture"):
        io.read_image(tmp_path / "x.png")
    good = (DATA / "grey_t.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(PyrocharError, match="cannot read|not a picture"):
        io.read_image(tmp_path / "cut.png")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7000, 100_000])  # over our limit; over PIL's bomb guard
def test_huge_pictures_are_refused_before_decoding(tmp_path, side):
    (tmp_path / "bomb.png").write_bytes(_png_header_only(side, side))
    with pytest.raises(PyrocharError, match="too many pixels|pixel limit") as e:
        io.read_image(tmp_path / "bomb.png")
    assert "\n" not in str(e.value)


def test_huge_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "MAX_FILE_BYTES", 100)
    with pytest.raises(PyrocharError, match="byte limit"):
        io.read_image(DATA / "omniglot" / "0394_01.png")  # 271 bytes


def test_a_thin_or_thick_pen_is_redrawn_with_omniglots_and_parses_into_its_strokes():
    """A 1-px line (an Omniglot-format file) and a thick X are redrawn with a ~5 px pen;
    the thin line then parses into one long stroke (refinement used to shrink it to a dot)."""
    import pyrochar
    from pyrochar.image.io import PEN_WIDTH, pen_width

    thin = np.zeros((105, 105), dtype=bool)
    idx = np.arange(10, 96)
    thin[idx, idx] = True
    thick = np.ones((400, 400))  # white paper, a black X with a 40-px pen
    for i in range(400):
        thick[max(0, i - 20) : i + 20, i] = 0.0
        thick[max(0, i - 20) : i + 20, 399 - i] = 0.0
    for picture in (thin, thick):
        ink = io.image_from_array(picture)
        assert PEN_WIDTH[0] <= pen_width(ink) <= PEN_WIDTH[1]
    best = pyrochar.parse(pyrochar.load_pretrained("full-ns"), io.image_from_array(thin), k=1,
                          n_candidates=100, n_refine=2, steps=60)[0]  # fmt: skip
    token = np.concatenate(best.token_strokes) * 20  # px
    assert np.ptp(token[:, 0]) > 60 and np.ptp(token[:, 1]) > 60  # still a diagonal across the frame


def test_omniglot_images_keep_their_pen():
    """The committed Omniglot files are read exactly (their pen is Omniglot's)."""
    files = sorted((DATA / "omniglot").glob("*.png"))
    assert files
    for f in files:
        np.testing.assert_array_equal(io.read_image(f), ~np.asarray(Image.open(f), dtype=bool))


def test_an_inverted_omniglot_file_is_read_as_light_ink_on_dark_paper(tmp_path):
    f = sorted((DATA / "omniglot").glob("*.png"))[0]
    ink = io.read_image(f)
    Image.fromarray(ink).convert("1").save(tmp_path / "inverted.png")  # white ink (1) on black (0)
    np.testing.assert_array_equal(io.read_image(tmp_path / "inverted.png"), ink)
