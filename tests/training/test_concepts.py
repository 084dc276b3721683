"""WordNet concepts for the image tower's classes (training/concepts.py), on fixed class lists."""

import pytest

from training.concepts import category_synsets, concepts_for


@pytest.fixture(scope="module")
def imagenet():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES), concepts_for(list(IMAGENET_CLASSNAMES))


def _by_name(imagenet, display):
    names, concepts = imagenet
    return concepts[names.index(display)]


def test_tabby_is_a_cat_and_an_animal(imagenet):
    tabby = _by_name(imagenet, "tabby cat")
    assert (tabby.synset, tabby.name, tabby.basic) == ("tabby.n.01", "tabby", "cat")
    assert tabby.ancestors & category_synsets("animal")
    assert not tabby.ancestors & category_synsets("fruit")
    assert tabby.caption() == "a tabby, a kind of cat"


def test_granny_smith_is_an_apple_and_a_fruit(imagenet):
    apple = _by_name(imagenet, "Granny Smith apple")
    assert apple.basic == "apple"
    assert apple.ancestors & category_synsets("fruit")
    assert not apple.ancestors & category_synsets("animal")


def test_common_names_stay_and_vehicles_are_vehicles(imagenet):
    orange = _by_name(imagenet, "orange")
    assert orange.basic == orange.name == "orange" and orange.caption() == "an orange"
    for display in ("sports car", "moped", "school bus"):
        assert _by_name(imagenet, display).ancestors & category_synsets("vehicle"), display
    assert _by_name(imagenet, "Pekingese").basic == "dog"


def test_the_imagenet_list_maps_by_wnid_not_by_name(imagenet):
    names, concepts = imagenet
    # two ImageNet classes are both called "missile" (n03773504 and the projectile, n04008634)
    assert names[657] == names[744] == "missile"
    assert concepts[657].synset != concepts[744].synset
    assert concepts[134].ancestors & category_synsets("bird")  # "crane bird", not the machine
    assert not concepts[517].ancestors & category_synsets("bird")


def test_other_class_lists_map_by_name_and_unknown_names_say_so():
    cat, car = concepts_for(["cat", "car"])
    assert cat.ancestors & category_synsets("animal") and car.ancestors & category_synsets("vehicle")
    with pytest.raises(ValueError, match="xqzv"):
        concepts_for(["xqzv"])


def test_synset_reads_from_many_threads_match_one_thread():
    """The service looks synsets up from several worker threads at once; each read gets its own
    synset (nltk's shared seek + readline interleaved: None or a WordNetError, a 500 under load)."""
    from concurrent.futures import ThreadPoolExecutor

    from training.concepts import wordnet

    wn = wordnet()
    offsets = [s.offset() for s in list(wn.all_synsets("n"))[:2000]]

    def read(chunk):
        names = []
        for off in chunk:
            wn._synset_offset_cache["n"].pop(off, None)  # read the data file again, not nltk's cache
            names.append(wn.synset_from_pos_and_offset("n", off).name())
        return names

    alone = read(offsets)
    with ThreadPoolExecutor(8) as pool:
        parts = list(pool.map(read, [offsets[i::8] for i in range(8)]))
    assert [parts[i % 8][i // 8] for i in range(len(offsets))] == alone


def test_a_satellite_adjective_lookup_returns():
    """A satellite adjective ("green") reads its head synset while its own read holds the reader's lock;
    a plain lock waited on itself for ever (the caption junk check looks up every part of speech)."""
    import threading

    from training.concepts import wordnet

    wn = wordnet()
    wn._synset_offset_cache["s"].clear()
    wn._synset_offset_cache["a"].clear()
    found = []
    reader = threading.Thread(target=lambda: found.extend(wn.synsets("green", pos="s")), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "the WordNet read deadlocked"
    assert any(s.name().startswith("green.s") for s in found)
