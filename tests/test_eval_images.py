"""Exact decoding of evaluated images (vton.eval.images): each PIL mode against values worked out by hand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.eval_fixtures import png_header_only
from vton.eval import images
from vton.eval.images import ImageError


def _image(mode: str, array: np.ndarray) -> Image.Image:
    """An image of ``mode`` holding ``array``'s raw values (PIL's fromarray does not reach every mode)."""
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes())


def _palette(mode: str, indices: list[int], colours: list[tuple[int, ...]]) -> Image.Image:
    im = Image.new(mode, (len(indices), 1))
    im.putpalette([c for rgb in colours for c in rgb], "RGB")
    for x, i in enumerate(indices):
        im.putpixel((x, 0), i if mode == "P" else (i, 255))
    return im


RGB_CASES = {
    "1": (Image.fromarray(np.array([[True, False]])), [[255] * 3, [0] * 3]),
    "L": (_image("L", np.array([[0, 7, 255]], np.uint8)), [[0] * 3, [7] * 3, [255] * 3]),
    "P": (_palette("P", [2, 0], [(1, 2, 3), (4, 5, 6), (200, 100, 50)]), [[200, 100, 50], [1, 2, 3]]),
    "PA": (_palette("PA", [1, 2], [(1, 2, 3), (4, 5, 6), (200, 100, 50)]), [[4, 5, 6], [200, 100, 50]]),
    "LA": (_image("LA", np.array([[[9, 255], [250, 255]]], np.uint8)), [[9] * 3, [250] * 3]),
    "RGB": (_image("RGB", np.array([[[1, 2, 3], [250, 0, 7]]], np.uint8)), [[1, 2, 3], [250, 0, 7]]),
    "RGBA": (_image("RGBA", np.array([[[1, 2, 3, 255]]], np.uint8)), [[1, 2, 3]]),
    # 16 bits: the high byte (v >> 8); 257 k (8-bit data stored in 16 bits) gives k back
    **{mode: (_image(mode, np.array([[0, 255, 256, 257 * 128, 32767, 65535]], dtype)),
              [[v] * 3 for v in (0, 0, 1, 128, 127, 255)])
       for mode, dtype in (("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2"))},
    "I": (_image("I", np.array([[0, 128, 255]], "=i4")), [[0] * 3, [128] * 3, [255] * 3]),
    "F": (_image("F", np.array([[0.0, 3.0, 255.0]], "=f4")), [[0] * 3, [3] * 3, [255] * 3]),
    # JFIF: R = Y + 1.402 (Cr-128), G = Y - 0.344136 (Cb-128) - 0.714136 (Cr-128), B = Y + 1.772 (Cb-128), rounded:
    # (100, 50, 200) -> 200.944, 75.415, -38.216; (81, 90, 240) -> 238.024, 14.094, 13.664
    "YCbCr": (_image("YCbCr", np.array([[[100, 50, 200], [81, 90, 240], [16, 128, 128]]], np.uint8)),
              [[201, 75, 0], [238, 14, 14], [16, 16, 16]]),
}


@pytest.mark.parametrize("mode", sorted(RGB_CASES))
def test_every_mode_decodes_to_the_exact_levels(mode: str) -> None:
    im, expected = RGB_CASES[mode]
    assert im.mode == mode
    got = images.rgb(im, "x.png")
    assert got.dtype == np.uint8 and got.shape == (1, len(expected), 3)
    np.testing.assert_array_equal(got[0], np.array(expected, np.uint8))


REFUSED = {
    "RGBA": (_image("RGBA", np.array([[[1, 2, 3, 255], [1, 2, 3, 254]]], np.uint8)), "1 pixels are transparent"),
    "LA": (_image("LA", np.array([[[1, 0]]], np.uint8)), "transparent"),
    "PA": (_palette("PA", [0], [(1, 2, 3)]).copy(), None),
    "CMYK": (_image("CMYK", np.zeros((1, 1, 4), np.uint8)), "colour profile"),
    "I": (_image("I", np.array([[0, 300]], "=i4")), "not integer levels 0..255 (e.g. 300)"),
    "I-negative": (_image("I", np.array([[-1]], "=i4")), "e.g. -1"),
    "F": (_image("F", np.array([[0.5, 1.0]], "=f4")), "e.g. 0.5"),  # a [0, 1] float image is not 8-bit levels
    "F-nan": (_image("F", np.array([[np.nan]], "=f4")), "not integer levels"),
    "La": (_image("La", np.zeros((1, 1, 2), np.uint8)), "mode La is not supported"),
    "RGBa": (_image("RGBa", np.zeros((1, 1, 4), np.uint8)), "mode RGBa is not supported"),
    "RGBX": (_image("RGBX", np.zeros((1, 1, 4), np.uint8)), "mode RGBX"),
    "HSV": (_image("HSV", np.zeros((1, 1, 3), np.uint8)), "mode HSV"),
    "LAB": (_image("LAB", np.zeros((1, 1, 3), np.uint8)), "mode LAB"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_inexact_images_are_refused_naming_the_file(case: str) -> None:
    im, why = REFUSED[case]
    if case == "PA":  # a palette image whose alpha hides a pixel
        im.putpixel((0, 0), (0, 10))
        why = "transparent"
    with pytest.raises(ImageError, match=r"^bad\.png: ") as err:
        images.rgb(im, "bad.png")
    assert why in str(err.value) and "\n" not in str(err.value)


def test_transparency_keys_follow_the_alpha_rule() -> None:
    hidden = _palette("P", [0, 1], [(1, 2, 3), (4, 5, 6)])
    hidden.info["transparency"] = 1
    with pytest.raises(ImageError, match="1 pixels are transparent"):
        images.rgb(hidden, "p.png")
    unused = _palette("P", [0, 0], [(1, 2, 3), (4, 5, 6)])
    unused.info["transparency"] = 1
    np.testing.assert_array_equal(images.rgb(unused, "p.png")[0], [[1, 2, 3]] * 2)
    keyed = _image("L", np.array([[0, 9]], np.uint8))
    keyed.info["transparency"] = 9
    with pytest.raises(ImageError, match="transparency key"):
        images.rgb(keyed, "l.png")


def test_masks_are_grey_and_parse_maps_hold_indices() -> None:
    np.testing.assert_array_equal(images.grey(_image("RGB", np.array([[[7, 7, 7]]], np.uint8)), "m"), [[7]])
    np.testing.assert_array_equal(images.grey(_image("I;16", np.array([[65535, 32767]], "<u2")), "m"), [[255, 127]])
    np.testing.assert_array_equal(images.grey(Image.fromarray(np.array([[True]])), "m"), [[255]])
    with pytest.raises(ImageError, match="^m.png: a mask must be grey"):
        images.grey(_image("RGB", np.array([[[7, 7, 8]]], np.uint8)), "m.png")
    with pytest.raises(ImageError, match="transparent"):
        images.grey(_image("LA", np.array([[[7, 0]]], np.uint8)), "m.png")
    # label indices as stored: a palette's index, not its colour; 16-bit labels without scaling
    np.testing.assert_array_equal(images.labels(_palette("P", [5, 0], [(9, 9, 9)] * 6), "p"), [[5, 0]])
    np.testing.assert_array_equal(images.labels(_image("I;16B", np.array([[5, 261]], ">u2")), "p"), [[5, 261]])
    np.testing.assert_array_equal(images.labels(_image("I", np.array([[7]], "=i4")), "p"), [[7]])
    for mode, shape in (("RGB", (1, 1, 3)), ("LA", (1, 1, 2)), ("F", (1, 1))):
        with pytest.raises(ImageError, match=f"^p.png: a parse map must hold label indices .*got mode {mode}$"):
            images.labels(_image(mode, np.zeros(shape, "=f4" if mode == "F" else np.uint8)), "p.png")


def test_files_decode_exactly_or_are_named(tmp_path: Path) -> None:
    grey16 = np.array([[0, 257 * 3, 65535]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"  # PIL's convert("RGB") makes every non-zero pixel white
    np.testing.assert_array_equal(images.read_image(tmp_path / "g16.png", images.rgb)[0], [[0] * 3, [3] * 3, [255] * 3])
    # PIL's own warning (above Image.MAX_IMAGE_PIXELS) and error (twice that), and our lower limit, all named
    for name, (w, h) in {
        "huge.png": (100_000, 100_000),
        "big.png": (10_000, 10_000),
        "ours.png": (5_000, 4_000),
    }.items():
        with pytest.raises(ImageError, match=rf"^{tmp_path / name}: .*(bomb|pixels)") as err:
            images.read_image(png_header_only(tmp_path / name, w, h), images.rgb)
        assert "\n" not in str(err.value)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), np.uint8)).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:2000])
    with pytest.raises(ImageError, match=rf"^{tmp_path / 'cut.png'}: cannot decode the image: .*truncated"):
        images.read_image(tmp_path / "cut.png", images.rgb)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageError, match=rf"^{tmp_path / 'text.png'}: cannot decode the image: cannot identify"):
        images.read_image(tmp_path / "text.png", images.rgb)
