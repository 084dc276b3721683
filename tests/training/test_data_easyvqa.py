"""easy-vqa: question families, captions derived from QA pairs, and the real package on a few images."""

from collections import Counter

import easy_vqa

from training.data.corpora import easyvqa
from training.data.manifest import QA, load_manifest, media_path


def qa(question: str, answer: str) -> QA:
    return QA(question=question, answer=answer, type=easyvqa.question_type(question, answer))


def test_question_types():
    assert easyvqa.question_type("is there a red shape?", "no") == "yes-no"
    assert easyvqa.question_type("what color is the circle?", "teal") == "color"
    assert easyvqa.question_type("what is the blue shape?", "triangle") == "shape"


def test_describe_from_answers_and_named_attributes():
    assert easyvqa.describe([qa("what is the blue shape?", "circle")]) == ("blue", "circle")
    assert easyvqa.describe([qa("what color is the triangle?", "red")]) == ("red", "triangle")
    # presence asserted: fixes the attribute; absence says nothing
    assert easyvqa.describe([qa("is there a green shape?", "yes")]) == ("green", None)
    assert easyvqa.describe([qa("is there not a circle?", "no")]) == (None, "circle")
    assert easyvqa.describe([qa("is no gray shape present?", "yes"), qa("is there a rectangle?", "no")]) == (
        None,
        None,
    )
    assert easyvqa.caption("blue", "circle") == "a blue circle"
    assert easyvqa.caption(None, "circle") == "a circle"
    assert easyvqa.caption(None, None) is None


def test_prepare_real_package_sample(tmp_path):
    report = easyvqa.prepare(tmp_path, limit=40)
    manifest = tmp_path / "manifest.jsonl"
    items = load_manifest(manifest)
    assert report.total == 40 and report.counts["test"] == 20
    # the reference: the package's own QA lists, per image
    ref = {}
    for split, (qs, answers, ids) in (
        ("train", easy_vqa.get_train_questions()),
        ("test", easy_vqa.get_test_questions()),
    ):
        for q, a, i in zip(qs, answers, ids, strict=True):
            ref.setdefault(f"easy-vqa/{split}/{i:04d}", []).append((q, a))
    assert report.qa == sum(len(ref[it.id]) for it in items)
    for it in items:
        assert [(p.question, p.answer) for p in it.qa] == ref[it.id]
        colours = {p.answer for p in it.qa if p.type == "color"}
        shapes = {p.answer for p in it.qa if p.type == "shape"}
        assert colours <= {it.meta["color"]} and shapes <= {it.meta["shape"]}
        if it.meta["color"] and it.meta["shape"]:
            assert it.captions == [f"a {it.meta['color']} {it.meta['shape']}"]
        assert media_path(manifest, it).stat().st_size > 0
    assert Counter(p.type for it in items for p in it.qa).keys() == {"yes-no", "color", "shape"}
