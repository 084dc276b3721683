"""Head metrics on a tiny model trained multi-task (VQA + caption) on three solid-colour images."""

import pytest
import torch
from PIL import Image

from training.factory import create_model
from training.heads import answer_questions, attach_heads, generate_captions
from training.heads.evaluate import caption_scores, colour_shape_accuracy, vqa_accuracy
from training.heads.fit import train_heads
from training.heads.tasks import CaptionTask, QAExample, VQATask
from training.tasks import Pair

SCENES = {
    "red": ("circle", (220, 30, 30)),
    "blue": ("square", (30, 30, 220)),
    "green": ("triangle", (30, 200, 30)),
}


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    images = {c: Image.new("RGB", (32, 32), rgb) for c, (_, rgb) in SCENES.items()}
    qa = [QAExample(c, images[c], "what color is it?", c, "color") for c in SCENES]
    qa += [QAExample(c, images[c], "what shape is it?", s, "shape") for c, (s, _) in SCENES.items()]
    pairs = [Pair(c, images[c], [f"there is a {c} {s} here"]) for c, (s, _) in SCENES.items()]
    vqa, cap = VQATask(qa, batch_size=6), CaptionTask(pairs, batch_size=3, weight=0.5)
    model = create_model("tiny-clip")
    attach_heads(model, {"vqa": vqa.head_config("early", hidden=32, dropout=0.0),
                         "caption": cap.head_config(width=64, layers=1, max_len=8, dropout=0.0)})  # fmt: skip
    fit = train_heads(model, [vqa, cap], epochs=150, lr=3e-3, progress=False)
    yield model, qa, pairs, fit


def test_multitask_training_reports_each_loss(trained):
    *_, fit = trained
    assert fit["loss/vqa"] < 0.05 and fit["loss/caption"] < 0.05


def test_vqa_accuracy_matches_per_question_answers(trained):
    model, qa, _, _ = trained
    wrong = [QAExample(e.key, e.image, e.question, "red", e.type) for e in qa]  # right only for red/colour
    pix = torch.stack([model.preprocess(e.image) for e in qa])
    predicted = [a[0][0] for a in answer_questions(model, pix, [e.question for e in qa], k=1)]
    for examples in (qa, wrong):
        hits = [p == e.answer for p, e in zip(predicted, examples, strict=True)]
        got = vqa_accuracy(model, examples, batch_size=4)
        assert got["vqa/accuracy"] == pytest.approx(sum(hits) / len(hits))
        assert got["vqa/accuracy/color"] == pytest.approx(sum(hits[:3]) / 3)
        assert got["vqa/accuracy/shape"] == pytest.approx(sum(hits[3:]) / 3)
        assert got["vqa/questions"] == 6
    assert vqa_accuracy(model, wrong)["vqa/accuracy"] == pytest.approx(1 / 6)


def test_caption_metrics_of_memorised_captions(trained):
    model, _, pairs, _ = trained
    pix = torch.stack([model.preprocess(p.image) for p in pairs])
    assert [c[0][0] for c in generate_captions(model, pix)] == [p.captions[0] for p in pairs]
    scores = caption_scores(model, pairs)
    assert scores["caption/bleu4"] == pytest.approx(1.0)
    assert scores["caption/cider"] == pytest.approx(10.0)


def test_colour_shape_accuracy_counts_exact_matches(trained):
    model, _, pairs, _ = trained
    truth = [("red", "circle"), ("blue", "circle"), ("green", "triangle")]  # the second is deliberately wrong
    got = colour_shape_accuracy(
        model, pairs, truth, colours=tuple(SCENES), shapes=("circle", "square", "triangle")
    )
    assert got == {"caption/color_shape_accuracy": pytest.approx(2 / 3), "caption/images": 3}
