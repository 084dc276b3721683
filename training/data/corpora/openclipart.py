"""openclipart: the Debian `openclipart-svg` clip art, rendered to 224 px PNG on white with cairosvg.

Captions: the work's dc:title, plus its dc:description cleaned of markup and boilerplate; files in a
collection that shares one title ("Etiquette Icons") also get a caption from their file name.
meta: category (top folder), folder, keywords (dc:subject), group, title_stem, image_hash.
Untitled, unparsable, unrenderable, blank and byte-identical SVGs are skipped and counted. Splits are
by group, so near-duplicate series ("cartoon cow 1", "cartoon cow 2", or the same drawing under two
titles) never straddle train and test.
"""

import hashlib
import html
import io
import re
import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.corpora.builder import MEDIA, BuildReport, Skip, build, save_image, write_info
from training.data.manifest import Item, split_for

SOURCE = Path("/usr/share/openclipart/svg")
SIZE = 224
_MAX_DESCRIPTION = 200  # characters; long descriptions are mostly licence and drawing notes
# Descriptions that say how, not what: "Created with Inkscape", "EPS converted from".
_BOILERPLATE = re.compile(r"(?i)(eps )?(created|made|drawn|done|exported|converted)( \S+){0,2}")
# A title shared by at least this many files names a collection ("Etiquette Icons"), not the drawing;
# such files also get a caption from their file name ("ant", "spider") when those names differ.
SERIES_MIN = 10


def available(source: Path = SOURCE) -> str | None:
    """None when the source is present, else why not and how to get it."""
    if not any(source.rglob("*.svg")):
        return f"no SVGs under {source} (install the Debian package openclipart-svg)"
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(el: ET.Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def read_metadata(svg: bytes) -> tuple[str, str, list[str]]:
    """(title, description, keywords) of the cc:Work in an SVG's RDF metadata; "" / [] when absent.

    Namespace prefixes vary between files, so elements are matched by local name. The creator's
    dc:title (an Agent's name) is not the work's title and is ignored.
    """
    root = ET.fromstring(svg)
    work = next((el for el in root.iter() if _local(el.tag) == "Work"), None)
    if work is None:
        return "", "", []
    fields = {_local(child.tag): child for child in work}
    keywords: list[str] = []
    if "subject" in fields:
        for li in fields["subject"].iter():
            word = _text(li).lower() if _local(li.tag) == "li" else ""
            if word and word not in keywords and word != "hash":  # "hash": the same exporter artefact
                keywords.append(word)
    return _text(fields.get("title")), _text(fields.get("description")), keywords


def clean_description(text: str, title: str) -> str:
    """Markup, entities and URLs removed, whitespace collapsed, cut at a word near 200 characters;
    "" when nothing useful is left (empty, or just the title again)."""
    text = html.unescape(re.sub(r"<[^>]*>", " ", html.unescape(text)))
    # links, e-mail addresses, and Perl reference dumps ("HASH(0x868a30c)") left by the site's exporter
    text = re.sub(r"https?://\S+|www\.\S+|\S+@\S+|HASH\(0x[0-9a-f]+\)", " ", text)
    text = " ".join(text.split()).strip(" .,;:-")
    if len(text) > _MAX_DESCRIPTION:
        text = text[:_MAX_DESCRIPTION].rsplit(" ", 1)[0]
    if len(text) < 3 or text.lower() == title.lower() or _BOILERPLATE.fullmatch(text):
        return ""
    return text


def name_caption(key: str) -> str:
    """A caption from a file name: "signs/aiga_arriving_flights1.svg" -> "aiga arriving flights"."""
    words = re.sub(r"[\W\d_]+", " ", Path(key).stem.lower()).split()
    return " ".join(w for w in words if len(w) > 1)


def title_group(title: str) -> str:
    """The normalised title stem: lower case, digits and punctuation stripped, spaces collapsed.
    "Cartoon Cow 2" and "cartoon_cow-1" -> "cartoon cow"."""
    return " ".join(re.sub(r"[\W\d_]+", " ", title.lower()).split())


def image_hash(img: Image.Image) -> str:
    """A perceptual hash: the 16x16 difference hash of the grey image (the shapes) plus the 2x2 mean
    colour at 4 bits a channel. Equal for one drawing filed twice or re-exported; different for drawings
    that share an outline but not colours."""
    g = np.asarray(img.convert("L").resize((17, 16), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).ravel()  # (256,)
    colour = np.asarray(img.convert("RGB").resize((2, 2), Image.Resampling.BOX)).ravel() // 16  # (12,)
    return np.packbits(bits).tobytes().hex() + "-" + "".join(f"{c:x}" for c in colour)


def render(svg: bytes, size: int = SIZE) -> Image.Image:
    """The drawing scaled to fit size x size, centred on white; RGB."""
    import cairosvg

    # One render at the target width; a tall drawing is then scaled down (cheaper than rendering twice).
    img = Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg, output_width=size))).convert("RGBA")
    if img.height > size:
        img = img.resize((max(1, round(img.width * size / img.height)), size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), "white")
    canvas.alpha_composite(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas.convert("RGB")


def make_item(key: str, out_dir: Path, source: Path = SOURCE) -> Item | Skip:
    """One SVG (key: its path under the source, e.g. "animals/cow.svg") -> a PNG and its Item."""
    src = source / key
    try:
        title, description, keywords = read_metadata(src.read_bytes())
    except ET.ParseError as e:
        return Skip("unparsable", f"{src}: {e}")
    if not title or not title_group(title):
        return Skip("untitled", str(src))
    try:
        img = render(src.read_bytes())
    except Exception as e:  # cairosvg raises many types on bad SVGs (ValueError, KeyError, ...)
        return Skip("unrenderable", f"{src}: {type(e).__name__}: {e}")
    if img.convert("L").getextrema()[0] >= 250:
        return Skip("blank", str(src))
    rel = Path(MEDIA) / Path(key).with_suffix(".png")
    save_image(img, out_dir / rel)
    description = clean_description(description, title)
    return Item(
        id="openclipart/" + Path(key).with_suffix("").as_posix(),
        path=rel.as_posix(),
        captions=[title] + ([description] if description else []),
        meta={
            "category": Path(key).parts[0],
            "folder": Path(key).parent.as_posix(),
            "keywords": keywords,
            "group": title_group(title),
            "image_hash": image_hash(img),
            "source": str(src),
        },
    )


def assign_groups(items: list[Item]) -> list[Item]:
    """Merges groups that share a title stem or an image hash (union-find); the split follows the group.

    meta["group"] becomes the smallest title stem in the merged group (meta["title_stem"] keeps the
    item's own), so a drawing filed under two titles lands in one split with all its twins.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for it in items:
        a, b = find("t:" + it.meta["group"]), find("h:" + it.meta["image_hash"])
        if a != b:
            parent[max(a, b)] = min(a, b)
    # The representative is a "h:" or "t:" key; name each component by its smallest title stem.
    names: dict[str, str] = {}
    for it in items:
        root = find("t:" + it.meta["group"])
        names[root] = min(names.get(root, it.meta["group"]), it.meta["group"])
    for it in items:
        it.meta["title_stem"] = it.meta["group"]
        it.meta["group"] = names[find("t:" + it.meta["title_stem"])]
        it.split = split_for(it.meta["group"])
    return items


def caption_series(items: list[Item]) -> list[Item]:
    """Puts a file-name caption first for files in a collection with a shared title, when the file
    names tell its members apart (at least half of them distinct); e.g. "Etiquette Icons" -> "ant"."""
    series: dict[str, list[Item]] = {}
    for it in items:
        series.setdefault(title_group(it.captions[0]), []).append(it)
    for members in series.values():
        names = [name_caption(it.meta["source"]) for it in members]
        if len(members) >= SERIES_MIN and len(set(names)) * 2 >= len(members):
            for it, name in zip(members, names, strict=True):
                if name and name not in it.captions:
                    it.captions.insert(0, name)
    return items


def finalize(items: list[Item]) -> list[Item]:
    """The passes that need every item: series captions, then groups and splits."""
    return assign_groups(caption_series(items))


def source_keys(source: Path = SOURCE) -> list[str]:
    return sorted(p.relative_to(source).as_posix() for p in source.rglob("*.svg"))


def find_duplicates(source: Path, keys: list[str]) -> dict[str, str]:
    """key -> the first key (in order) whose file has the same bytes."""
    first: dict[str, str] = {}
    dupes = {}
    for key in keys:
        digest = hashlib.sha1((source / key).read_bytes()).hexdigest()
        if digest in first:
            dupes[key] = first[digest]
        else:
            first[digest] = key
    return dupes


def prepare(out_dir: Path, limit: int | None = None, workers: int = 1, source: Path = SOURCE) -> BuildReport:
    """Renders every SVG under `source` into out_dir (resumable); splits by merged group.

    Byte-identical files (the package files some drawings under two folders) are counted as skipped
    "duplicate" and only the first, in path order, is kept.
    """
    keys = source_keys(source)
    limited = limit is not None and limit < len(keys)
    keys = keys[:limit]
    dupes = find_duplicates(source, keys)
    for key in dupes:  # media of a duplicate rendered by an older build
        (out_dir / MEDIA / key).with_suffix(".png").unlink(missing_ok=True)
    unique = [k for k in keys if k not in dupes]
    report = build(
        "openclipart",
        out_dir,
        unique,
        partial(make_item, source=source),
        workers=workers,
        finalize=finalize,
    )
    if dupes:
        report.skipped["duplicate"] = len(dupes)
        report.examples["duplicate"] = [f"{source / k} = {source / v}" for k, v in list(dupes.items())[:5]]
    report.limit = limit if limited else None
    write_info(out_dir, report)
    return report
