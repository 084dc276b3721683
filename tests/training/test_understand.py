"""The solvers of training/understand.py on the tiny LiT model (classes cat, dog, car, tree, house, boat):
thresholds come from the card, the router picks the solver, answers match brute-force references."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from training.understand import Calibration, answer_question, caption_image, image_features, is_junk


@pytest.fixture(scope="module")
def tiny():
    from training.factory import create_model

    torch.manual_seed(0)
    model = create_model("tiny-lit").eval()
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    feat = image_features(model, torch.stack([model.preprocess(image)]))[0]
    return model, image, feat


def test_one_forward_gives_what_the_encoders_give(tiny):
    model, image, feat = tiny
    pix = torch.stack([model.preprocess(image)])
    with torch.no_grad():
        torch.testing.assert_close(feat.embedding, model.encode_image(pix, normalize=True)[0])
        torch.testing.assert_close(feat.tokens, model.image_tokens(pix)[0])
        torch.testing.assert_close(feat.probs, model.image_net.logits(model.image_tower(pix)).softmax(-1)[0])


def test_yes_no_threshold_is_read_from_the_card(tiny):
    model, image, feat = tiny
    from training.understand import yes_no_scores

    z = float(yes_no_scores(model, feat.embedding[None], ["cat"])[0])
    far = {"centroid": (-F.normalize(feat.pooled, dim=0)).tolist(), "min_cos": 0.5}  # so: a photo
    for yes_z, want in ((z - 0.1, "yes"), (z + 0.1, "no")):
        cal = Calibration.from_card({"understanding": {"yes_z": yes_z, "domains": {"openclipart": far}}})
        got = answer_question(model, feat, image, "is there a cat?", cal)[0]
        assert (got.text, got.method, got.unsure) == (want, "zero-shot", False)
    got = answer_question(model, feat, image, "is this a cat?", Calibration.from_card({}))[0]
    assert got.unsure  # no calibration: a guess, flagged


def test_a_thing_whose_classes_hold_too_little_probability_is_absent(tiny):
    """class_share: the classes' probability over a uniform guess's; under the card's absent_share the
    answer is "no" from the classes, above it the zero-shot score decides."""
    from training.understand import class_share

    model, image, feat = tiny
    p = dict(zip(model.image_net.classes, feat.probs.tolist(), strict=True))
    share = class_share(model, feat, "dog")
    assert share == pytest.approx(p["dog"] * len(p))
    assert class_share(model, feat, "animal") == pytest.approx((p["cat"] + p["dog"]) * len(p) / 2)
    assert class_share(model, feat, "shape") is None and class_share(model, feat, None) is None
    far = {"centroid": (-F.normalize(feat.pooled, dim=0)).tolist(), "min_cos": 0.5}  # so: a photo
    for absent, method in ((share * 1.01, "classes"), (share * 0.99, "zero-shot")):
        u = {"yes_z": -100.0, "absent_share": absent, "domains": {"openclipart": far}}
        got = answer_question(
            model, feat, image, "is there a dog?", Calibration.from_card({"understanding": u})
        )
        assert (got[0].method, got[0].text) == (method, "no" if method == "classes" else "yes")


def test_the_colour_of_a_thing_whose_classes_hold_too_little_is_unsure(tiny):
    """The same rule as "is there a X": under absent_share the colour is named but marked unsure, its
    probability weighed by the chance the thing is there (0.5 at the threshold, less below it)."""
    from training.understand import class_share

    model, image, feat = tiny
    share = class_share(model, feat, "dog")
    far = {"centroid": (-F.normalize(feat.pooled, dim=0)).tolist(), "min_cos": 0.5}  # so: a photo
    sure = Calibration.from_card({"understanding": {"absent_share": share * 0.99, "domains": {"x": far}}})
    absent = Calibration.from_card({"understanding": {"absent_share": share * 2, "domains": {"x": far}}})
    seen = answer_question(model, feat, image, "what colour is the dog?", sure)[0]
    unseen = answer_question(model, feat, image, "what colour is the dog?", absent)[0]
    assert (seen.method, seen.text, seen.unsure) == ("colour", "red", False)
    assert (unseen.method, unseen.text, unseen.unsure) == ("colour", "red", True)
    assert unseen.score == pytest.approx(seen.score * 0.25)
    sky = answer_question(model, feat, image, "what colour is the sky?", absent)[0]  # no classes of sky
    assert not sky.unsure


def test_absent_threshold_keeps_every_yes_with_a_margin():
    from training.evaluate import YesNo
    from training.understand import ABSENT_MARGIN, absent_threshold

    rows = [YesNo("a", 1.0, 0.4, True), YesNo("b", 2.0, 0.03, False), YesNo("c", 0.5, 0.9, True),
            YesNo("d", 0.1, None, True)]  # fmt: skip
    assert absent_threshold(rows) == pytest.approx(ABSENT_MARGIN * 0.4)
    assert absent_threshold([r for r in rows if not r.yes or r.share is None]) is None


def test_kind_answers_the_best_class_under_the_asked_category(tiny):
    model, image, feat = tiny
    names = model.image_net.classes
    p = dict(zip(names, feat.probs.tolist(), strict=True))
    cal = Calibration.from_card({})
    assert answer_question(model, feat, image, "what animal is this?", cal)[0].text == max(
        ("cat", "dog"), key=p.get
    )
    vehicle = answer_question(model, feat, image, "which vehicle is shown?", cal, k=2)
    assert [a.text for a in vehicle] == sorted(("car", "boat"), key=p.get, reverse=True)
    assert vehicle[0].score == pytest.approx(max(p["car"], p["boat"]))
    shape = answer_question(model, feat, image, "what shape is this?", cal)[0]
    assert shape.unsure and shape.method == "kind"  # no class of the tower is a shape


def test_domain_check_sends_its_own_domain_to_the_trained_head(tiny):
    model, image, feat = tiny
    from training.heads import attach_heads

    attach_heads(model, {"vqa": {"answers": ["red", "blue", "yes", "no"], "hidden": 16}})
    try:
        near = {"centroid": F.normalize(feat.pooled, dim=0).tolist(), "min_cos": 0.99}
        cal = Calibration.from_card({"understanding": {"domains": {"easy-vqa": near}}})
        assert cal.domain_of(feat) == "easy-vqa"
        assert (
            answer_question(model, feat, image, "what colour is the shape?", cal)[0].method == "easy-vqa head"
        )
        far = {"centroid": (-F.normalize(feat.pooled, dim=0)).tolist(), "min_cos": 0.5}
        cal = Calibration.from_card({"understanding": {"domains": {"easy-vqa": far}}})
        got = answer_question(model, feat, image, "what colour is the shape?", cal)[0]
        assert (got.method, got.text) == ("colour", "red")
    finally:
        del model.heads


def test_captions_name_their_method_and_skip_junk(tiny):
    model, image, feat = tiny
    from training.concepts import concepts_for

    far = {"centroid": (-F.normalize(feat.pooled, dim=0)).tolist(), "min_cos": 0.5}
    cal = Calibration.from_card({"understanding": {"bank_score": 0.3, "domains": {"openclipart": far}}})
    concept = caption_image(model, feat, cal)[0]
    top = concepts_for(model.image_net.classes)[int(feat.probs.argmax())]
    assert (concept.text, concept.method) == (top.caption(), "concept")
    junk = "part of the flat icon collection wed aug 25 23 29 46 2004"
    assert is_junk(junk) and is_junk("lemon svg theme") and not is_junk("a red fire engine")
    assert is_junk("gramastar") and is_junk("Ragno figo") and not is_junk("a green apple on the table")
    got = caption_image(model, feat, cal, bank=[(junk, 0.9), ("a red fire engine", 0.5)])[0]
    assert (got.text, got.method) == ("a red fire engine", "bank")
    assert caption_image(model, feat, cal, bank=[("a red fire engine", 0.2)])[0].method == "concept"
    # given the picture, a plain one (the fixture is flat red) is named by its colour, not a guess
    plain = caption_image(model, feat, cal, bank=[("a red fire engine", 0.2)], image=image)[0]
    assert (plain.text, plain.method) == ("a plain red picture", "colour")
    textured = Image.effect_noise((40, 40), 60).convert("RGB")
    assert caption_image(model, feat, cal, image=textured)[0].method == "concept"


def test_the_caption_names_the_kind_that_holds_the_most_probability():
    """Two building classes together outweigh the single most probable class: the caption names the
    kind "what is this?" answers, by its most probable class."""
    from types import SimpleNamespace

    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from training.understand import ImageFeatures

    classes = list(IMAGENET_CLASSNAMES)
    model = SimpleNamespace(image_net=SimpleNamespace(classes=classes), heads={})
    probs = torch.full((len(classes),), 0.25 / (len(classes) - 3))
    for name, p in (("solar thermal collector", 0.3), ("library", 0.25), ("planetarium", 0.2)):
        probs[classes.index(name)] = p
    feat = ImageFeatures(torch.zeros(4), torch.zeros(1, 4), torch.zeros(4), probs)
    cap = caption_image(model, feat, Calibration())[0]
    kind = answer_question(model, feat, Image.new("RGB", (8, 8)), "what is this?", Calibration())[0]
    assert (cap.text, cap.method, kind.text) == ("a library, a kind of building", "concept", "building")
    assert cap.score == pytest.approx(0.45, abs=0.01)


def test_calibrate_on_held_out_corpora_writes_what_the_solvers_read(tmp_path, monkeypatch):
    from tests.training.synthetic import make_corpus
    from training.understand import calibrate

    monkeypatch.setenv("XMODAL_HOME", str(tmp_path))
    torch.manual_seed(0)
    from training.factory import create_model

    model = create_model("tiny-lit").eval()
    manifests = {"easy-vqa": make_corpus("easy-vqa"), "openclipart": make_corpus("openclipart", copies=3)}
    got = calibrate(model, manifests, n=24)
    assert set(got["domains"]) == {"easy-vqa", "openclipart"}
    assert all(
        -1 <= d["min_cos"] <= 1 and len(d["centroid"]) == model.image_net.width
        for d in got["domains"].values()
    )
    assert isinstance(got["yes_z"], float) and set(got["calibrated_on"]) >= {"yes_z", "bank_score"}
    cal = Calibration.from_card({"understanding": got})
    assert (cal.yes_z, cal.bank_score) == (got["yes_z"], got["bank_score"])
    assert not Calibration.outdated({"understanding": got})  # every threshold written, None where unfitted
    older = {k: v for k, v in got.items() if k != "absent_share"}  # a card calibrated before absent_share
    assert Calibration.outdated({"understanding": older}) and Calibration.outdated({})


def test_the_colour_of_a_named_object_is_read_where_the_tower_sees_its_classes(tiny):
    """A class activation map: the classifier on each location's token, weighted by the probabilities
    of the classes under the asked word; none for a word without classes or with too little mass."""
    import numpy as np

    from training import understand

    model, image, feat = tiny
    classes = model.image_net.classes
    focus = understand._focus(model, feat, "cat")
    with torch.no_grad():
        scores = model.image_net.logits(feat.tokens)[:, classes.index("cat")]
    want = ((scores - scores.min()) / (scores.max() - scores.min())).reshape(focus.shape).numpy()
    np.testing.assert_allclose(focus, want, atol=1e-5)
    assert focus.shape[0] * focus.shape[1] == len(feat.tokens)
    assert understand._focus(model, feat, "shape") is None  # no class under "shape"
    low = dataclasses.replace(feat, probs=torch.full_like(feat.probs, 1e-3))
    assert understand._focus(model, low, "cat") is None  # the tower does not see a cat there
