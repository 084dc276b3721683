"""Service fixtures: tiny media (PNGs, one short MP4), tiny models, indexes built with index's API."""

import io
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from app.config import BatchSettings, Settings
from index.publish import write_version
from index.store import Row
from training.factory import create_model, load_model, save_model

ADMIN = "admin-token-for-tests-0123"
COLORS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 20), (20, 20, 20), (250, 250, 250)]


def png_bytes(color=(200, 10, 10), size=(40, 30), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", size, color)
    im.paste((255 - color[0], 255 - color[1], 255 - color[2]), (5, 5, size[0] // 2, size[1] // 2))
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    """6 PNG images (img0..img5) and a 2 s, 8-frame MP4 (vid0) that turns from red to blue."""
    import av

    d = tmp_path_factory.mktemp("media")
    for i, c in enumerate(COLORS):
        (d / f"img{i}.png").write_bytes(png_bytes(c))
    with av.open(str(d / "vid0.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for t in range(8):
            frame = av.VideoFrame.from_image(Image.new("RGB", (32, 32), (255 - 30 * t, 0, 30 * t)))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return d


@pytest.fixture(scope="session")
def tiny_model_b_dir(tmp_path_factory):
    """A second tiny model (other weights, so another fingerprint): the hot-swap target."""
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("models") / "tiny-clip-b"
    save_model(create_model("tiny-clip"), out, {"note": "second random init"})
    return out


def publish_index(model_dir, media_dir, home, name="demo") -> str:
    """Embeds the test media with the model in `model_dir` and publishes index `name`; returns the version."""
    model = load_model(model_dir)
    rows, images = [], []
    for i in range(len(COLORS)):
        path = media_dir / f"img{i}.png"
        rows.append(
            Row(f"img{i}", "image", str(path), [f"colour {i}"], meta={"split": "test" if i % 2 else "train"})
        )
        images.append(Image.open(path))
    # an exact duplicate of img0 under another id (what clip-retrieval's `deduplicate` removes)
    rows.append(Row("img0-copy", "image", str(media_dir / "img0.png"), ["colour 0"], meta={"split": "train"}))
    images.append(Image.open(media_dir / "img0.png"))
    video = media_dir / "vid0.mp4"
    frames = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
    rows.append(Row("vid0", "video", str(video), ["a red then blue clip"], meta={"split": "test"}))
    for s in range(2):
        rows.append(
            Row(
                "vid0", "video", str(video), ["a red then blue clip"], 1.0 * s, 1.0 * s + 1, {"split": "test"}
            )
        )
    img_vecs = model.embed_images(images + frames).numpy()  # (9, D)
    whole = img_vecs[-2:].mean(0, keepdims=True)
    whole /= np.linalg.norm(whole)
    vecs = np.concatenate([img_vecs[:-2], whole, img_vecs[-2:]])
    manifest = {"model_fingerprint": model.fingerprint, "corpus": ["test"], "max_rows_per_item": 3}
    path = write_version(name, vecs, rows, manifest, factory="Flat", root=home / "indexes")
    return path.name


def make_settings(home, model_dir, **kw) -> Settings:
    return Settings(
        home=home,
        model=str(model_dir),
        admin_token=ADMIN,
        batch=BatchSettings(max_batch_size=16, max_wait_ms=2, timeout_s=20),
        allowed_hosts=["testserver", "localhost"],
        **kw,
    )


@pytest.fixture(scope="session")
def home_template(tmp_path_factory, tiny_model_dir, media_dir):
    """A home with index `demo` (v0001) embedded by the tiny model; tests copy it."""
    home = tmp_path_factory.mktemp("home-template")
    publish_index(tiny_model_dir, media_dir, home)
    return home


@pytest.fixture
def home(tmp_path, home_template):
    shutil.copytree(home_template, tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture
def settings(home, tiny_model_dir):
    """Settings for a test that changes things (its own home copy)."""
    return make_settings(home, tiny_model_dir)


def while_swapping(client, request, swaps, clients=4, per_client=25, timeout_s=60.0):
    """Runs request(i, n) -> response from `clients` threads (n = that thread's request count) while
    POSTing each admin (path, body) of `swaps` in turn; returns (request status codes, swap responses)."""
    from concurrent.futures import ThreadPoolExecutor

    stop = time.monotonic() + timeout_s

    def hammer(i):
        codes = []
        while len(codes) < per_client and time.monotonic() < stop:
            codes.append(request(i, len(codes)).status_code)
        return codes

    auth = {"Authorization": f"Bearer {ADMIN}"}
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(hammer, i) for i in range(clients)]
        done = [client.post(path, json=body, headers=auth) for path, body in swaps]
        codes = [code for f in futures for code in f.result()]
    return codes, done


def start(settings):
    from fastapi.testclient import TestClient

    from app.main import create_app

    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(tmp_path_factory, home_template, tiny_model_dir):
    """A running service over a copy of the template home, shared by a module's read-only tests."""
    home = tmp_path_factory.mktemp("home") / "home"
    shutil.copytree(home_template, home)
    with start(make_settings(home, tiny_model_dir)) as c:
        c.settings = c.app.state.settings
        yield c


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    return load_model(tiny_model_dir)
