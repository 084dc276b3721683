"""The search page in a real browser against the real service. Every check compares what the page
shows with what the public /v1 API answers for the same request (the API is the reference)."""

import base64

import httpx
import pytest

from tests.web.conftest import API_KEY, IMAGES_ONLY_INDEX, INDEX_NAME, VIDEO_SEGMENTS

pytestmark = pytest.mark.slow

CARDS_JS = """els => els.map(e => ({
    id: e.dataset.id,
    media: e.dataset.media,
    score: e.querySelector('.score').textContent,
    caption: e.querySelector('.card-caption').textContent,
}))"""


def wait_idle(page) -> None:
    """Waits until the search in flight (if any) has rendered its hits, empty message or error."""
    page.wait_for_function("!document.querySelector('#grid').hasAttribute('aria-busy')")


def expected_cards(hits: list[dict]) -> list[dict]:
    return [
        {
            "id": h["id"],
            "media": h["media"],
            "score": f"score {h['score']:.3f}",
            "caption": h["caption"] or h["id"],
        }
        for h in hits
    ]


def upload(service_url: str, route: str, path, **form) -> httpx.Response:
    with open(path, "rb") as f:
        files = {"image": (path.name, f, "image/png")}
        return httpx.post(f"{service_url}{route}", files=files, data=form, timeout=30)


def test_shows_active_model_and_index(page_at, service_url):
    page = page_at()
    models = httpx.get(f"{service_url}/v1/models").json()
    indexes = httpx.get(f"{service_url}/v1/indexes").json()
    assert indexes["default"] == INDEX_NAME
    default = next(ix for ix in indexes["indexes"] if ix["name"] == INDEX_NAME)
    assert page.text_content("#active-model") == models["active"]["id"]
    assert page.text_content("#active-index") == f"{INDEX_NAME} {default['version']}"
    options = page.eval_on_selector_all("#index-select option", "os => os.map(o => o.value)")
    assert sorted(options) == sorted(ix["name"] for ix in indexes["indexes"])


def test_text_query_shows_the_apis_hits(page_at, service_url, artifacts):
    page = page_at()
    page.fill("#query", "a red square")
    page.press("#query", "Enter")
    wait_idle(page)
    ref = httpx.post(f"{service_url}/v1/search/text", json={"query": "a red square", "k": 12}).json()
    assert ref["hits"], "the reference search found nothing"
    assert page.eval_on_selector_all(".card", CARDS_JS) == expected_cards(ref["hits"])
    status = f"{len(ref['hits'])} results for \u201ca red square\u201d from {INDEX_NAME}"
    assert page.text_content("#status").startswith(status)
    assert page.is_hidden("#error")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifacts / "web-text-search.png"), full_page=True)


def test_media_filter_and_video_starts_at_its_segment(page_at, service_url, image_files, artifacts):
    page = page_at()
    page.check("input[name=media][value=video]")
    # A frame of the video's second segment: that segment is the exact match whatever the weights.
    frame = image_files["frame"]
    page.set_input_files("#image-input", str(frame))
    wait_idle(page)
    ref = upload(service_url, "/v1/search/image", frame, k="12", index=INDEX_NAME, media="video").json()
    cards = page.eval_on_selector_all(".card", CARDS_JS)
    assert cards == expected_cards(ref["hits"])
    assert cards and all(c["media"] == "video" for c in cards)
    start = ref["hits"][0]["start"]
    assert start == VIDEO_SEGMENTS[1][0], "the frame should match the video's second segment"
    # The browser fetches the real file (Range requests) and seeks to the matched segment.
    video = page.locator(".card video").first
    page.wait_for_function("v => v.readyState >= 1", arg=video.element_handle(), timeout=20_000)
    assert video.evaluate("v => v.currentTime") == pytest.approx(start, abs=0.05)
    assert page.text_content(".card .segment").startswith("0:02")
    page.screenshot(path=str(artifacts / "web-video-filter.png"), full_page=True)


def test_empty_results_say_so(page_at, service_url):
    page = page_at()
    page.select_option("#index-select", IMAGES_ONLY_INDEX)
    page.check("input[name=media][value=video]")
    page.fill("#query", "a red square")
    page.press("#query", "Enter")
    wait_idle(page)
    body = {"query": "a red square", "k": 12, "index": IMAGES_ONLY_INDEX, "media": "video"}
    assert httpx.post(f"{service_url}/v1/search/text", json=body).json()["hits"] == []
    assert page.locator(".card").count() == 0
    assert page.text_content("#status") == "No videos match \u201ca red square\u201d."


def test_image_upload_shows_similar_items_caption_and_answer(page_at, service_url, image_files, artifacts):
    page = page_at()
    good = image_files["good"]
    page.set_input_files("#image-input", str(good))
    wait_idle(page)
    ref_hits = upload(service_url, "/v1/search/image", good, k="12", index=INDEX_NAME).json()["hits"]
    assert page.eval_on_selector_all(".card", CARDS_JS) == expected_cards(ref_hits)

    ref_caption = upload(service_url, "/v1/caption", good, mode="auto", k="1").json()["captions"]
    page.wait_for_function("document.querySelector('#image-caption').textContent !== 'Captioning\u2026'")
    assert ref_caption[0]["text"], "the fixture's caption head should produce words"
    assert page.text_content("#image-caption") == ref_caption[0]["text"]

    question = "what colour is the shape?"
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_selector("#vqa-answers li")
    ref = upload(service_url, "/v1/vqa", good, question=question, k="3").json()["answers"]
    shown = page.eval_on_selector_all(
        "#vqa-answers li",
        "ls => ls.map(l => [l.querySelector('.answer').textContent, l.querySelector('.prob').textContent])",
    )
    assert shown == [[a["answer"], f"{a['probability'] * 100:.1f}%"] for a in ref]
    assert page.text_content("#status") == f"Answer: {ref[0]['answer']}"
    solver = upload(service_url, "/v1/vqa", good, question=question, k="3").json()["solver"]
    assert page.get_attribute("#vqa-answers", "title") == f"by {solver}"
    page.screenshot(path=str(artifacts / "web-image-vqa.png"), full_page=True)


def test_an_unsure_answer_says_so(page_at, image_files, artifacts):
    """The service marks an answer it cannot give ("what colour is the cup?" on a cat photo): the page
    says "not sure" instead of stating it, and dims the bars."""
    import json

    page = page_at()
    unsure = {"question": "what colour is the cup?", "answers": [{"answer": "brown", "probability": 0.37}],
              "solver": "colour", "unsure": True}  # fmt: skip
    page.route("**/v1/vqa", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(unsure)))  # fmt: skip
    page.set_input_files("#image-input", str(image_files["good"]))
    wait_idle(page)
    page.fill("#question", unsure["question"])
    page.press("#question", "Enter")
    page.wait_for_selector("#vqa-answers li")
    assert page.text_content("#status") == "Not sure: perhaps brown"
    assert page.get_attribute("#vqa-answers", "class") == "answers unsure"
    assert page.get_attribute("#vqa-answers", "title") == "by colour"
    page.screenshot(path=str(artifacts / "web-image-vqa-unsure.png"), full_page=True)


def test_dropped_image_searches_like_an_upload(page_at, service_url, image_files):
    page = page_at()
    good = image_files["good"]
    transfer = page.evaluate_handle(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: "image/png"}));
            return dt;
        }""",
        [base64.b64encode(good.read_bytes()).decode(), good.name],
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    wait_idle(page)
    ref_hits = upload(service_url, "/v1/search/image", good, k="12", index=INDEX_NAME).json()["hits"]
    assert page.eval_on_selector_all(".card", CARDS_JS) == expected_cards(ref_hits)
    assert page.is_visible("#image-panel")


def test_broken_file_shows_the_apis_error(page_at, service_url, image_files, artifacts):
    page = page_at()
    broken = image_files["broken"]
    page.set_input_files("#image-input", str(broken))
    wait_idle(page)
    res = upload(service_url, "/v1/search/image", broken, k="12", index=INDEX_NAME)
    assert 400 <= res.status_code < 500
    detail = res.json()["detail"]
    assert page.is_visible("#error")
    assert page.text_content("#error") == detail
    assert page.get_attribute("#error", "role") == "alert"
    assert page.locator(".card").count() == 0
    # No question box for an image the service refused; the preview says it cannot show the file.
    assert page.is_hidden("#vqa-form")
    assert page.is_visible("#preview-note")
    page.screenshot(path=str(artifacts / "web-broken-file.png"), full_page=True)


def test_phone_width_has_no_horizontal_overflow(page_at, image_files, artifacts):
    page = page_at(375, 812)
    page.fill("#query", "a circle")
    page.press("#query", "Enter")
    wait_idle(page)
    page.set_input_files("#image-input", str(image_files["good"]))
    wait_idle(page)
    page.fill("#question", "is it red?")
    page.press("#question", "Enter")
    page.wait_for_selector("#vqa-answers li")
    assert page.locator(".card").count() > 0
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1] == 375
    # Nothing visible pokes out of the viewport either (scrollWidth ignores overflow: hidden parents).
    too_wide = page.evaluate(
        """[...document.querySelectorAll('body *')].filter(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.height > 1 && (r.right > innerWidth + 0.5 || r.left < -0.5)
                && getComputedStyle(e).position !== 'absolute';
        }).map(e => e.id || e.className || e.tagName)"""
    )
    assert too_wide == []
    page.screenshot(path=str(artifacts / "web-phone.png"), full_page=True)


def test_keyboard_only_search(page_at, service_url):
    page = page_at()
    page.focus("#query")
    page.keyboard.type("a green circle")
    stops = []
    for _ in range(5):  # every control after the search box is one Tab away, in reading order
        page.keyboard.press("Tab")
        stops.append(page.evaluate("(e => e.id || e.name || e.textContent)(document.activeElement)"))
    assert stops == ["Search", "media", "index-select", "k-select", "image-input"]
    page.focus("#query")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # activates the Search button
    wait_idle(page)
    ref = httpx.post(f"{service_url}/v1/search/text", json={"query": "a green circle", "k": 12}).json()
    assert [c["id"] for c in page.eval_on_selector_all(".card", CARDS_JS)] == [h["id"] for h in ref["hits"]]
    assert page.get_attribute("#status", "aria-live") == "polite"


def test_api_key_is_asked_for_and_used(page_at, keyed_service_url, artifacts):
    page = page_at(base=keyed_service_url)
    refused = httpx.get(f"{keyed_service_url}/v1/indexes")
    assert refused.status_code == 401
    assert page.text_content("#error") == refused.json()["detail"]
    assert page.is_visible("#key-form")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.screenshot(path=str(artifacts / "web-api-key.png"), full_page=True)

    page.keyboard.type(API_KEY)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#index-select').options.length > 0")
    assert page.is_hidden("#key-form") and page.is_hidden("#error")
    body = {"query": "a red square", "k": 12}
    page.fill("#query", body["query"])
    page.press("#query", "Enter")
    wait_idle(page)
    ref = httpx.post(f"{keyed_service_url}/v1/search/text", json=body, headers={"X-API-Key": API_KEY}).json()
    assert page.eval_on_selector_all(".card", CARDS_JS) == expected_cards(ref["hits"])
    # <img> and <video> cannot send the key: the page fetched the media with it and shows blob: URLs.
    # (Thumbnails below the fold load lazily, so only the first is required to have decoded.)
    page.wait_for_function(
        """[...document.querySelectorAll('.card img, .card video')].every(m => m.src.startsWith('blob:'))
        && document.querySelector('.card img').naturalWidth > 0"""
    )
