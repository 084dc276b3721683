"""BLEU-4 and CIDEr-D against hand-counted references and their defining properties."""

import math

import pytest

from training.heads.metrics import bleu4, cider, cider_per_image


def test_bleu4_matches_hand_counted_precisions():
    hyp = "a red circle on a white background"
    ref = "a red circle on a black background"
    # clipped matches / total, counted by hand: 1-grams 6/7, 2-grams 4/6, 3-grams 3/5, 4-grams 2/4;
    # same length, so no brevity penalty
    expected = (6 / 7 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25
    assert bleu4([hyp], [[ref]]) == pytest.approx(expected)


def test_bleu4_brevity_penalty_uses_closest_reference():
    hyp = "a red circle on white"  # 5 words; references of 6 and 9 words: closest is 6
    refs = ["a red circle on white paper", "there is a red circle on white paper here"]
    # all n-grams of the hypothesis occur in the first reference: precisions are 1
    assert bleu4([hyp], [refs]) == pytest.approx(math.exp(1 - 6 / 5))


def test_bleu4_is_zero_without_a_four_gram_match():
    assert bleu4(["red circle"], [["red circle"]]) == 0.0  # too short for any 4-gram
    assert bleu4(["a b c d"], [["w x y z"]]) == 0.0


def test_cider_exact_match_of_distinct_captions_scores_ten():
    refs = [["a red circle on white"], ["the blue square is big"], ["green triangle near the top"]]
    hyps = [r[0] for r in refs]
    assert cider_per_image(hyps, refs) == pytest.approx([10.0, 10.0, 10.0])


def test_cider_ignores_ngrams_every_image_shares():
    refs = [["a photo of a cow"], ["a photo of a dog"], ["a photo of a cat"]]
    hyps = ["a photo of a dog", "a photo of a dog", "a photo of a cat"]
    # "a photo of a" is in every image's references, so its idf is 0: the first caption shares only
    # that with its reference and scores 0; the exact matches score 10
    assert cider_per_image(hyps, refs) == pytest.approx([0.0, 10.0, 10.0])
    assert cider(hyps, refs) == pytest.approx(20 / 3)


def test_cider_length_penalty():
    refs = [["a small red circle"], ["the big blue square"]]
    exact, longer = cider_per_image(["a small red circle", "the big blue square the big blue square"], refs)
    assert exact == pytest.approx(10.0)
    assert 0 < longer < 10.0
