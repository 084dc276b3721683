"""/v1/classify, /v1/embed/*, /v1/caption, /v1/vqa against direct model calls."""

import io

import pytest
import torch
from PIL import Image

from tests.app.conftest import make_settings, start


def _image(media_dir, i=0):
    return (media_dir / f"img{i}.png").read_bytes()


def test_classify_matches_reference_softmax(client, tiny_model, media_dir):
    labels = ["cat", "dog", "red square"]
    r = client.post(
        "/v1/classify",
        files={"image": ("x.png", _image(media_dir))},
        data={"labels": "cat, dog\nred square,cat"},
    )
    assert r.status_code == 200, r.text
    img = tiny_model.embed_images([Image.open(media_dir / "img0.png")])[0]
    text = tiny_model.embed_texts([f"a photo of a {label}." for label in labels])
    probs = torch.softmax(tiny_model.logit_scale.exp().clamp(max=100) * (text @ img), 0).tolist()
    want = sorted(zip(labels, probs, strict=True), key=lambda lp: -lp[1])
    got = r.json()["labels"]
    assert [g["label"] for g in got] == [w[0] for w in want]
    assert [g["probability"] for g in got] == pytest.approx([w[1] for w in want], abs=1e-5)


@pytest.mark.parametrize(
    ("labels", "words"),
    [("cat", ["labels", "at least 2"]), (" , cat,\n", ["labels", "1 label"]), ("", ["labels"])],
)
def test_classify_needs_two_labels(client, media_dir, labels, words):
    r = client.post("/v1/classify", files={"image": ("x.png", _image(media_dir))}, data={"labels": labels})
    assert r.status_code == 422 and all(w in r.json()["detail"] for w in words)


def test_classify_repeated_labels_count_once(client, media_dir):
    """Two labels given, one distinct: what the schema's pattern (two non-blank parts) admits is answered."""
    r = client.post("/v1/classify", files={"image": ("x.png", _image(media_dir))}, data={"labels": "cat,cat"})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == [{"label": "cat", "probability": pytest.approx(1.0)}]


def test_embed_text_and_image_equal_the_model(client, tiny_model, media_dir):
    r = client.post("/v1/embed/text", json={"texts": ["a cow", "a red square"]}).json()
    assert r["model"] == "tiny-clip" and r["dim"] == 32
    torch.testing.assert_close(
        torch.tensor(r["vectors"]), tiny_model.embed_texts(["a cow", "a red square"]), atol=1e-5, rtol=1e-4
    )
    r = client.post("/v1/embed/image", files={"image": ("x.png", _image(media_dir, 3))}).json()
    ref = tiny_model.embed_images([Image.open(media_dir / "img3.png")])
    torch.testing.assert_close(torch.tensor(r["vectors"]), ref, atol=1e-5, rtol=1e-4)
    assert abs(torch.tensor(r["vectors"][0]).norm().item() - 1) < 1e-5


@pytest.mark.parametrize(
    ("texts", "words"),
    [
        ([], ["texts", "at least one"]),
        (["ok", " "], ["texts[1]", "empty"]),
        (["x" * 1001], ["texts[0]", "1000"]),
        (["a"] * 257, ["texts", "256"]),
    ],
)
def test_embed_text_limits(client, texts, words):
    r = client.post("/v1/embed/text", json={"texts": texts})
    assert r.status_code == 422 and all(w in r.json()["detail"] for w in words), r.text


def test_caption_retrieve_matches_heads_retrieve_captions(client, tiny_model, media_dir):
    from training.heads import retrieve_captions

    r = client.post(
        "/v1/caption", files={"image": ("x.png", _image(media_dir, 1))}, data={"mode": "retrieve", "k": "3"}
    )
    assert r.status_code == 200, r.text
    bank = ["colour 0", "colour 1", "colour 2", "colour 3", "colour 4", "colour 5", "a red then blue clip"]
    ref = retrieve_captions(tiny_model, [Image.open(media_dir / "img1.png")], bank, k=3)[0]
    assert r.json()["mode"] == "retrieve"
    assert [(c["text"], pytest.approx(c["score"], abs=1e-5)) for c in r.json()["captions"]] == ref


def test_heads_missing_is_409_and_bad_fields_422(client, media_dir):
    files = {"image": ("x.png", _image(media_dir))}
    r = client.post("/v1/caption", files=files, data={"mode": "generate"})
    assert r.status_code == 409 and "caption" in r.json()["detail"]
    r = client.post("/v1/vqa", files=files, data={"question": "  "})
    assert r.status_code == 422 and "question" in r.json()["detail"]
    r = client.post("/v1/vqa", files=files, data={"question": "why" * 70})
    assert r.status_code == 422 and "200" in r.json()["detail"]
    r = client.post("/v1/caption", files=files, data={"mode": "dream"})
    assert r.status_code == 422 and "mode" in r.json()["detail"]
    r = client.post("/v1/caption", files=files, data={"mode": "retrieve", "k": "11"})
    assert r.status_code == 422 and "10" in r.json()["detail"]


@pytest.fixture(scope="module")
def heads_model_dir(tmp_path_factory):
    from training.factory import create_model, save_model
    from training.heads import attach_heads, build_vocab

    torch.manual_seed(2)
    heads = {
        "vqa": {"answers": ["red", "blue", "green", "yes", "no"], "hidden": 32},
        "caption": {"vocab": build_vocab(["a red circle", "a blue square"]), "width": 32, "attn_heads": 2},
    }
    out = tmp_path_factory.mktemp("models") / "tiny-heads"
    save_model(attach_heads(create_model("tiny-clip"), heads), out)
    return out


def test_vqa_and_generated_captions_match_the_heads(tmp_path, heads_model_dir, media_dir):
    from training.factory import load_model
    from training.heads import answer_questions, generate_captions

    model = load_model(heads_model_dir)
    image = Image.open(io.BytesIO(_image(media_dir, 2))).convert("RGB")
    with start(make_settings(tmp_path / "home", heads_model_dir)) as c:
        files = {"image": ("x.png", _image(media_dir, 2))}
        r = c.post("/v1/vqa", files=files, data={"question": "what colour is it?", "k": "2"})
        assert r.status_code == 200, r.text
        ref = answer_questions(model, [image], ["what colour is it?"], k=2)[0]
        assert [(a["answer"], pytest.approx(a["probability"], abs=1e-5)) for a in r.json()["answers"]] == ref
        assert r.json()["solver"] == "easy-vqa head"  # an uncalibrated model: its trained heads answer
        for mode in ("generate", "auto"):  # auto: the decoder of an uncalibrated model, junk filtered
            r = c.post("/v1/caption", files=files, data={"k": "2", "mode": mode})
            assert r.status_code == 200, r.text
            ref = generate_captions(model, [image], beam_size=3, max_len=30, k=2)[0]
            got = r.json()["captions"]
            assert [(x["text"], pytest.approx(x["score"], abs=1e-4)) for x in got] == ref
            assert {x["method"] for x in got} == {"decoder"}
        assert c.get("/readyz").status_code == 503  # a model but no index of its own


def test_vqa_without_heads_routes_by_question_and_says_unsure(client, media_dir):
    files = {"image": ("x.png", _image(media_dir))}
    r = client.post("/v1/vqa", files=files, data={"question": "why is it here?"})
    assert r.status_code == 200, r.text
    assert r.json()["unsure"] is True and r.json()["answers"] == [] and r.json()["solver"] == "none"
    r = client.post("/v1/vqa", files=files, data={"question": "what colour is the square?", "k": "2"})
    assert r.json()["solver"] == "colour" and r.json()["unsure"] is False
    assert r.json()["answers"][0]["answer"] == "red"  # img0: red with a cyan corner
    # no calibration in the card: a yes/no answer is a guess, and says so
    r = client.post("/v1/vqa", files=files, data={"question": "is there a dog?"})
    assert r.json()["solver"] == "zero-shot" and r.json()["unsure"] is True
