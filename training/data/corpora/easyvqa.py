"""easy-vqa: the `easy_vqa` package's 64x64 shape images with their QA pairs (official train/test).

Each QA pair gets its question family as QA.type: "color", "shape" or "yes-no". The caption
"a <color> <shape>" is derived from the answers (and the colours or shapes that questions name);
when the questions fix only one of the two it is "a <color> shape" or "a <shape>".
"""

import re
import shutil
from functools import cache
from pathlib import Path

from training.atomic import atomic_path
from training.data.corpora.builder import MEDIA, BuildReport, build
from training.data.manifest import QA, Item, split_for

COLORS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
VAL_FRACTION = 0.1  # carved from the official train split by a hash of the id
_WORD = re.compile(r"[a-z]+")


def question_type(question: str, answer: str) -> str:
    """The question family: "yes-no", "color" or "shape"."""
    if answer in ("yes", "no"):
        return "yes-no"
    return "color" if answer in COLORS else "shape"


def describe(qa: list[QA]) -> tuple[str | None, str | None]:
    """(color, shape) of the one shape in the image, as far as the QA pairs fix them.

    An answer fixes its attribute; a question naming a colour or shape fixes it too, except a yes-no
    question, which fixes it only when it asserts presence ("is there a red shape?" yes, or
    "is there not a red shape?" no).
    """
    color = shape = None
    for p in qa:
        words = set(_WORD.findall(p.question))
        named_color = next((c for c in COLORS if c in words), None)
        named_shape = next((s for s in SHAPES if s in words), None)
        if p.type == "yes-no":
            negated = bool(words & {"not", "no"})
            if (p.answer == "yes") != negated:
                color, shape = named_color or color, named_shape or shape
            continue
        color = p.answer if p.type == "color" else named_color or color
        shape = p.answer if p.type == "shape" else named_shape or shape
    return color, shape


def caption(color: str | None, shape: str | None) -> str | None:
    if color and shape:
        return f"a {color} {shape}"
    if color:
        return f"a {color} shape"
    return f"a {shape}" if shape else None


@cache
def load_split(split: str) -> tuple[dict[int, str], dict[int, list[QA]]]:
    """(image id -> png path, image id -> QA pairs) of an official split; cached per process."""
    import easy_vqa

    if split == "train":
        paths, (questions, answers, ids) = easy_vqa.get_train_image_paths(), easy_vqa.get_train_questions()
    else:
        paths, (questions, answers, ids) = easy_vqa.get_test_image_paths(), easy_vqa.get_test_questions()
    qa: dict[int, list[QA]] = {}
    for q, a, i in zip(questions, answers, ids, strict=True):
        qa.setdefault(int(i), []).append(QA(question=q, answer=a, type=question_type(q, a)))
    return {int(k): v for k, v in paths.items()}, qa


def make_item(key: str, out_dir: Path) -> Item:
    """key "train/0042" -> media/train/0042.png (copied) and its Item with QA pairs."""
    split, index = key.split("/")
    paths, qa = load_split(split)
    rel = Path(MEDIA) / f"{key}.png"
    with atomic_path(out_dir / rel) as tmp:
        shutil.copyfile(paths[int(index)], tmp)
    pairs = qa.get(int(index), [])
    color, shape = describe(pairs)
    text = caption(color, shape)
    item_id = f"easy-vqa/{key}"
    return Item(
        id=item_id,
        path=rel.as_posix(),
        captions=[text] if text else [],
        split="test" if split == "test" else split_for(item_id, val=VAL_FRACTION, test=0.0),
        meta={"color": color, "shape": shape},
        qa=pairs,
    )


def available() -> str | None:
    try:
        import easy_vqa  # noqa: F401
    except ImportError:
        return "the easy-vqa package is not installed (pip install easy-vqa)"
    return None


def prepare(out_dir: Path, limit: int | None = None, workers: int = 1) -> BuildReport:
    """Copies the images of both official splits and attaches their QA pairs (resumable)."""
    ids = {split: sorted(load_split(split)[0]) for split in ("train", "test")}  # loaded before workers fork
    # Interleaved (train/0000, test/0000, ...), so that a limited build still has a test split.
    keys = sorted((f"{s}/{i:04d}" for s, n in ids.items() for i in n), key=lambda k: (k[-4:], k))
    return build("easy-vqa", out_dir, keys, make_item, limit=limit, workers=workers)
