"""The question router (training/questions.py) on a table of questions."""

import pytest

from training.questions import Question, parse_question


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("what animal is this?", "kind", "animal"),
        ("What fruit is shown?", "kind", "fruit"),
        ("which vehicle is in the picture?", "kind", "vehicle"),
        ("what kind of dog is this", "kind", "dog"),
        ("what objects are these?", "kind", "objects"),
        ("what is this?", "kind", None),
        ("what colour is the car?", "colour", "car"),
        ("What color are the trees?", "colour", "trees"),
        ("what is the color of the shape?", "colour", "shape"),
        ("is there a dog?", "presence", "dog"),
        ("is there grass in the image?", "presence", "grass"),
        ("does the image contain a circle?", "presence", "circle"),
        ("is this a cat?", "identity", "cat"),
        ("is it an orange?", "identity", "orange"),
        ("why is the sky blue?", "other", None),
        ("how many coins are there?", "other", None),
    ],
)
def test_router(text, kind, target):
    assert parse_question(text) == Question(kind, target)
