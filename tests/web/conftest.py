"""Browser-test fixtures: the real service on loopback (tiny model with caption and VQA heads, a tiny
index of drawn shapes and one two-segment video) and headless Debian chromium driven by playwright.

The tests skip, saying why, where chromium or playwright is missing; `make test` installs chromium
with apt where it can.
"""

import contextlib
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image, ImageDraw

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
INDEX_NAME = "shapes"
IMAGES_ONLY_INDEX = "shapes-images"  # a second index, with no videos: the empty-result case

# (item id, colour, shape): captions are "a <colour> <shape>".
SHAPES = [
    ("red-square", "red", "square"),
    ("green-circle", "green", "circle"),
    ("blue-triangle", "blue", "triangle"),
    ("yellow-square", "yellow", "square"),
    ("purple-circle", "purple", "circle"),
    ("orange-triangle", "orange", "triangle"),
]
# The video: 2 s of red, then 2 s of blue, at 8 fps; indexed in 2 s segments plus the whole.
VIDEO_FPS, VIDEO_SEGMENTS = 8, [(0.0, 2.0, "red"), (2.0, 4.0, "blue")]
API_KEY = "web-test-key-0123456789"
VQA_ANSWERS = ["red", "green", "blue", "yes", "no", "square", "circle"]


def draw_shape(colour: str, shape: str, size: int = 96) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    box = (size // 6, size // 6, size * 5 // 6, size * 5 // 6)
    if shape == "square":
        d.rectangle(box, fill=colour)
    elif shape == "circle":
        d.ellipse(box, fill=colour)
    else:
        d.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)
    return img


def write_video(path: Path, size: int = 64) -> None:
    """A VP9 WebM (every chromium build plays it) with one flat colour per segment."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx-vp9", rate=VIDEO_FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for start, end, colour in VIDEO_SEGMENTS:
            for _ in range(round((end - start) * VIDEO_FPS)):
                frame = av.VideoFrame.from_image(Image.new("RGB", (size, size), colour))
                out.mux(stream.encode(frame))
        out.mux(stream.encode())


def fit_caption_head(model, images: list[Image.Image], captions: list[str], steps: int = 60) -> None:
    """A few teacher-forced steps on the shapes, so generated captions are real words, not an
    immediate <eos> from random weights (well under a second for this tiny head)."""
    head = model.heads["caption"]
    with torch.no_grad():
        tokens = model.image_tokens(torch.stack([model.preprocess(im) for im in images]))
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    head.train()
    for _ in range(steps):
        opt.zero_grad()
        head.loss(tokens, captions).backward()
        opt.step()
    head.eval()


def build_home(home: Path) -> Path:
    """XMODAL_HOME with models/web-tiny (tiny-clip + VQA and caption heads) and two indexes built
    by `xmodal index build` from a manifest; returns the model dir."""
    from index.cli import main as index_cli
    from training.data.manifest import Item, write_manifest
    from training.factory import create_model, save_model
    from training.heads import attach_heads, build_vocab

    torch.manual_seed(0)
    model = create_model("tiny-clip")
    shape_captions = [f"a {c} {s}" for _, c, s in SHAPES]
    caption_head = {
        "vocab": build_vocab(shape_captions),
        "width": 32,
        "layers": 1,
        "attn_heads": 2,
        "max_len": 6,
    }
    vqa_head = {"answers": VQA_ANSWERS, "hidden": 32, "attn_heads": 2}
    attach_heads(model, {"vqa": vqa_head, "caption": caption_head})
    fit_caption_head(model, [draw_shape(c, s) for _, c, s in SHAPES], shape_captions)
    model_dir = home / "models" / "web-tiny"
    save_model(model.eval(), model_dir, {"note": "random towers, caption head fit to shapes"})

    corpus = home / "corpus"
    (corpus / "media").mkdir(parents=True)
    items = []
    for (item_id, colour, shape), caption in zip(SHAPES, shape_captions, strict=True):
        draw_shape(colour, shape).save(corpus / "media" / f"{item_id}.png")
        items.append(Item(id=item_id, path=f"media/{item_id}.png", captions=[caption]))
    write_video(corpus / "media" / "red-blue.webm")
    items.append(
        Item(id="red-blue", path="media/red-blue.webm", media="video", captions=["a red then blue video"])
    )
    write_manifest(corpus / "manifest.jsonl", items)
    write_manifest(corpus / "images.jsonl", items[:2])

    segment_s = VIDEO_SEGMENTS[0][1] - VIDEO_SEGMENTS[0][0]
    common = ["--model", str(model_dir), "--factory", "Flat", "--workers", "0", "--no-progress"]
    with pytest.MonkeyPatch.context() as mp:  # the index CLI writes under XMODAL_HOME
        mp.setenv("XMODAL_HOME", str(home))
        index_cli(["build", "--name", INDEX_NAME, "--manifest", str(corpus / "manifest.jsonl"),
                   "--segment-seconds", str(segment_s), *common])  # fmt: skip
        index_cli(["build", "--name", IMAGES_ONLY_INDEX, "--manifest", str(corpus / "images.jsonl"), *common])
    return model_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_service(settings):
    """The real app under uvicorn in a thread on a free loopback port; yields its base URL once ready."""
    import uvicorn

    from app.main import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("xmodal service did not become ready within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def web_home(tmp_path_factory) -> tuple[Path, Path]:
    """(XMODAL_HOME, model dir), built once per session."""
    home = tmp_path_factory.mktemp("web-home")
    return home, build_home(home)


@pytest.fixture(scope="session")
def service_url(web_home):
    """Base URL of the real xmodal service on the fixture's model and indexes."""
    from app.config import Settings

    home, model_dir = web_home
    with running_service(Settings(home=home, model=str(model_dir), default_index=INDEX_NAME)) as url:
        yield url


@pytest.fixture(scope="session")
def keyed_service_url(web_home):
    """The same service with XMODAL_API_KEYS set: query and media routes need API_KEY."""
    from app.config import Settings

    home, model_dir = web_home
    settings = Settings(home=home, model=str(model_dir), default_index=INDEX_NAME, api_keys=[API_KEY])
    with running_service(settings) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium (never a playwright-downloaded browser)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make test` does, as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except sync_api.Error as e:  # e.g. a chromium whose shared libraries are missing
            pytest.skip(f"{CHROMIUM} does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture
def page_at(browser, service_url):
    """Opens the page at a viewport size. Fails the test on an uncaught JavaScript error, on a request
    that leaves the service (a CDN, a font), on a script call outside /v1 and /media, or on a 404.
    `open_page(width, height, base)` opens it on the service at `base` (default: service_url)."""
    contexts, errors, requests, failed = [], [], [], []

    bases = []

    def open_page(width: int = 1280, height: int = 900, base: str | None = None):
        base = base or service_url
        bases.append(base)
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append((r.resource_type, r.url)))
        page.on("response", lambda r: r.status == 404 and failed.append(r.url))
        page.goto(base + "/")
        # Ready: the indexes are listed, or the service asked for an API key.
        page.wait_for_function(
            "document.querySelector('#index-select').options.length > 0"
            " || !document.querySelector('#key-form').hidden"
        )
        return page

    yield open_page
    for ctx in contexts:
        ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not failed, f"not found: {failed}"
    ours = tuple(b + "/" for b in bases)
    outside = [u for _, u in requests if not u.startswith((*ours, "blob:", "data:"))]
    assert not outside, f"the page fetched from outside the service: {outside}"
    public = tuple(b + p for b in bases for p in ("/v1/", "/media/"))
    calls = [u for kind, u in requests if kind in ("fetch", "xhr")]
    assert all(u.startswith(public) for u in calls), f"calls outside the public API: {calls}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """Upload files: a drawn shape (not in the index), a frame of the video's second segment and a
    broken 'PNG'."""
    d = tmp_path_factory.mktemp("uploads")
    good, frame, broken = d / "query-red-circle.png", d / "video-frame.png", d / "broken.png"
    draw_shape("red", "circle", 80).save(good)
    Image.new("RGB", (64, 64), VIDEO_SEGMENTS[1][2]).save(frame)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not the rest of a PNG" * 4)
    return {"good": good, "frame": frame, "broken": broken}
