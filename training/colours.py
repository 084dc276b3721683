"""Colour names for image regions: pixels named with the eleven basic colour terms (Berlin & Kay).

Each pixel of a small thumbnail goes to the nearest basic-colour prototype in CIELAB (perceptually
even, so "nearest" means what a viewer would call closest); the votes are weighted by a centred
Gaussian and by how far a pixel's colour is from the border's (the background), so the main object
outweighs its surroundings. Measured against colour prompts on the dual encoder in BENCHMARKS.md.
"""

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

# sRGB prototypes of the basic colour terms (typical focal colours).
BASIC_COLOURS = {
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "red": (200, 30, 35),
    "orange": (240, 130, 20),
    "yellow": (240, 215, 40),
    "green": (50, 150, 50),
    "blue": (40, 90, 200),
    "purple": (125, 50, 155),
    "pink": (240, 145, 180),
    "brown": (110, 65, 35),
}
# Second prototypes where one point in Lab cannot cover a basic term: saturated screen blue (0, 0, 255)
# lies as close to the purple prototype as to the sky-like blue one.
EXTRA_PROTOTYPES = {"blue": [(30, 40, 230)]}
_CHROMATIC = [n for n in BASIC_COLOURS if n not in ("black", "white", "grey")]
_NAMES = _CHROMATIC + ["black", "grey", "white"]
_PROTOS = [(n, BASIC_COLOURS[n]) for n in _CHROMATIC] + [
    (n, rgb) for n, extra in EXTRA_PROTOTYPES.items() for rgb in extra
]
_LAB = rgb2lab(np.array([[rgb for _, rgb in _PROTOS]], dtype=np.uint8))[0]  # (P, 3)
_PROTO_NAME = np.array([_NAMES.index(n) for n, _ in _PROTOS])  # prototype -> index into _NAMES
THUMB = 64  # pixels a side: colour needs no detail, and 4k pixels cost about a millisecond
# A plain picture: the greyscale photos of the real-photo set (brick, gravel, moon) are one term too, but
# their lightness varies (std 4.9 to 7.7 Lab units on the thumbnail); a flat video frame's is under 1.
PLAIN_SHARE = 0.97
PLAIN_LIGHTNESS_STD = 2.0
GREY_CHROMA = 12  # Lab chroma under which a pixel is black, grey or white (by lightness)
# Where in the picture some things are: "what colour is the sky?" reads the top third.
REGIONS = {"sky": (0.0, 0.34), "clouds": (0.0, 0.34), "grass": (0.66, 1.0), "ground": (0.66, 1.0),
           "floor": (0.66, 1.0), "road": (0.66, 1.0)}  # fmt: skip


def _basic_terms(lab: np.ndarray) -> np.ndarray:
    """(..., 3) Lab -> (...) index into _NAMES: chromatic pixels to the nearest chromatic prototype,
    the rest to black / grey / white by lightness."""
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    nearest = _PROTO_NAME[np.linalg.norm(lab[..., None, :] - _LAB, axis=-1).argmin(-1)]
    achromatic = len(_CHROMATIC) + np.digitize(lab[..., 0], [30, 75])  # black < 30 <= grey < 75 <= white
    return np.where(chroma >= GREY_CHROMA, nearest, achromatic)


def plain_colour(image: Image.Image) -> tuple[str, float] | None:
    """(basic colour term, its pixel share) for a plain picture -- one term over PLAIN_SHARE of the
    pixels and lightness flat within PLAIN_LIGHTNESS_STD (a blank frame, a flat test video) -- else
    None. No object or scene can be named in such a picture, so it is named by its colour."""
    lab = rgb2lab(np.asarray(image.convert("RGB").resize((THUMB, THUMB), Image.BILINEAR)))
    share = np.bincount(_basic_terms(lab).ravel(), minlength=len(_NAMES)) / THUMB**2
    best = int(share.argmax())
    if share[best] < PLAIN_SHARE or lab[..., 0].std() > PLAIN_LIGHTNESS_STD:
        return None
    return _NAMES[best], float(share[best])


def colour_names(image: Image.Image, target: str | None = None) -> list[tuple[str, float]]:
    """Basic colour terms of the main object (or of `target` when its place is known, e.g. the sky),
    with their vote shares, largest first."""
    thumb = image.convert("RGB").resize((THUMB, THUMB), Image.BILINEAR)
    lab = rgb2lab(np.asarray(thumb))  # (T, T, 3)
    yy, xx = np.mgrid[0:THUMB, 0:THUMB] / (THUMB - 1)
    if target in REGIONS:
        top, bottom = REGIONS[target]
        weight = ((yy >= top) & (yy <= bottom)).astype(float)
    else:
        weight = np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / (2 * 0.25**2))
        border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]).mean(0)
        # pixels like the background count a fifth; differences under ~10 Lab units are "the same"
        weight *= np.clip(np.linalg.norm(lab - border, axis=-1) / 10, 0.2, 1.0)
        # a viewer names an object by its vivid parts, not its shading: votes grow with chroma
        weight *= 1 + np.hypot(lab[..., 1], lab[..., 2]) / GREY_CHROMA
    votes = np.bincount(_basic_terms(lab).ravel(), weights=weight.ravel(), minlength=len(_NAMES))
    votes /= votes.sum()
    return [(_NAMES[i], float(votes[i])) for i in np.argsort(-votes) if votes[i] > 0]
