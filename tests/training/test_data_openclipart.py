"""openclipart on a tiny folder of SVGs: titles, descriptions, skips, duplicates, and splits by group."""

from pathlib import Path

import numpy as np
from PIL import Image

from training.data.corpora import openclipart
from training.data.manifest import Item, load_manifest, media_path, split_for

META = """<metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns:cc="http://creativecommons.org/ns#" xmlns:dc="http://purl.org/dc/elements/1.1/">
 <cc:Work rdf:about="">{title}{description}
  <dc:subject><rdf:Bag>{keywords}</rdf:Bag></dc:subject>
  <dc:creator><cc:Agent><dc:title>Some Artist</dc:title></cc:Agent></dc:creator>
 </cc:Work></rdf:RDF></metadata>"""


def svg(
    title: str | None, fill: str = "red", description: str = "", keywords=(), view_box="0 0 40 20"
) -> str:
    meta = META.format(
        title=f"<dc:title>{title}</dc:title>" if title else "",
        description=f"<dc:description>{description}</dc:description>" if description else "",
        keywords="".join(f"<rdf:li>{k}</rdf:li>" for k in keywords),
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" viewBox="{view_box}">{meta}'
        f'<rect x="0" y="0" width="40" height="10" fill="{fill}"/></svg>'
    )


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text, encoding="utf-8")


def tiny_source(root: Path) -> Path:
    write(
        root,
        "animals/cow_1.svg",
        svg("Cartoon Cow 1", "brown", "A &lt;b&gt;brown&lt;/b&gt; cow, see x.org", ["Cow", "hash", "hay"]),
    )
    write(root, "animals/cow_2.svg", svg("cartoon_cow-2", "black"))
    write(root, "animals/mammals/cow_1.svg", (root / "animals/cow_1.svg").read_text())  # the package's twins
    write(root, "food/apple.svg", svg("Apple", "green", "Apple"))
    write(root, "food/untitled.svg", svg(None, "blue"))
    write(root, "food/broken.svg", svg("Broken", view_box="0 0 x y"))  # valid XML, cairosvg cannot render
    write(root, "food/truncated.svg", svg("Truncated")[:-20])
    write(root, "shapes/white.svg", svg("White box", "white"))
    return root


def test_prepare_tiny_folder(tmp_path):
    src = tiny_source(tmp_path / "svg")
    out = tmp_path / "out"
    report = openclipart.prepare(out, source=src)
    assert report.skipped == {"duplicate": 1, "untitled": 1, "unrenderable": 1, "unparsable": 1, "blank": 1}
    items = {it.id: it for it in load_manifest(out / "manifest.jsonl")}
    assert sorted(items) == [
        "openclipart/animals/cow_1",
        "openclipart/animals/cow_2",
        "openclipart/food/apple",
    ]

    cow = items["openclipart/animals/cow_1"]
    assert cow.captions == ["Cartoon Cow 1", "A brown cow, see x.org"]
    assert cow.meta["keywords"] == ["cow", "hay"]
    assert cow.meta["category"] == "animals"
    # the description equal to the title adds nothing
    assert items["openclipart/food/apple"].captions == ["Apple"]

    img = Image.open(media_path(out / "manifest.jsonl", cow))
    assert img.size == (224, 224) and img.mode == "RGB"
    px = np.asarray(img)
    # a 40x20 drawing whose top half is brown: scaled to 224 wide, centred vertically on white
    assert (px[0] == 255).all() and (px[-1] == 255).all()
    assert tuple(px[60, 112]) == (165, 42, 42)  # CSS "brown"
    assert (px[150, 112] == 255).all()  # the undrawn lower half of the drawing stays white


def test_series_share_group_and_split(tmp_path):
    openclipart.prepare(tmp_path / "o", source=tiny_source(tmp_path / "svg"))
    items = {it.id: it for it in load_manifest(tmp_path / "o/manifest.jsonl")}
    a, b = items["openclipart/animals/cow_1"], items["openclipart/animals/cow_2"]
    assert a.meta["group"] == b.meta["group"] == "cartoon cow"
    assert a.split == b.split == split_for("cartoon cow")


def test_title_group_and_description_cleaning():
    assert (
        openclipart.title_group("Cartoon Cow 2") == openclipart.title_group("cartoon_cow-1") == "cartoon cow"
    )
    assert openclipart.title_group("1234 !!") == ""
    assert openclipart.clean_description("<p>A &amp; B</p>  www.x.org ", "t") == "A & B"
    assert openclipart.clean_description("Cow.", "cow") == ""
    long = openclipart.clean_description("word " * 100, "t")
    assert len(long) <= 200 and long.endswith("word")


def test_identical_drawings_under_different_titles_share_a_group(tmp_path):
    src = tmp_path / "svg"
    write(src, "a/sun.svg", svg("Sun", "yellow"))
    write(src, "b/star.svg", svg("Bright star", "yellow", keywords=["x"]))  # same picture, other title
    write(src, "b/moon.svg", svg("Moon", "gray", view_box="0 0 20 40"))
    openclipart.prepare(tmp_path / "o", source=src)
    items = {it.id: it for it in load_manifest(tmp_path / "o/manifest.jsonl")}
    sun, star, moon = (items[f"openclipart/{k}"] for k in ("a/sun", "b/star", "b/moon"))
    assert sun.meta["image_hash"] == star.meta["image_hash"] != moon.meta["image_hash"]
    assert sun.meta["group"] == star.meta["group"] == "bright star"  # the smaller stem names the group
    assert sun.split == star.split == split_for("bright star")
    assert moon.meta["group"] == "moon" and sun.meta["title_stem"] == "sun"


def test_boilerplate_descriptions_are_dropped():
    for text in [
        "Created with Inkscape",
        "Made with Sodipodi",
        "EPS converted from",
        "jo.x@example.com",
        "HASH(0x86a)",
    ]:
        assert openclipart.clean_description(text, "t") == ""
    assert (
        openclipart.clean_description("Made to amuse my friends at school", "t")
        == "Made to amuse my friends at school"
    )


def test_collections_with_one_title_get_file_name_captions():
    def item(key: str, title: str) -> Item:
        return Item(id=key, path=key, captions=[title], meta={"source": f"/svg/{key}.svg"})

    bugs = ["ant", "bee", "spider", "fly", "wasp", "moth", "flea", "tick", "gnat", "mite", "louse", "beetle"]
    icons = [item(f"bugs/{name}", "Etiquette Icons") for name in bugs]
    stars = [item(f"stars/star_{i}pt", "gramastar") for i in range(12)]  # names do not tell them apart
    small = [item("a/cow_1", "cow"), item("a/cow_2", "cow")]
    out = openclipart.caption_series(icons + stars + small)
    assert out[0].captions == ["ant", "Etiquette Icons"] and out[2].captions == ["spider", "Etiquette Icons"]
    assert all(it.captions == ["gramastar"] for it in out[12:24])
    assert out[24].captions == ["cow"]
    assert openclipart.name_caption("signs/aiga_arriving_flights1.svg") == "aiga arriving flights"
