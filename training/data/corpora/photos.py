"""photos: real photographs (and a few scientific images and textures) with hand-written captions.

Sources: skimage.data images that load offline (bundled with scikit-image) and pictures from Debian
`opencv-doc` (/usr/share/doc/opencv-doc/examples/data). Captions were written by looking at each
image. Pairs of views of one scene share a group, so they land in one split.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.corpora.builder import MEDIA, BuildReport, Skip, build, save_image
from training.data.manifest import Item, split_for

OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")


@dataclass(frozen=True)
class Photo:
    source: str  # "skimage:<function>" or "opencv:<file name>"
    caption: str
    kind: str = "photo"  # photo | microscopy | texture | graphic
    group: str = ""  # shared by views of one scene; defaults to the id


PHOTOS = {
    # skimage.data (bundled, offline)
    "astronaut": Photo("skimage:astronaut", "an astronaut in a white spacesuit in front of an american flag"),
    "camera": Photo("skimage:camera", "a black and white photo of a man with a camera on a tripod"),
    "cat": Photo("skimage:chelsea", "a tabby cat sitting and looking to the side"),
    "coffee": Photo("skimage:coffee", "a cup of coffee on a red saucer with a spoon"),
    "coins": Photo("skimage:coins", "old coins on a dark background"),
    "hubble": Photo(
        "skimage:hubble_deep_field", "distant galaxies in deep space seen by the hubble telescope"
    ),
    "moon": Photo("skimage:moon", "the cratered surface of the moon"),
    "rocket": Photo("skimage:rocket", "a rocket on its launch pad at dusk"),
    "retina": Photo("skimage:retina", "a photo of the back of a human eye showing the retina", "microscopy"),
    "clock": Photo("skimage:clock", "a wall clock photographed with motion blur"),
    "motorcycle": Photo("skimage:stereo_motorcycle", "a red motorcycle parked in a garage"),
    "tissue": Photo("skimage:immunohistochemistry", "a microscope image of stained tissue", "microscopy"),
    "cells": Photo("skimage:cell", "a blurry microscope image of a single cell", "microscopy"),
    "brick": Photo("skimage:brick", "a brick wall", "texture"),
    "grass": Photo("skimage:grass", "a close-up of grass", "texture"),
    "gravel": Photo("skimage:gravel", "a close-up of gravel", "texture"),
    "page": Photo("skimage:page", "a scanned page of printed text", "graphic"),
    "horse": Photo("skimage:horse", "the black silhouette of a horse on white", "graphic"),
    "colorwheel": Photo("skimage:colorwheel", "a color wheel of all hues", "graphic"),
    "checkerboard": Photo("skimage:checkerboard", "a black and white checkerboard pattern", "graphic"),
    # opencv-doc examples
    "aerial-city": Photo("opencv:aero1.jpg", "an aerial view of a city by a river", group="aerial"),
    "aerial-town": Photo("opencv:aero3.jpg", "an aerial view of a town and its roads", group="aerial"),
    "aloe": Photo("opencv:aloeL.jpg", "an aloe plant in a pot against a patterned wall"),
    "apple": Photo("opencv:apple.jpg", "a shiny red apple"),
    "baboon": Photo("opencv:baboon.jpg", "the face of a mandrill with a red nose and blue cheeks"),
    "basketball": Photo("opencv:basketball1.png", "a man holding a basketball in an office"),
    "circuit-board": Photo("opencv:board.jpg", "a green circuit board with chips"),
    "cereal-box": Photo("opencv:box.png", "a cardboard box of biscuits", group="box"),
    "cluttered-desk": Photo("opencv:box_in_scene.png", "a box among clutter on a table", group="box"),
    "building": Photo("opencv:building.jpg", "a tall hotel building behind trees"),
    "butterfly": Photo("opencv:butterfly.jpg", "a black and white swallowtail butterfly on a green leaf"),
    "dog": Photo("opencv:chicky_512.png", "a small fluffy dog with its mouth open"),
    "fruits": Photo("opencv:fruits.jpg", "oranges, lemons and a kiwi cut in half"),
    "graffiti": Photo("opencv:graf1.png", "a colourful graffiti painting on a wall"),
    "palace": Photo("opencv:home.jpg", "a yellow palace with a tower under a blue sky"),
    "street": Photo("opencv:leuvenA.jpg", "a cobbled street between old brick houses"),
    "car": Photo("opencv:licenseplate_motion.jpg", "the back of a silver car, blurred by motion"),
    "footballer": Photo("opencv:messi5.jpg", "a footballer kicking a ball on a pitch"),
    "orange": Photo("opencv:orange.jpg", "an orange on a dark background"),
    "squirrel": Photo("opencv:squirrel_cls.jpg", "a squirrel sitting on a tree branch"),
    "starry-night": Photo("opencv:starry_night.jpg", "van gogh's painting the starry night", "graphic"),
    "sweets": Photo("opencv:smarties.png", "colourful round sweets on a white table"),
    "toys": Photo("opencv:rubberwhale1.png", "colourful toys in front of a wooden lattice"),
    "desk-objects": Photo("opencv:stuff.jpg", "a pen, a lighter and a bottle cap on a table"),
    "sudoku": Photo("opencv:sudoku.png", "a sudoku puzzle printed in a newspaper", "graphic"),
    "chessboard-person": Photo("opencv:left01.jpg", "a man holding up a chessboard pattern at a desk"),
    "books": Photo("opencv:left.jpg", "two books standing on a table in a dim room"),
}


def load(photo: Photo, opencv: Path = OPENCV) -> Image.Image:
    """The picture as an RGB PIL image."""
    where, name = photo.source.split(":", 1)
    if where == "skimage":
        import skimage.data

        arr = getattr(skimage.data, name)()
        if isinstance(arr, tuple):  # stereo_motorcycle: (left, right, disparity)
            arr = arr[0]
        if arr.dtype != np.uint8:  # binary masks (horse) and floats
            arr = (arr.astype(np.float64) / max(float(arr.max()), 1e-9) * 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    with Image.open(opencv / name) as img:
        return img.convert("RGB")


def make_item(key: str, out_dir: Path, opencv: Path = OPENCV) -> Item | Skip:
    photo = PHOTOS[key]
    try:
        img = load(photo, opencv)
    except Exception as e:  # a missing optional data file or package: skip that picture, count it
        return Skip("unavailable", f"{photo.source}: {type(e).__name__}: {e}")
    rel = Path(MEDIA) / f"{key}.jpg"
    save_image(img, out_dir / rel, quality=95)
    group = photo.group or key
    return Item(
        id=f"photos/{key}",
        path=rel.as_posix(),
        captions=[photo.caption],
        split=split_for(f"photos/{group}"),
        meta={"source": photo.source, "kind": photo.kind, "group": group, "size": list(img.size)},
    )


def available(opencv: Path = OPENCV) -> str | None:
    if not opencv.is_dir():
        return (
            f"{opencv} is missing (install the Debian package opencv-doc); only skimage photos will be built"
        )
    return None


def prepare(out_dir: Path, limit: int | None = None, workers: int = 1, opencv: Path = OPENCV) -> BuildReport:
    """Writes each curated picture as a JPEG (resumable); sources that do not load are skipped."""
    return build(
        "photos", out_dir, list(PHOTOS), partial(make_item, opencv=opencv), limit=limit, workers=workers
    )
