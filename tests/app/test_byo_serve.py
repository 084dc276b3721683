"""Models users bring, end to end: each reference form indexes a folder of images, serves, and answers
text search and /v1/classify as open_clip / transformers used directly would; hot-swapping between two
references loses no request; a CoCa trained a few steps captions its images through /v1/caption."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from index.cli import main as index_main
from tests.app.conftest import ADMIN, make_settings, start, while_swapping
from tests.byo_models import direct_model

AUTH = {"Authorization": f"Bearer {ADMIN}"}
FORMS = [
    "local-dir vit", "bare dir hftext", "file coca", "file vit .bin", "hf-hub siglip", "hf-hub coca",
    "transformers clip", "transformers siglip",
]  # fmt: skip
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230), "yellow": (240, 220, 20),
           "black": (20, 20, 20), "white": (250, 250, 250)}  # fmt: skip


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Six images with a caption each (foo.txt beside foo.png)."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (name, rgb) in enumerate(COLOURS.items()):
        pixels = np.clip(np.array(rgb) + rng.integers(-25, 25, (36, 44, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(d / f"img{i}.png")
        (d / f"img{i}.txt").write_text(f"a {name} picture")
    return d


@pytest.fixture
def home_dir():
    """The test's own XMODAL_HOME (tests/conftest.py), where `xmodal index build` writes."""
    return Path(os.environ["XMODAL_HOME"])


def build_index(ref, photo_dir, name="photos"):
    index_main([
        "build", "--model", ref, "--name", name, "--dir", str(photo_dir), "--factory", "Flat",
        "--workers", "0", "--no-progress", "--device", "cpu",
    ])  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
def test_each_form_indexes_serves_searches_and_classifies(hub_offline, form, photo_dir, home_dir):
    ref = hub_offline["refs"][form]
    build_index(ref, photo_dir)
    encode_images, encode_texts, rule = direct_model(ref)
    files = sorted(photo_dir.glob("*.png"))
    gallery = encode_images([Image.open(f) for f in files])  # (6, D)
    queries = ["a red picture", "something blue", "white"]
    with start(make_settings(home_dir, ref)) as c:
        for q, qv in zip(queries, encode_texts(queries), strict=True):
            r = c.post("/v1/search/text", json={"query": q, "k": 6, "index": "photos"})
            assert r.status_code == 200, r.text
            scores = (gallery @ qv).numpy()
            want = [files[i].name for i in np.argsort(-scores, kind="stable")]
            assert [h["id"] for h in r.json()["hits"]] == want
            assert [h["score"] for h in r.json()["hits"]] == pytest.approx(
                sorted(scores, reverse=True), abs=1e-4
            )
        labels = ["red", "green", "blue"]
        r = c.post(
            "/v1/classify",
            files={"image": ("x.png", files[2].read_bytes())},
            data={"labels": ",".join(labels)},
        )
        assert r.status_code == 200, r.text
        probs = rule(
            encode_images([Image.open(files[2])])[0], encode_texts([f"a photo of a {x}." for x in labels])
        )
        got = {lp["label"]: lp["probability"] for lp in r.json()["labels"]}
        assert [got[x] for x in labels] == pytest.approx(probs.tolist(), abs=1e-4)


@pytest.mark.parametrize("form", ["local-dir vit", "hf-hub siglip", "transformers clip"])
def test_a_model_without_a_classifier_captions_and_answers_with_zero_shot_concepts(
    hub_offline, form, photo_dir, home_dir
):
    """No ImageNet head of its own: the caption is the WordNet kind with the most zero-shot ImageNet
    probability by its own rule (softmax or sigmoid), named by its best class, and a kind question answers
    within the asked category."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from training.concepts import category_synsets, concepts_for

    ref = hub_offline["refs"][form]
    encode_images, encode_texts, rule = direct_model(ref)
    image = photo_dir / "img3.png"
    prompts = encode_texts([f"a photo of a {c}." for c in IMAGENET_CLASSNAMES])
    probs = rule(encode_images([Image.open(image)])[0], prompts)
    concepts = concepts_for(list(IMAGENET_CLASSNAMES))
    animals = category_synsets("animal")
    animal = max((c for c in concepts if c.ancestors & animals), key=lambda c: float(probs[c.index]))
    with start(make_settings(home_dir, ref)) as c:
        files = {"image": ("x.png", image.read_bytes())}
        cap = c.post("/v1/caption", files=files)
        vqa = c.post("/v1/vqa", files=files, data={"question": "what animal is this?"})
    assert cap.status_code == 200 and vqa.status_code == 200, (cap.text, vqa.text)
    top = cap.json()["captions"][0]
    mass = {
        b: sum(float(probs[c.index]) for c in concepts if c.basic == b) for b in {c.basic for c in concepts}
    }
    kind = max(mass, key=mass.get)  # the caption names this kind by its most probable class
    best = max((c for c in concepts if c.basic == kind), key=lambda c: float(probs[c.index]))
    assert (top["text"], top["method"]) == (best.caption(), "concept")
    assert vqa.json()["solver"] == "kind"
    # the answer is the animal basic name with the most zero-shot mass (the best class's own is a bound)
    assert vqa.json()["answers"][0]["answer"] in {c.basic for c in concepts if c.ancestors & animals}
    assert vqa.json()["answers"][0]["probability"] >= float(probs[animal.index]) - 1e-4


def test_hot_swap_between_two_references_loses_no_request(hub_offline, photo_dir, home_dir):
    a, b = "hf-hub:org/tiny-vit", "hf-hub:org/tiny-siglip"
    build_index(b, photo_dir)  # v0001 by b
    build_index(a, photo_dir)  # v0002 by a: CURRENT
    with start(make_settings(home_dir, a)) as c:

        def request(i, n):
            return c.post("/v1/search/text", json={"query": f"query {i} {n}", "k": 3})

        activate = "/v1/admin/models/activate"
        codes, swaps = while_swapping(c, request, [
            (activate, {"model": b, "indexes": {"photos": "v0001"}}),
            (activate, {"model": a, "indexes": {"photos": "v0002"}}),
            (activate, {"model": b, "indexes": {"photos": "v0001"}}),
        ], per_client=20)  # fmt: skip
        assert [s.status_code for s in swaps] == [200, 200, 200], [s.text for s in swaps]
        assert len(codes) == 80 and set(codes) == {200}
        assert c.get("/readyz").json()["model"] == b
        # an index embedded by the other reference is refused: fingerprints tell them apart
        r = c.post(
            "/v1/admin/models/activate", json={"model": a, "indexes": {"photos": "v0001"}}, headers=AUTH
        )
        assert r.status_code == 409 and "fingerprint" in r.json()["detail"]


def test_coca_trained_a_few_steps_captions_its_images_through_the_api(tmp_path, photo_dir, home_dir):
    """Trained with open_clip's own forward (teacher-forced caption loss), saved as a snapshot, served:
    /v1/caption runs our beam search over the CoCa decoder, not open_clip's generate."""
    import open_clip
    from safetensors.torch import save_file

    from tests.byo_models import TINY_COCA, write_snapshot

    snap = write_snapshot(tmp_path / "coca", TINY_COCA, seed=0)
    clip, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{snap}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{snap}")
    captions = {"img0.png": "a red apple on a table", "img2.png": "blue sky over the sea",
                "img4.png": "a black cat sleeping"}  # fmt: skip
    pixels = torch.stack([preprocess(Image.open(photo_dir / f).convert("RGB")) for f in captions])
    text = tokenizer(list(captions.values()))
    opt = torch.optim.AdamW(clip.parameters(), lr=5e-3)
    clip.train()
    for _ in range(60):
        out = clip(pixels, text)  # logits (B, T-1, V) for labels text[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            out["logits"].permute(0, 2, 1), out["labels"], ignore_index=0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_file(
        {k: v.detach().contiguous() for k, v in clip.state_dict().items()},
        str(snap / "open_clip_model.safetensors"),
    )
    with start(make_settings(home_dir, str(snap))) as c:
        for name, caption in captions.items():
            r = c.post(
                "/v1/caption", files={"image": (name, (photo_dir / name).read_bytes())}, data={"k": "2"}
            )
            assert r.status_code == 200, r.text
            got = r.json()["captions"]
            assert got[0]["text"] == caption and len(got) == 2 and got[0]["score"] >= got[1]["score"]
