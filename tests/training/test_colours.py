"""Colour naming (training/colours.py) on synthetic images of known colours."""

import pytest
from PIL import Image, ImageDraw

from training.colours import BASIC_COLOURS, colour_names


@pytest.mark.parametrize("name", sorted(BASIC_COLOURS))
def test_a_flat_image_is_named_by_its_colour(name):
    assert colour_names(Image.new("RGB", (50, 40), BASIC_COLOURS[name]))[0][0] == name


@pytest.mark.parametrize(
    ("obj", "background", "want"),
    [((200, 20, 30), (250, 250, 250), "red"), ((30, 60, 210), (60, 150, 60), "blue"),
     ((245, 140, 20), (30, 30, 30), "orange"), ((20, 20, 20), (245, 245, 245), "black")],
)  # fmt: skip
def test_the_main_object_outweighs_its_background(obj, background, want):
    im = Image.new("RGB", (120, 90), background)
    ImageDraw.Draw(im).ellipse((35, 25, 85, 65), fill=obj)  # a centred disc, under a fifth of the image
    assert colour_names(im)[0][0] == want


def test_shades_keep_their_name_and_the_sky_is_read_at_the_top():
    dark_red = Image.new("RGB", (40, 40), (150, 25, 25))
    assert colour_names(dark_red)[0][0] == "red"
    im = Image.new("RGB", (60, 60), (200, 190, 40))  # a yellow building under a blue sky
    ImageDraw.Draw(im).rectangle((0, 0, 59, 17), fill=(60, 120, 220))
    assert colour_names(im, "sky")[0][0] == "blue"
    assert colour_names(im, "building")[0][0] == "yellow"
    shares = [s for _, s in colour_names(im)]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1.0)


def test_saturated_screen_blue_is_blue_not_purple():
    for rgb in [(0, 0, 255), (30, 30, 220)]:
        assert colour_names(Image.new("RGB", (40, 40), rgb))[0][0] == "blue", rgb
    assert colour_names(Image.new("RGB", (40, 40), (128, 0, 128)))[0][0] == "purple"


def test_a_plain_picture_is_told_from_a_flat_toned_photo():
    import numpy as np

    from training.colours import plain_colour

    for name in ("red", "blue", "grey", "black"):
        got = plain_colour(Image.new("RGB", (64, 48), BASIC_COLOURS[name]))
        assert got is not None and got[0] == name and got[1] >= 0.97, name
    # a grey texture (a gravel or moon photo is one colour term, but its lightness varies)
    rng = np.random.default_rng(0)
    texture = np.clip(128 + rng.normal(0, 18, (96, 96, 1)), 0, 255).astype(np.uint8).repeat(3, -1)
    assert plain_colour(Image.fromarray(texture)) is None
    half = Image.new("RGB", (60, 60), BASIC_COLOURS["red"])  # two colours: not plain
    ImageDraw.Draw(half).rectangle((0, 0, 59, 29), fill=BASIC_COLOURS["blue"])
    assert plain_colour(half) is None
