"""Video in: search by a clip (/v1/search/video, /v1/search/video-to-text), video captions and answers
(/v1/caption, /v1/vqa with a video), and every bad video answered with a 4xx that names the problem.

The index is built by the real index job (`xmodal index build`, 2 s segments), so the route's clip
embedding is checked against what the job stored. The tiny model's caption and VQA heads are fit in a
few steps to name flat colours: they stand in for the image solvers, so these tests check the video
path (sampling, per-segment solving, merging, timestamps), not how good a solver is.
"""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from app.config import VideoLimitSettings
from tests.app.conftest import make_settings, start
from tests.app.videos import cut_clip, write_audio_only, write_colour_video, write_zero_length

RED, BLUE, GREEN, YELLOW, CYAN, GREY = (
    (220, 30, 30),
    (30, 30, 220),
    (30, 200, 40),
    (230, 220, 30),
    (30, 210, 210),
    (128, 128, 128),
)
NAMES = {RED: "red", BLUE: "blue", GREEN: "green", YELLOW: "yellow", CYAN: "cyan", GREY: "grey"}
# three 6 s videos of three 2 s colours each, no colour shared between videos
VIDEOS = {"vid-a": [RED, GREEN, BLUE], "vid-b": [YELLOW, CYAN, GREY], "vid-c": [BLUE, RED, GREEN]}
QUESTION = "what colour is it?"
BANK = {f"{v} colours" for v in VIDEOS} | {"a red picture", "a cyan picture"}  # the index's captions


def _fit_colour_heads(model, steps: int = 80) -> None:
    """Caption and VQA heads fit to name flat colour frames ("a red frame"; "red")."""
    colours = list(NAMES)
    images = [Image.new("RGB", (32, 32), c) for c in colours]
    with torch.no_grad():
        tokens = model.image_tokens(torch.stack([model.preprocess(im) for im in images]))
        q = {k: v for k, v in model.tokenize([QUESTION] * len(colours)).items()}
        q_tokens, q_mask = model.text_tokens(q)
    cap, vqa = model.heads["caption"], model.heads["vqa"]
    opt = torch.optim.AdamW([*cap.parameters(), *vqa.parameters()], lr=3e-3)
    cap.train(), vqa.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = cap.loss(tokens, [f"a {NAMES[c]} frame" for c in colours])
        loss = loss + vqa.loss(vqa(tokens, q_tokens, q_mask), [NAMES[c] for c in colours])
        loss.backward()
        opt.step()
    cap.eval(), vqa.eval()


@pytest.fixture(scope="module")
def video_home(tmp_path_factory):
    """(home, model dir, media dir): index `clips` (3 videos, 2 images) built by the index job."""
    from index.cli import main as index_cli
    from training.data.manifest import Item, write_manifest
    from training.factory import create_model, save_model
    from training.heads import attach_heads, build_vocab

    home = tmp_path_factory.mktemp("video-home")
    torch.manual_seed(0)
    model = create_model("tiny-clip")
    vocab = build_vocab([f"a {n} frame" for n in NAMES.values()])
    attach_heads(model, {
        "caption": {"vocab": vocab, "width": 32, "layers": 1, "attn_heads": 2, "max_len": 6},
        "vqa": {"answers": list(NAMES.values()), "hidden": 32, "attn_heads": 2},
    })  # fmt: skip
    _fit_colour_heads(model)
    model_dir = home / "models" / "colours"
    save_model(model.eval(), model_dir, {"note": "tiny-clip, heads fit to flat colours"})
    media = home / "corpus" / "media"
    media.mkdir(parents=True)
    items = []
    for vid, colours in VIDEOS.items():
        write_colour_video(media / f"{vid}.mp4", colours)
        items.append(Item(id=vid, path=f"media/{vid}.mp4", media="video", captions=[f"{vid} colours"]))
    for name, colour in (("img-red", RED), ("img-cyan", CYAN)):
        Image.new("RGB", (32, 32), colour).save(media / f"{name}.png")
        items.append(Item(id=name, path=f"media/{name}.png", captions=[f"a {NAMES[colour]} picture"]))
    write_manifest(home / "corpus" / "manifest.jsonl", items)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XMODAL_HOME", str(home))
        index_cli(["build", "--name", "clips", "--manifest", str(home / "corpus" / "manifest.jsonl"),
                   "--segment-seconds", "2", "--model", str(model_dir), "--factory", "Flat",
                   "--workers", "0", "--no-progress"])  # fmt: skip
    return home, model_dir, media


@pytest.fixture(scope="module")
def vclient(video_home, tmp_path_factory):
    home, model_dir, _ = video_home
    copy = tmp_path_factory.mktemp("vhome") / "home"
    shutil.copytree(home, copy)
    limits = VideoLimitSettings(max_bytes=2_000_000, max_seconds=60, max_frames=2000)
    with start(make_settings(copy, model_dir, video=limits)) as c:
        yield c


@pytest.fixture(scope="module")
def vdir(tmp_path_factory):
    return tmp_path_factory.mktemp("uploads")


def _stored_rows(home, item):
    """(vectors, rows) the index job stored for `item`: the whole-item row first, then segments."""
    from index.search import open_index

    idx = open_index("clips", root=home / "indexes")
    try:
        rows = idx._store.item(item)
        return np.stack([np.array(idx._vectors[r.key]) for r in rows]), rows
    finally:
        idx.close()


def _post(client, route, path, **data):
    with open(path, "rb") as f:
        return client.post(route, files={"video": (path.name, f, "video/mp4")}, data=data)


# -- search by a clip --------------------------------------------------------------------------------


def test_clip_cut_from_an_indexed_video_finds_it_at_its_moment(vclient, video_home, vdir):
    _, _, media = video_home
    clip = cut_clip(media / "vid-b.mp4", vdir / "vid-b-2-4.mp4", 2.0, 4.0)
    r = _post(vclient, "/v1/search/video", clip, k="3", index="clips")
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert [h["media"] for h in hits] == ["video"] * 3
    top = hits[0]
    assert top["id"] == "vid-b"
    assert top["start"] < 4.0 and top["end"] > 2.0, f"moment {top['start']}-{top['end']} misses 2-4 s"


def test_clip_is_embedded_exactly_as_the_index_job_embeds_a_video(vclient, video_home):
    """The whole indexed file as the query: its vector equals the stored whole-video vector."""
    home, _, media = video_home
    stored = _stored_rows(home, "vid-c")[0][0]
    r = _post(vclient, "/v1/search/video", media / "vid-c.mp4", k="1")
    assert r.status_code == 200, r.text
    top = r.json()["hits"][0]
    assert top["id"] == "vid-c"
    assert top["score"] == pytest.approx(float(stored @ stored), abs=1e-5)


def test_search_by_clip_can_return_images(vclient, video_home, vdir):
    _, _, media = video_home
    clip = cut_clip(media / "vid-b.mp4", vdir / "vid-b-cyan.mp4", 2.0, 4.0)
    r = _post(vclient, "/v1/search/video", clip, k="5", media="image")
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert {h["id"] for h in hits} == {"img-red", "img-cyan"} and all(h["media"] == "image" for h in hits)
    both = _post(vclient, "/v1/search/video", clip, k="10", media="any").json()["hits"]
    assert {h["media"] for h in both} == {"image", "video"}


def test_video_to_text_ranks_texts_by_the_clip_vector(vclient, video_home):
    """Against a reference: the stored vector of the same file times the texts' embeddings."""
    from training.factory import load_model

    home, model_dir, media = video_home
    texts = ["vid-a colours", "a red picture", "a cyan picture", "vid-b colours"]
    r = _post(vclient, "/v1/search/video-to-text", media / "vid-a.mp4", k="4", texts="\n".join(texts))
    assert r.status_code == 200, r.text
    vec = _stored_rows(home, "vid-a")[0][0]
    scores = load_model(model_dir).embed_texts(texts).numpy() @ vec
    want = [(texts[i], float(scores[i])) for i in np.argsort(-scores)]
    got = [(c["text"], c["score"]) for c in r.json()["captions"]]
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-4)
    bank = _post(vclient, "/v1/search/video-to-text", media / "vid-a.mp4", k="2").json()["captions"]
    assert len(bank) == 2 and all(c["text"] in BANK for c in bank)


# -- captions and answers for a video ----------------------------------------------------------------


@pytest.fixture(scope="module")
def red_blue(vdir):
    """8 s: 4 s red, then 4 s blue (segments of 2 s: the boundary falls between segments 2 and 3)."""
    return write_colour_video(vdir / "red-blue.mp4", [RED, BLUE], seconds_each=4.0)


def test_caption_of_an_uploaded_video_per_segment_merged(vclient, red_blue):
    r = _post(vclient, "/v1/caption", red_blue, index="clips", k="2")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duration"] == pytest.approx(8.0, abs=0.2)
    segs = [(s["start"], s["end"], s["text"]) for s in body["segments"]]
    # four 2 s segments, repeats merged into one per colour
    assert segs == [
        (0.0, pytest.approx(4.0, abs=0.1), "a red frame"),
        (pytest.approx(4.0, abs=0.1), pytest.approx(8.0, abs=0.2), "a blue frame"),
    ]
    assert {c["text"] for c in body["captions"]} == {"a red frame", "a blue frame"}
    assert all(0 < s["confidence"] <= 1 and s["method"] == "decoder" for s in body["segments"])


def test_vqa_on_an_uploaded_video_answers_per_segment(vclient, red_blue):
    r = _post(vclient, "/v1/vqa", red_blue, question=QUESTION, index="clips")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["question"] == QUESTION
    assert [s["text"] for s in body["segments"]] == ["red", "blue"]
    assert body["segments"][0]["end"] == pytest.approx(4.0, abs=0.1)
    assert {a["answer"] for a in body["answers"][:2]} == {"red", "blue"}


def test_caption_modes_auto_and_retrieve(vclient, video_home):
    """auto: the decoder of this model (no calibration: its domain is unknown); retrieve: captions
    from the index's bank, per segment."""
    auto = vclient.post("/v1/caption", data={"index": "clips", "id": "vid-a"}).json()
    assert {s["method"] for s in auto["segments"]} == {"decoder"}
    r = vclient.post("/v1/caption", data={"index": "clips", "id": "vid-a", "mode": "retrieve"})
    assert r.status_code == 200, r.text
    assert r.json()["segments"] and all(
        s["text"] in BANK and s["method"] == "retrieve" for s in r.json()["segments"]
    )
    bad = vclient.post("/v1/caption", data={"index": "clips", "id": "vid-a", "mode": "poem"})
    assert bad.status_code == 422 and all(m in bad.json()["detail"] for m in ("auto", "generate", "retrieve"))


def test_caption_of_an_indexed_video_by_id_uses_its_index_segments(vclient, video_home):
    home = video_home[0]
    r = vclient.post("/v1/caption", data={"index": "clips", "id": "vid-a"})
    assert r.status_code == 200, r.text
    segs = r.json()["segments"]
    assert [s["text"] for s in segs] == ["a red frame", "a green frame", "a blue frame"]
    rows = _stored_rows(home, "vid-a")[1][1:]  # the index job's segments of this video
    assert [(s["start"], s["end"]) for s in segs] == [pytest.approx((r.start, r.end), abs=1e-3) for r in rows]
    r = vclient.post("/v1/vqa", data={"index": "clips", "id": "vid-a", "question": QUESTION})
    assert r.status_code == 200, r.text
    assert [s["text"] for s in r.json()["segments"]] == ["red", "green", "blue"]
    js = vclient.post("/v1/vqa", json={"index": "clips", "id": "vid-a", "question": QUESTION})
    assert js.status_code == 415 and "multipart/form-data" in js.json()["detail"]  # a form, not JSON


def test_images_still_go_to_the_image_handlers(vclient, media_dir):
    r = vclient.post("/v1/vqa", files={"image": ("x.png", (media_dir / "img0.png").read_bytes())},
                     data={"question": QUESTION})  # fmt: skip
    assert r.status_code == 200, r.text
    assert "segments" not in r.json()


# -- bad input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(vdir, video_home):
    """name -> (path, status, words the error must contain)"""
    media = video_home[2]
    good = (media / "vid-a.mp4").read_bytes()
    (vdir / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (vdir / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video" * 3)
    (vdir / "big.mp4").write_bytes(good * (2_000_000 // len(good) + 1))
    write_colour_video(vdir / "long.mp4", [GREY], seconds_each=61, fps=1)
    write_colour_video(vdir / "many-frames.mp4", [GREY], seconds_each=10, fps=1000, size=(16, 16))
    write_colour_video(vdir / "clip.ts", [RED], fmt="mpegts")
    return {
        "corrupt": (vdir / "truncated.mp4", 422, ["video", "not a readable video"]),
        "garbage": (vdir / "garbage.mp4", 422, ["video", "not a readable video"]),
        "audio-only": (write_audio_only(vdir / "audio.mp4"), 422, ["no video stream", "only audio"]),
        "zero-length": (write_zero_length(vdir / "empty.avi"), 422, ["zero-length", "no frames"]),
        "over-bytes": (vdir / "big.mp4", 413, ["2000000 bytes", "XMODAL_VIDEO__MAX_BYTES"]),
        "over-duration": (vdir / "long.mp4", 413, ["61.0 s", "limit of 60 s"]),
        "10k-frames": (vdir / "many-frames.mp4", 413, ["more than 2000 frames"]),
        "container": (vdir / "clip.ts", 415, ["mpegts", "not accepted", "mp4, webm, avi, mov, mkv"]),
    }


@pytest.mark.parametrize("route", ["/v1/search/video", "/v1/caption", "/v1/vqa", "/v1/search/video-to-text"])
def test_each_bad_video_gets_its_4xx_and_the_service_stays_healthy(vclient, bad_files, red_blue, route):
    for name, (path, status, words) in bad_files.items():
        r = _post(vclient, route, path, question=QUESTION)
        assert r.status_code == status, (name, r.text)
        detail = r.json()["detail"]
        assert all(w in detail for w in words), (name, detail)
        assert "xmodal-video-" not in detail, detail  # no server-side temp path
    assert vclient.get("/healthz").status_code == 200
    assert _post(vclient, route, red_blue, question=QUESTION).status_code == 200


def test_unknown_video_id_and_image_id_are_4xx(vclient):
    r = vclient.post("/v1/caption", data={"index": "clips", "id": "no-such-video"})
    assert r.status_code == 404 and "no-such-video" in r.json()["detail"] and "clips" in r.json()["detail"]
    r = vclient.post("/v1/vqa", data={"index": "clips", "id": "img-red", "question": QUESTION})
    assert r.status_code == 422 and "is an image, not a video" in r.json()["detail"]
    r = vclient.post("/v1/caption", data={"index": "nope", "id": "vid-a"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = vclient.post("/v1/search/video", data={"k": "3"})
    assert r.status_code == 422 and "video: Field required" in r.json()["detail"]
    assert vclient.get("/healthz").status_code == 200


# -- the colour tests on the real solvers ----------------------------------------------------


@pytest.mark.slow
def test_real_solver_answers_red_then_blue_per_segment(vdir, tmp_path):
    """The default architecture (pretrained towers, no heads trained here) behind the video routes:
    "what colour is it?" answers red, then blue, and the captions say "a plain red picture", then "a
    plain blue picture", each with the change within one segment of the true boundary (4 s)."""
    from training.factory import create_model, save_model

    model_dir = tmp_path / "models" / "lit"
    save_model(create_model("lit-effnet-minilm"), model_dir, {"note": "pretrained towers"})
    video = write_colour_video(vdir / "red-blue-real.mp4", [RED, BLUE], seconds_each=4.0, size=(64, 48))
    with start(make_settings(tmp_path, model_dir)) as c:
        cap = _post(c, "/v1/caption", video, mode="auto")
        vqa = _post(c, "/v1/vqa", video, question=QUESTION)
    for r in (cap, vqa):
        assert r.status_code == 200, r.text
        segs = r.json()["segments"]
        assert len(segs) == 2, segs
        assert abs(segs[0]["end"] - 4.0) <= 2.0  # VideoConfig's 5 s segments: within one segment
    assert [s["text"] for s in vqa.json()["segments"]] == ["red", "blue"]
    assert {s["method"] for s in vqa.json()["segments"]} == {"colour"}
    # the captions say so too (before, a flat red frame was "a velvet, a kind of fabric")
    assert [s["text"] for s in cap.json()["segments"]] == ["a plain red picture", "a plain blue picture"]
    assert {s["method"] for s in cap.json()["segments"]} == {"colour"}


def test_default_limits_refuse_a_10000_frame_clip(bad_files):
    from app.media import BadInputError
    from app.routes.video import probe_video

    with pytest.raises(BadInputError, match="more than 9000 frames") as e:
        probe_video(bad_files["10k-frames"][0], VideoLimitSettings())
    assert e.value.status == 413
