"""VQATask / CaptionTask on manifests: data reading, deterministic sharded batches, frozen-feature cache."""

import pytest
import torch
from PIL import Image

from training.data.manifest import QA, Item, write_manifest
from training.factory import create_model
from training.heads import attach_heads, build_vocab
from training.heads.fit import freeze_encoder
from training.heads.tasks import CaptionTask, VQATask, caption_pairs, qa_examples


@pytest.fixture
def manifest(tmp_path):
    items = []
    for i, (colour, rgb) in enumerate([("red", (220, 0, 0)), ("blue", (0, 0, 220))] * 4):
        Image.new("RGB", (32, 32), rgb).save(tmp_path / f"{i}.png")
        items.append(
            Item(
                id=str(i), path=f"{i}.png", captions=[f"a {colour} square", f"{colour}"],
                split="test" if i >= 6 else "train",
                qa=[QA(question="what color is the shape?", answer=colour, type="color"),
                    QA(question="is it red?", answer="yes" if colour == "red" else "no", type="color")],
            )
        )  # fmt: skip
    path = tmp_path / "corpus" / "manifest.jsonl"
    path.parent.mkdir()
    for it in items:
        it.path = str(tmp_path / it.path)
    write_manifest(path, items)
    return path


def test_examples_come_from_the_requested_split(manifest):
    train, test = qa_examples(manifest), qa_examples(manifest, ("test",))
    assert (len(train), len(test)) == (12, 4)
    assert train[0].key == "corpus/0" and train[0].type == "color"
    assert len(caption_pairs(manifest)) == 6


def test_batches_are_deterministic_and_shard_the_global_batch(manifest):
    task = VQATask(qa_examples(manifest), batch_size=4)
    one = list(task.batches(0, 1, seed=3, epoch=1))
    ranks = [list(task.batches(r, 2, seed=3, epoch=1)) for r in range(2)]
    assert len(one) == task.batches_per_epoch(1) == 3
    for b, (r0, r1) in zip(one, zip(*ranks, strict=True), strict=True):
        assert b["questions"] == r0["questions"] + r1["questions"]
    assert list(task.batches(0, 1, seed=3, epoch=1, start=1)) == one[1:]
    assert [b["keys"] for b in one] != [b["keys"] for b in task.batches(0, 1, seed=3, epoch=2)]


def test_caption_task_cycles_captions_by_epoch(manifest):
    task = CaptionTask(caption_pairs(manifest), batch_size=6)
    [b0], [b1] = task.batches(0, 1, 0, 0), task.batches(0, 1, 0, 1)
    assert all(c.startswith("a ") for c in b0["captions"]) and not any(" " in c for c in b1["captions"])
    assert task.head_config()["vocab"][4:] == ["a", "blue", "red", "square"]  # 6 times each: alphabetical
    assert build_vocab(["Sq b, a!", "a c", "c a"])[4:] == ["a", "c", "b", "sq"]  # by count, then alphabetical


@pytest.mark.parametrize("task_cls", [VQATask, CaptionTask])
def test_frozen_cache_gives_the_uncached_loss(manifest, task_cls, monkeypatch):
    data = qa_examples(manifest) if task_cls is VQATask else caption_pairs(manifest)
    task = task_cls(data, batch_size=6)
    cfg = (
        task.head_config(hidden=32, dropout=0.0)
        if task_cls is VQATask
        else task.head_config(width=32, dropout=0.0)
    )
    model = attach_heads(create_model("tiny-clip"), {task.name: cfg}).eval()
    calls = []
    tower = type(model).image_tokens
    monkeypatch.setattr(type(model), "image_tokens", lambda self, x: calls.append(len(x)) or tower(self, x))
    batch = next(task.batches(0, 1, 0, 0))
    live = task.loss(model, batch)  # encoder trainable: no cache
    assert live.requires_grad and calls == [6]
    freeze_encoder(model)
    cached_first, cached_again = task.loss(model, batch), task.loss(model, batch)
    assert calls == [6, len(set(batch["keys"]))]  # computed once per distinct image, then looked up
    # float16 storage of the cached tokens is the only difference
    torch.testing.assert_close(cached_first, live, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(cached_again, cached_first)
