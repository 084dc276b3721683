"""Evaluation: recall and prompt accuracy against brute-force references; `xmodal eval` on a tiny model."""

import pytest
import torch
import torch.nn.functional as F

from tests.training.synthetic import make_corpus
from training.errors import XModalError
from training.eval_cli import main
from training.evaluate import prompt_accuracy, retrieval_recall
from training.factory import create_model, read_card, save_model


def _reference_recall(img, txt, relevant, k):
    t2i = i2t = 0
    for q in range(txt.shape[0]):
        ranked = sorted(range(img.shape[0]), key=lambda i: -float(txt[q] @ img[i]))
        t2i += any(relevant[q, i] for i in ranked[:k])
    for i in range(img.shape[0]):
        ranked = sorted(range(txt.shape[0]), key=lambda q: -float(txt[q] @ img[i]))
        i2t += any(relevant[q, i] for q in ranked[:k])
    return t2i / txt.shape[0], i2t / img.shape[0]


def test_retrieval_recall_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    img = F.normalize(torch.randn(30, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(20, 8, generator=g), dim=-1)
    relevant = torch.zeros(20, 30, dtype=torch.bool)
    for i in range(30):  # every image has one text; some texts describe two images
        relevant[i % 20, i] = True
    got = retrieval_recall(img, txt, relevant, ks=(1, 5, 10))
    for k in (1, 5, 10):
        t2i, i2t = _reference_recall(img, txt, relevant, k)
        assert got[f"t2i_R@{k}"] == pytest.approx(t2i) and got[f"i2t_R@{k}"] == pytest.approx(i2t)


def test_prompt_accuracy_matches_loop():
    g = torch.Generator().manual_seed(4)
    img, cls = torch.randn(50, 6, generator=g), torch.randn(5, 6, generator=g)
    labels = torch.randint(0, 5, (50,), generator=g)
    expected = (
        sum(int(max(range(5), key=lambda c: float(img[n] @ cls[c])) == labels[n]) for n in range(50)) / 50
    )
    assert prompt_accuracy(img, cls, labels) == pytest.approx(expected)


def test_eval_cli_writes_card_and_names_the_metric(tmp_path, capsys):
    make_corpus("shapes")
    out = tmp_path / "m"
    save_model(
        create_model("tiny-lit"), out, {"data": {"corpora": ["shapes"]}, "metrics": {"train_loss": 1.0}}
    )
    main(["--model", str(out), "--retrieval", "shapes", "--classify", "shapes"])
    metrics = read_card(out)["metrics"]
    assert metrics["train_loss"] == 1.0  # merged, not replaced
    retrieval = metrics["shapes/test"]
    assert retrieval["gallery"] == 12 and retrieval["queries"] == 12
    assert 0 <= retrieval["t2i_R@1"] <= retrieval["t2i_R@5"] <= retrieval["t2i_R@10"] <= 1
    # trained on "shapes", so its prompt accuracy there is not zero-shot
    assert "shapes/test/prompt_classification_heldout" in metrics
    assert metrics["shapes/test/prompt_classification_heldout"]["classes"] == 3
    assert "t2i_R@10" in capsys.readouterr().out


def test_eval_missing_corpus_is_a_clear_error(tmp_path):
    save_model(create_model("tiny-lit"), tmp_path / "m")
    with pytest.raises(XModalError, match="corpus 'openclipart' is not prepared"):
        main(["--model", str(tmp_path / "m")])


def test_photos_among_distractors_matches_brute_force():
    """Every photo (all splits) by its first caption, in a gallery of the photos plus the distractor
    corpus's test images; recall against the brute-force loop on the same embeddings."""
    from training.evaluate import embed_items, embed_texts, evaluate_photos_among

    make_corpus("photos", copies=1, test_copies=1)  # 24 images over both splits, 12 distinct captions
    make_corpus("shapes")  # 12 test images as distractors
    model = create_model("tiny-lit").eval()
    got = evaluate_photos_among(model, "photos", "shapes")
    assert (got["photos"], got["gallery"]) == (24, 36)

    from training.data.corpora import corpus_manifest
    from training.data.manifest import load_manifest, media_path

    gallery, captions = {}, []
    for corpus, splits in (("photos", None), ("shapes", ("test",))):
        manifest = corpus_manifest(corpus)
        for it in load_manifest(manifest, splits):
            gallery[f"{corpus}/{it.id}"] = media_path(manifest, it)
            captions.append(it.captions[0] if corpus == "photos" else None)
    queries = sorted({c for c in captions if c})
    relevant = torch.tensor([[c == q for c in captions] for q in queries])
    img, txt = embed_items(model, gallery), embed_texts(model, queries)
    for k in (1, 5, 10):
        assert got[f"t2i_R@{k}"] == pytest.approx(_reference_recall(img, txt, relevant, k)[0], abs=1e-4)
    assert not any(key.startswith("i2t") for key in got)  # clip art has no photo caption to find


def test_text_to_video_scores_the_vector_the_index_job_stores(tmp_path, monkeypatch):
    """evaluate_videos ranks each video by the whole-video vector index.embed makes (same sampler, same
    frames), for the real-photo set's hand-written queries of the videos present."""
    from index.embed import decode_video, embed_video
    from tests.app.videos import write_colour_video
    from training.data import corpora
    from training.data.manifest import Item, write_manifest
    from training.evaluate import evaluate_videos, real_photo_set
    from training.video import VideoConfig

    colours = {"videos/bigbuckbunny": [(30, 160, 40), (200, 200, 40)], "videos/bikes": [(40, 40, 200)],
               "videos/tree": [(120, 80, 30), (30, 120, 30)]}  # fmt: skip
    (tmp_path / "media").mkdir()
    items = []
    for vid, cs in colours.items():
        write_colour_video(tmp_path / "media" / f"{vid.split('/')[1]}.mp4", cs)
        items.append(Item(id=vid, path=f"media/{vid.split('/')[1]}.mp4", media="video", captions=[vid]))
    write_manifest(tmp_path / "manifest.jsonl", items)
    monkeypatch.setattr(corpora, "corpus_manifest", lambda name: tmp_path / "manifest.jsonl")
    torch.manual_seed(0)
    model = create_model("tiny-clip").eval()
    got = evaluate_videos(model)
    ids = list(colours)
    decoded = [decode_video(str(tmp_path / it.path), model.preprocess, VideoConfig()) for it in items]
    stored = torch.stack([torch.from_numpy(embed_video(model, d)[0]) for d in decoded])
    queries = [q for q in real_photo_set()["videos"] if set(q["relevant"]) & set(ids)]
    assert got["videos"] == 3 and got["queries"] == len(queries) >= 3
    best = [ids[int((stored @ model.embed_texts([q["query"]])[0]).argmax())] for q in queries]
    hits = sum(b in q["relevant"] for b, q in zip(best, queries, strict=True))
    assert got["t2v_R@1"] == pytest.approx(hits / len(queries), abs=1e-4)
