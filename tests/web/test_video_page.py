"""The page's video features in a real browser against the real service: caption and questions per
segment on a timeline (a segment click seeks the player), and search by clip. The public API's answer
to the same request is the reference for what the page shows."""

import httpx
import pytest

from tests.web.conftest import INDEX_NAME
from tests.web.test_page import CARDS_JS, expected_cards, wait_idle

pytestmark = pytest.mark.slow

TIMELINE_JS = """bs => bs.map(b => [Number(b.dataset.start), Number(b.dataset.end),
                                   b.querySelector('.what').textContent])"""


@pytest.fixture(scope="module")
def clip(web_home):
    """The indexed red-then-blue WebM (2 s per colour), uploaded as a user's clip."""
    return web_home[0] / "corpus" / "media" / "red-blue.webm"


def post_video(service_url: str, route: str, path, **form) -> httpx.Response:
    with open(path, "rb") as f:
        return httpx.post(
            f"{service_url}{route}", files={"video": (path.name, f, "video/webm")}, data=form, timeout=60
        )


def segments(resp: httpx.Response) -> list:
    assert resp.status_code == 200, resp.text
    return [[s["start"], s["end"], s["text"]] for s in resp.json()["segments"]]


def test_video_upload_shows_caption_timeline_and_similar_clips(page_at, service_url, clip, artifacts):
    page = page_at()
    page.set_input_files("#video-input", str(clip))
    page.wait_for_selector("#caption-timeline button")
    wait_idle(page)
    ref = post_video(service_url, "/v1/caption", clip, mode="auto", k="1")
    assert page.eval_on_selector_all("#caption-timeline button", TIMELINE_JS) == segments(ref)
    assert page.text_content("#video-caption") == ref.json()["captions"][0]["text"]
    hits = post_video(service_url, "/v1/search/video", clip, k="12", index=INDEX_NAME, media="any").json()[
        "hits"
    ]
    cards = page.eval_on_selector_all(".card", CARDS_JS)
    assert cards == expected_cards(hits)
    assert cards[0]["id"] == "red-blue"  # the clip is that indexed video
    assert page.text_content("#status").startswith(f"{len(hits)} results similar to your video")
    page.screenshot(path=str(artifacts / "web-video-caption.png"), full_page=True)


def test_clicking_a_segment_seeks_the_player(page_at, clip):
    page = page_at()
    page.set_input_files("#video-input", str(clip))
    page.wait_for_selector("#caption-timeline button")
    player = page.locator("#video-player")
    page.wait_for_function("v => v.readyState >= 1", arg=player.element_handle(), timeout=20_000)
    last = page.locator("#caption-timeline button").last
    start = float(last.get_attribute("data-start"))
    last.click()
    assert player.evaluate("v => v.currentTime") == pytest.approx(start, abs=0.05)
    assert last.get_attribute("aria-current") == "true"
    first = page.locator("#caption-timeline button").first
    first.click()
    assert player.evaluate("v => v.currentTime") == pytest.approx(
        float(first.get_attribute("data-start")), abs=0.05
    )


def test_video_question_shows_answers_per_segment(page_at, service_url, clip, artifacts):
    page = page_at()
    page.set_input_files("#video-input", str(clip))
    page.wait_for_selector("#caption-timeline button")
    wait_idle(page)
    question = "what colour is it?"
    page.fill("#video-question", question)
    page.press("#video-question", "Enter")
    page.wait_for_selector("#answer-timeline button")
    ref = post_video(service_url, "/v1/vqa", clip, question=question, k="3")
    assert page.eval_on_selector_all("#answer-timeline button", TIMELINE_JS) == segments(ref)
    assert page.text_content("#video-answer") == f"Answer: {ref.json()['answers'][0]['answer']}"
    page.screenshot(path=str(artifacts / "web-video-vqa.png"), full_page=True)


def test_broken_video_shows_the_apis_error(page_at, service_url, tmp_path, artifacts):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 8)
    page = page_at()
    page.set_input_files("#video-input", str(broken))
    wait_idle(page)
    page.wait_for_function("!document.querySelector('#error').hidden")
    res = post_video(service_url, "/v1/search/video", broken, k="12")
    assert 400 <= res.status_code < 500
    assert page.text_content("#error") == res.json()["detail"]
    assert page.locator(".card").count() == 0
    assert page.is_hidden("#video-vqa-form")  # a video the service refused: nothing to ask about
    page.screenshot(path=str(artifacts / "web-video-broken.png"), full_page=True)
