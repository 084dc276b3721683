"""The default preset's heads stage: VQA + caption heads fitted onto a saved model, encoder untouched."""

import shutil

import torch

from tests.training.synthetic import make_corpus
from training.factory import load_model, read_card
from training.heads import answer_questions, generate_captions
from training.heads.evaluate import vqa_accuracy
from training.heads.fit import HeadsRecipe, fit_default_heads
from training.heads.tasks import qa_examples
from training.tasks import load_rgb


def test_heads_are_added_without_changing_the_embeddings(tiny_model_dir, tmp_path):
    manifest = make_corpus("shapes", copies=3, test_copies=1)
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    before = load_model(model_dir)
    texts = ["a red circle", "a blue square"]

    recipe = HeadsRecipe(vqa_corpus="shapes", caption_corpora=("shapes",), train_images=100,
                         caption_images=100, vqa_epochs=40, caption_epochs=20)  # fmt: skip
    card = fit_default_heads(model_dir, recipe)

    after = load_model(model_dir)
    assert set(after.heads) == {"vqa", "caption"}
    assert card["fingerprint"] == after.fingerprint != before.fingerprint
    assert torch.equal(after.embed_texts(texts), before.embed_texts(texts))
    test_qa = qa_examples(manifest, ("test",))
    acc = vqa_accuracy(after, test_qa)["vqa/accuracy"]
    assert card["heads"]["shapes/test/vqa/accuracy"] == acc
    assert acc > 0.5  # four colours: chance is 0.25
    image = load_rgb(test_qa[0].image)
    answers = answer_questions(after, [image], [test_qa[0].question], k=2)[0]
    assert [a for a, _ in answers][0] in {"red", "green", "blue", "yellow"}
    assert generate_captions(after, [image])[0][0][0]
    assert read_card(model_dir)["heads"]["recipe"]["fusion"] == "early"
