"""The hand-written real-photo set (training/eval/real_photos.json) and the pieces that score it."""

import itertools

from training.evaluate import best_bank_cut, caption_hit, real_photo_set
from training.questions import parse_question


def test_every_photo_has_two_routable_questions_and_caption_words():
    spec = real_photo_set()
    assert len(spec["photos"]) == 47
    for key, photo in spec["photos"].items():
        assert len(photo["questions"]) >= 2 and photo["caption_words"], key
        for qa in photo["questions"]:
            assert parse_question(qa["question"]).kind != "other", qa
            assert qa["answers"] and all(a == a.lower() for a in qa["answers"]), qa
    videos = spec["videos"]
    assert len(videos) >= 5 and all(q["query"] and q["relevant"] for q in videos)


def test_caption_hit_matches_words_and_phrases():
    assert caption_hit("a tabby, a kind of cat", ["cat", "kitten"])
    assert not caption_hit("a catamaran", ["cat"])
    assert caption_hit("a printed circuit board", ["circuit board"])


def test_best_bank_cut_against_brute_force():
    rows = [(0.9, True, False), (0.8, True, True), (0.7, False, True), (0.6, True, False), (0.5, False, True)]

    def hits(cut):
        return sum(bank if s >= cut else other for s, bank, other in rows)

    cut = best_bank_cut(rows)
    assert hits(cut) == max(hits(c) for c in [s for s, _, _ in rows]) > hits(float("inf"))
    never = [(s, False, o) for s, _, o in rows]
    assert best_bank_cut(never) is None
    assert all(best_bank_cut(list(p)) == cut for p in itertools.permutations(rows))
