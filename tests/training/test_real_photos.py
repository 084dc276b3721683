"""The real pretrained towers (EfficientNet-Lite0 ImageNet + MiniLM, untrained heads: the default
architecture, built here from the installed weight packages) on three skimage photos."""

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    import skimage.data
    from PIL import Image

    from training.factory import create_model
    from training.understand import image_features

    model = create_model("lit-effnet-minilm").eval()
    photos = {n: Image.fromarray(getattr(skimage.data, n)()) for n in ("chelsea", "rocket", "coffee")}
    pix = torch.stack([model.preprocess(im) for im in photos.values()])
    return model, photos, dict(zip(photos, image_features(model, pix), strict=True))


def test_the_cat_is_captioned_and_answered_as_a_cat(real):
    from training.understand import Calibration, answer_question, caption_image

    model, photos, feats = real
    cal = Calibration.from_card({})  # no domains: the model has no trained heads either
    cap = caption_image(model, feats["chelsea"], cal)[0]
    assert cap.method == "concept" and "cat" in cap.text.split(), cap
    ans = answer_question(model, feats["chelsea"], photos["chelsea"], "what animal is this?", cal)[0]
    assert (ans.text, ans.method, ans.unsure) == ("cat", "kind", False)


def test_a_rocket_is_found_by_a_rocket(real):
    model, photos, feats = real
    emb = torch.stack([f.embedding for f in feats.values()])  # (3, D)
    query = model.embed_texts(["a rocket"])[0]
    assert list(photos)[int((emb @ query).argmax())] == "rocket"


def test_no_dog_in_the_cat_photo(real):
    """The tower's 118 dog classes hold almost nothing on the cat photo, far under what each photo gives
    its own thing, so a threshold fitted on those photos answers "is there a dog?" no from the classes,
    while "is there a cat?" is not refused by them."""
    from training.evaluate import YesNo
    from training.understand import Calibration, absent_threshold, answer_question, class_share

    model, photos, feats = real
    own = {"chelsea": "cat", "rocket": "rocket", "coffee": "coffee"}
    cut = absent_threshold([YesNo(n, 0.0, class_share(model, feats[n], t), True) for n, t in own.items()])
    cal = Calibration(absent_share=cut)
    dog = answer_question(model, feats["chelsea"], photos["chelsea"], "is there a dog?", cal)[0]
    assert (dog.text, dog.method, dog.unsure) == ("no", "classes", False), (dog, cut)
    cat = answer_question(model, feats["chelsea"], photos["chelsea"], "is there a cat?", cal)[0]
    assert cat.method == "zero-shot", (cat, cut)
