"""Unit tests of aggregation and merging (app/segments.py) with a deterministic stub solver: they test
how frame answers become segment and video answers, not any real captioner (see test_video.py for
the routes, and its skipped colour test for the real solver)."""

import pytest
from PIL import Image

from app.segments import SegmentAnswer, merge_repeats, solve_video, vote
from tests.app.videos import write_colour_video
from training.video import VideoConfig, sample_video

RED, BLUE = (220, 30, 30), (30, 30, 220)


def stub_colour_solver(frames):
    """Deterministic stub: 'red' or 'blue' by the frame's mean red vs blue channel, confidence 0.9."""
    out = []
    for f in frames:
        r, _, b = f.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        out.append(("red" if r > b else "blue", 0.9, "stub"))
    return out


@pytest.fixture(scope="module")
def red_then_blue(tmp_path_factory):
    """5 s: 2.5 s red, then 2.5 s blue; in 1 s segments the change falls inside segment [2, 3]."""
    d = tmp_path_factory.mktemp("rb")
    return write_colour_video(d / "red-then-blue.mp4", [RED, BLUE], seconds_each=2.5, fps=8)


def test_aggregation_unit_stub_solver_red_then_blue_boundary_within_one_segment(red_then_blue):
    sample = sample_video(red_then_blue, VideoConfig(segment_seconds=1.0))
    assert len(sample.segments) == 5
    got = solve_video(sample.segments, stub_colour_solver)
    assert [s.text for s in got.segments] == ["red", "blue"]  # five segments, repeats merged
    red, blue = got.segments
    assert red.start == 0.0 and blue.end == pytest.approx(sample.duration)
    assert red.end == blue.start and abs(red.end - 2.5) <= 1.0  # the boundary, within one segment
    assert {t for t, _ in got.ranked} == {"red", "blue"}
    assert got.method == "stub"


def test_aggregation_unit_solver_gets_every_frame_once_in_order():
    frames = [Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(6)]
    calls = []

    def solver(fs):
        calls.append(list(fs))
        return [(str(f.getpixel((0, 0))[0] // 2), 1.0, "stub") for f in fs]

    got = solve_video([(0.0, 1.0, frames[:2]), (1.0, 2.0, frames[2:4]), (2.0, 3.0, frames[4:])], solver)
    assert calls == [frames]  # one batched call
    assert [(s.start, s.end, s.text) for s in got.segments] == [
        (0.0, 1.0, "0"),
        (1.0, 2.0, "1"),
        (2.0, 3.0, "2"),
    ]


def test_vote_sums_confidence_and_breaks_ties_by_first_seen():
    assert vote([("a cat", 0.4, "m1"), ("a dog", 0.7, "m2"), ("A  Cat", 0.5, "m3")]) == (
        "A  Cat",
        pytest.approx(0.3),
        "m3",
    )  # a cat: 0.9 of 3 frames; the most confident wording is kept
    assert vote([("red", 0.5, "x"), ("blue", 0.5, "y")])[0] == "red"


def test_merge_repeats_spans_neighbours_and_weights_confidence_by_duration():
    segs = [
        SegmentAnswer(0, 2, "red", 1.0, "m"),
        SegmentAnswer(2, 8, "Red", 0.5, "m"),
        SegmentAnswer(8, 9, "blue", 0.8, "m"),
        SegmentAnswer(9, 10, "red", 0.6, "m"),
    ]
    merged = merge_repeats(segs)
    assert [(s.start, s.end, s.text) for s in merged] == [(0, 8, "red"), (8, 9, "blue"), (9, 10, "red")]
    assert merged[0].confidence == pytest.approx((1.0 * 2 + 0.5 * 6) / 8)


def test_video_ranking_is_by_duration_weighted_confidence():
    frames = [Image.new("RGB", (2, 2))] * 3
    answers = iter([("short", 1.0, "m"), ("long", 0.5, "m"), ("long", 0.5, "m")])
    got = solve_video([(0, 1, frames[:1]), (1, 9, frames[1:])], lambda fs: [next(answers) for _ in fs])
    assert got.ranked == [("long", pytest.approx(0.5 * 8 / 9)), ("short", pytest.approx(1 / 9))]
    assert got.text == "long"
