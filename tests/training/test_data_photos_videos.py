"""photos and videos: curated lists with captions; missing sources are skipped and counted."""

import numpy as np
import skimage.data
from PIL import Image

from training.data.corpora import photos, videos
from training.data.manifest import load_manifest, media_path


def test_curated_lists_are_big_enough_and_captioned():
    assert len(photos.PHOTOS) >= 40 and len(videos.VIDEOS) >= 7
    for entry in [*photos.PHOTOS.values(), *videos.VIDEOS.values()]:
        assert entry.caption and entry.caption == entry.caption.strip()
    assert len({p.source for p in photos.PHOTOS.values()}) == len(photos.PHOTOS)  # no picture twice


def test_photos_from_skimage_and_missing_opencv(tmp_path):
    keys = ["astronaut", "coins", "horse", "apple"]  # apple comes from opencv-doc, missing here
    report = photos.build(
        "photos", tmp_path, keys, photos.partial(photos.make_item, opencv=tmp_path / "none")
    )
    assert report.skipped == {"unavailable": 1}
    manifest = tmp_path / "manifest.jsonl"
    items = {it.id: it for it in load_manifest(manifest)}
    assert sorted(items) == ["photos/astronaut", "photos/coins", "photos/horse"]
    astronaut = np.asarray(Image.open(media_path(manifest, items["photos/astronaut"])), dtype=np.int16)
    assert astronaut.shape == skimage.data.astronaut().shape
    assert np.abs(astronaut - skimage.data.astronaut()).mean() < 2  # the same picture as a quality-95 JPEG
    horse = np.asarray(Image.open(media_path(manifest, items["photos/horse"])).convert("L"))
    assert horse.min() < 30 and horse.max() > 225  # a bool mask scaled to 0..255
    assert items["photos/coins"].captions == [photos.PHOTOS["coins"].caption]


def test_videos_probe_and_copy(tmp_path):
    report = videos.build(
        "videos", tmp_path, ["carphone", "tree"], videos.partial(videos.make_item, opencv=tmp_path)
    )
    assert report.skipped == {"unavailable": 1}
    manifest = tmp_path / "manifest.jsonl"
    (item,) = load_manifest(manifest)
    src = videos.source_path(videos.VIDEOS["carphone"])
    assert item.media == "video" and media_path(manifest, item).read_bytes() == src.read_bytes()
    assert (item.meta["width"], item.meta["height"], item.meta["frames"]) == (176, 144, 120)
    assert abs(item.meta["duration"] - 4.004) < 0.01


def test_video_versions_share_a_split():
    for a, b in (("carphone", "carphone-distorted"), ("megamind", "megamind-glitchy")):
        assert videos.VIDEOS[a].group == videos.VIDEOS[b].group
