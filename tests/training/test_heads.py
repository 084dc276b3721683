"""Caption decoder, beam search, VQA fusion modes, checkpoint round trip and API errors, on tiny-clip."""

import itertools

import pytest
import torch
from PIL import Image

from training.errors import XModalError
from training.factory import create_model, load_model, save_model
from training.heads import (
    EmptyQuestionError,
    MissingHeadError,
    answer_questions,
    attach_heads,
    build_vocab,
    generate_captions,
    retrieve_captions,
)
from training.heads.beam import beam_search
from training.heads.caption import CaptionConfig, CaptionHead
from training.heads.fit import train_heads
from training.heads.tasks import CaptionTask, QAExample, VQATask
from training.tasks import Pair

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


def solid(colour: str, size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), COLOURS[colour])


def pixels(model, names: list[str]) -> torch.Tensor:
    return torch.stack([model.preprocess(solid(c)) for c in names])


def tiny(heads: dict | None = None):
    torch.manual_seed(0)
    model = create_model("tiny-clip")
    return attach_heads(model, heads).eval() if heads else model


def caption_head(**kw) -> CaptionHead:
    torch.manual_seed(0)
    return CaptionHead(
        CaptionConfig(build_vocab(["a red circle", "a blue square"]), width=32, **kw), 16
    ).eval()


def test_decoder_shapes():
    head = caption_head(layers=2, max_len=6)
    ids = head.encode(["a red circle", "a blue square now"])  # "now" is not in the vocabulary
    assert ids.shape == (2, 6)  # <bos> 4 words <eos>; the unknown word becomes <unk>
    assert ids[1, 4] == head.word_index["<unk>"]
    memory = head.memory(torch.randn(2, 7, 16))
    assert memory.shape == (2, 8, 32)  # pooled token + 7 image tokens
    assert head(memory, ids).shape == (2, 6, len(head.config.vocab))


def test_decoder_is_causal():
    head = caption_head()
    memory = head.memory(torch.randn(1, 7, 16))
    ids = head.encode(["a red circle"])
    changed = ids.clone()
    changed[0, 3] = head.word_index["square"]
    a, b = head(memory, ids), head(memory, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])  # earlier positions cannot see position 3
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_decoder_ignores_padding():
    head = caption_head()
    memory = head.memory(torch.randn(2, 7, 16))
    ids = head.encode(["a red circle", "a blue square a red circle"])  # first row padded with 3 zeros
    alone = head(memory[:1], head.encode(["a red circle"]))
    torch.testing.assert_close(head(memory, ids)[:1, :5], alone)


def test_beam_search_matches_brute_force():
    # a fixed random Markov chain over 5 tokens (0 = bos, 1 = eos): with a beam wide enough to keep
    # every prefix, beam search must find the sequence with the best mean log-probability
    torch.manual_seed(1)
    table = torch.randn(5, 5).log_softmax(-1)

    def step(ids):
        return table[ids[:, -1]]

    best, best_score = None, float("-inf")
    for n in range(0, 4):
        for seq in itertools.product([2, 3, 4], repeat=n):
            path = [0, *seq, 1]
            lp = sum(float(table[a, b]) for a, b in itertools.pairwise(path))
            if lp / (n + 1) > best_score:
                best, best_score = list(seq), lp / (n + 1)
    [[(ids, score)]] = beam_search(step, 1, bos=0, eos=1, beam_size=27, max_len=3, k=1, banned=(0,))
    assert ids == best
    assert score == pytest.approx(best_score, abs=1e-5)


def test_beam_search_returns_memorised_caption():
    captions = {"red": "a red circle on white", "blue": "a big blue square", "green": "green triangle"}
    pairs = [Pair(c, solid(c), [text]) for c, text in captions.items()]
    task = CaptionTask(pairs, batch_size=3)
    model = tiny({"caption": task.head_config(width=64, layers=1, max_len=8, dropout=0.0)})
    train_heads(model, [task], epochs=150, lr=3e-3, progress=False)
    # PIL images, as the service passes them; max_len past the head's 8 is capped
    out = generate_captions(model, [solid(c) for c in captions], beam_size=3, max_len=30, k=2)
    assert [o[0][0] for o in out] == list(captions.values())
    assert all(len(o) == 2 and o[0][1] >= o[1][1] for o in out)


@pytest.mark.parametrize("fusion", ["early", "late", "hybrid"])
def test_vqa_head_overfits_tiny_set(fusion):
    questions = {"what colour is it?": lambda c: c, "what is the opposite colour?": lambda c: f"not {c}"}
    examples = [QAExample(c, solid(c), q, f(c)) for c in COLOURS for q, f in questions.items()]
    task = VQATask(examples, batch_size=6)
    model = tiny({"vqa": task.head_config(fusion, hidden=32, dropout=0.0)})
    train_heads(model, [task], epochs=100, lr=3e-3, progress=False)
    names = [e.key for e in examples]
    top = answer_questions(model, pixels(model, names), [e.question for e in examples], k=2)
    assert [t[0][0] for t in top] == [e.answer for e in examples]
    assert all(0 < p <= 1 for t in top for _, p in t)


def test_heads_survive_save_and_load(tmp_path):
    vocab = build_vocab(["a red circle", "a blue square"])
    model = tiny({"vqa": {"answers": ["yes", "no", "red"], "fusion": "hybrid", "hidden": 32},
                  "caption": {"vocab": vocab, "width": 32, "layers": 1}})  # fmt: skip
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    images = pixels(model, ["red", "blue"])
    assert loaded.config.heads == model.config.heads
    qs = ["is it red?", "what colour?"]
    assert answer_questions(loaded, images, qs) == answer_questions(model, images, qs)
    assert generate_captions(loaded, images, max_len=5) == generate_captions(model, images, max_len=5)


def test_retrieve_captions_ranks_by_dual_encoder():
    model = tiny()
    images = pixels(model, ["red", "blue"])
    bank = ["a red thing", "a blue thing", "a red thing", "something else"]
    out = retrieve_captions(model, images, bank, k=3)
    sims = model.embed_images([solid("red"), solid("blue")]) @ model.embed_texts(bank).T  # brute force
    for row, got in zip(sims, out, strict=True):
        order = sorted(set(bank), key=lambda t: -float(row[bank.index(t)]))
        assert [c for c, _ in got] == order[:3]  # distinct captions, best first


def test_empty_question_is_a_clear_error():
    model = tiny({"vqa": {"answers": ["yes", "no"], "hidden": 32}})
    with pytest.raises(EmptyQuestionError, match="question 1 is empty"):
        answer_questions(model, pixels(model, ["red", "blue"]), ["is it red?", "  "])


def test_model_without_heads_is_a_clear_error():
    model = tiny()
    images = pixels(model, ["red"])
    with pytest.raises(MissingHeadError, match="no vqa head"):
        answer_questions(model, images, ["is it red?"])
    with pytest.raises(MissingHeadError, match="no caption head"):
        generate_captions(model, images)


def test_bad_head_configs_are_clear_errors():
    with pytest.raises(XModalError, match="unknown fusion 'middle'"):
        tiny({"vqa": {"answers": ["yes"], "fusion": "middle"}})
    with pytest.raises(XModalError, match="unknown head 'poem'"):
        tiny({"poem": {}})
    with pytest.raises(XModalError, match="max_len must be at least 1"):
        generate_captions(
            tiny({"caption": {"vocab": build_vocab(["a b"])}}), torch.zeros(1, 3, 32, 32), max_len=0
        )
    with pytest.raises(XModalError, match=r"images must be a \(B, 3, H, W\) tensor"):
        retrieve_captions(tiny(), torch.zeros(3, 32, 32), ["a b"])
