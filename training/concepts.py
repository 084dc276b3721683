"""Concepts from WordNet for the image tower's classes (DESIGN.md "Understanding real photos").

The EfficientNet tower's 1,000 ImageNet classes are WordNet 3.0 synsets (their wnids, `n02123045`, are
noun offsets; timm ships the list in ImageNet order). WordNet is Debian's `wordnet-base`, read with
nltk. A class becomes a Concept:

    tabby (n02123045) -> name "tabby", basic "cat" (the nearest common hypernym), ancestors {cat,
    feline, carnivore, mammal, animal, ...}: "what animal is this?" -> "cat"; caption "a tabby, a kind of cat"

Other class lists (a tiny test tower's "cat", "dog") map by name to their first noun synset.
"""

import io
import os
import threading
from dataclasses import dataclass
from functools import lru_cache

WORDNET_DIR = os.environ.get("XMODAL_WORDNET_DIR", "/usr/share/wordnet")  # Debian wordnet-base

# WordNet 3.0's lexicographer files in number order (lexnames(5WN)). nltk reads them from a `lexnames`
# file that Debian's package leaves out; nothing here uses them beyond letting the reader start.
_LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]

# A hypernym counts as a "basic" name (cat, dog, apple, car) when its lemmas occur at least this often
# in WordNet's sense-tagged corpus (cntlist): tabby (0) -> domestic_cat (3) -> cat (18+).
BASIC_MIN_COUNT = 5
BASIC_MAX_UP = 2  # hypernym steps to look for one; higher up they get too general ("solid", "equipment")


class MissingWordNetError(RuntimeError):
    """WordNet's dict files are not where WORDNET_DIR says (install Debian `wordnet-base`)."""


@lru_cache(maxsize=1)
def wordnet():
    """nltk's WordNet reader on Debian's dict files (read once per process)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if not os.path.exists(os.path.join(WORDNET_DIR, "data.noun")):
        raise MissingWordNetError(
            f"WordNet not found in {WORDNET_DIR}: install Debian wordnet-base or set XMODAL_WORDNET_DIR"
        )
    if WORDNET_DIR not in nltk.data.path:  # nltk only opens corpus files under its data roots
        nltk.data.path.append(WORDNET_DIR)

    class DebianWordNet(WordNetCorpusReader):
        def open(self, file):
            if file == "lexnames":
                return io.StringIO("".join(f"{i:02d}\t{n}\t0\n" for i, n in enumerate(_LEXNAMES)))
            return super().open(file)

        def map_wn(self, version="wordnet"):
            return None  # this IS WordNet 3.0: no mapping to nltk's downloadable copy

        # nltk reads a synset by seek + readline on one open file per part of speech: two threads (the
        # service's caption and VQA workers) interleave there and read each other's lines (None, or a
        # WordNetError that answered 500). One read at a time; parsed synsets stay cached.
        _read = threading.RLock()  # reentrant: a satellite adjective reads its head synset inside

        def synset_from_pos_and_offset(self, pos, offset):
            with self._read:
                return super().synset_from_pos_and_offset(pos, offset)

    import warnings

    with warnings.catch_warnings():  # "multilingual functions are not available": we need none
        warnings.simplefilter("ignore", UserWarning)
        return DebianWordNet(WORDNET_DIR, None)


def _name(lemma: str) -> str:
    return lemma.replace("_", " ")


def _count(synset) -> int:
    return sum(lemma.count() for lemma in synset.lemmas())


@dataclass(frozen=True)
class Concept:
    """One class of the image tower in WordNet's terms."""

    index: int  # the class's column in the tower's logits
    synset: str  # e.g. "tabby.n.01"
    name: str  # its first lemma, "tabby"
    basic: str  # the nearest common hypernym's lemma ("cat"), or `name` itself when it is common
    ancestors: frozenset[str]  # synset names on every hypernym path, itself included
    gloss: str

    def caption(self) -> str:
        """'a tabby, a kind of cat', or 'an orange' when the class's name is already the basic one."""
        head = f"{_article(self.name)} {self.name}"
        return head if self.basic == self.name else f"{head}, a kind of {self.basic}"

    def names(self) -> set[str]:
        return {self.name, self.basic}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _basic(synset, display: str) -> str:
    """The name a person would use: the head word of the class's display name when it names a hypernym
    ("tabby cat" -> cat, "Granny Smith apple" -> apple), else the most common hypernym within
    BASIC_MAX_UP steps ("Pekinese" -> dog), else the class's own first lemma."""
    own = _name(synset.lemma_names()[0])
    above = {s for path in synset.hypernym_paths() for s in path[:-1]}  # paths run entity -> ... -> self
    head = display.split()[-1].lower()
    if any(s in above for s in wordnet().synsets(head, pos="n")):
        return head
    if _count(synset) >= BASIC_MIN_COUNT:
        return own
    level = {synset}
    for _ in range(BASIC_MAX_UP):
        level = {h for s in level for h in s.hypernyms()}
        common = [s for s in level if _count(s) >= BASIC_MIN_COUNT]
        if common:
            return _name(max(common, key=_count).lemma_names()[0])
    return own


def _concept(index: int, synset, display: str) -> Concept:
    ancestors = frozenset(s.name() for path in synset.hypernym_paths() for s in path)
    name = _name(synset.lemma_names()[0])
    return Concept(index, synset.name(), name, _basic(synset, display), ancestors, synset.definition())


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k wnids in class-index order (timm's copy of the list)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


@lru_cache(maxsize=8)
def _concepts(classes: tuple[str, ...]) -> tuple[Concept, ...]:
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    wn = wordnet()
    if classes == tuple(IMAGENET_CLASSNAMES):
        synsets = [wn.synset_from_pos_and_offset("n", int(w[1:])) for w in imagenet_wnids()]
    else:
        synsets = []
        for c in classes:
            found = wn.synsets(c.strip().replace(" ", "_"), pos="n")
            if not found:
                raise ValueError(f"class {c!r} is not a WordNet noun; name the classes with WordNet nouns")
            synsets.append(found[0])
    return tuple(_concept(i, s, c) for i, (s, c) in enumerate(zip(synsets, classes, strict=True)))


def concepts_for(classes: list[str]) -> tuple[Concept, ...]:
    """A Concept per class name, in order (cached per class list)."""
    return _concepts(tuple(classes))


# Where WordNet's tree and everyday words part: buses, trains and trams are "public transport", a
# conveyance beside (not under) vehicle, yet everyone calls them vehicles.
CATEGORY_EXTRA = {"vehicle": ("conveyance.n.03",)}


def category_synsets(word: str) -> frozenset[str]:
    """The noun senses of `word` ("animal" -> {animal.n.01}, "fruit" -> {fruit.n.01, ...}): a class is
    of that category when one of them is among its ancestors. Empty when `word` is not a noun."""
    lemma = word.strip().lower().replace(" ", "_")
    senses = {s.name() for s in wordnet().synsets(lemma, pos="n")}
    return frozenset(senses | set(CATEGORY_EXTRA.get(lemma, ())))
