"""Hostile corpora: tar members that would escape the media cache, oversized and overlong videos,
and one extension table for every reader. A bad item is skipped and named, never the job's end."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from index.cli import main
from index.readers import read_dir_records, read_shard_records
from tests.index.helpers import make_image, make_video
from training.data.corpora import corpus_manifest
from training.data.importer import import_folder
from training.data.manifest import read_manifest
from training.home import indexes_dir
from training.media_kinds import VIDEO_EXTS
from training.video import VideoConfig, sample_video


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


@pytest.fixture
def hostile_tar(tmp_path):
    make_image(tmp_path / "ok.png", 1)
    png = (tmp_path / "ok.png").read_bytes()
    path = tmp_path / "evil-000.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "good.png", png)
        _add(tar, "good.txt", b"a good picture")
        _add(tar, "badmeta.png", png)
        _add(tar, "badmeta.json", b"{not json")
        _add(tar, str(tmp_path / "abs.png"), png)
        _add(tar, "../../escape.png", png)
        _add(tar, "sub/../../up.png", png)
        _add(tar, "link.png", kind=tarfile.SYMTYPE, link="/etc/passwd")
        _add(tar, "hard.png", kind=tarfile.LNKTYPE, link="good.png")
    return path


def test_unsafe_tar_members_are_refused_naming_the_tar_and_member(hostile_tar, tmp_path):
    cache = tmp_path / "cache"
    records = read_shard_records(str(hostile_tar), cache)
    good = [r for r in records if not r.refused]
    assert [r.item_id for r in good] == ["evil-000/good"] and good[0].captions == ["a good picture"]
    refused = {r.item_id.split("/", 1)[1]: r.refused for r in records if r.refused}
    unsafe = {
        str(tmp_path / "abs.png"),
        "../../escape.png",
        "sub/../../up.png",
        "link.png",
        "hard.png",
        "badmeta",
    }
    assert set(refused) == unsafe
    assert all(str(hostile_tar) in why and "refused" in why for why in refused.values())
    assert "absolute" in refused[str(tmp_path / "abs.png")] and "'..'" in refused["../../escape.png"]
    assert "link" in refused["link.png"] and "link" in refused["hard.png"]
    assert "'badmeta.json': invalid JSON" in refused["badmeta"]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "cache/evil-000/badmeta.png",
        "cache/evil-000/good.png",
        "evil-000.tar",
        "ok.png",
    ]  # nothing outside the cache


def test_an_index_job_over_a_hostile_tar_finishes_and_reports_the_refused_members(
    hostile_tar, tiny_model_dir, capsys
):
    main(["build", "--name", "t", "--model", str(tiny_model_dir), "--shards", str(hostile_tar)]
         + ["--workers", "0", "--no-progress"])  # fmt: skip
    report = json.loads(next((indexes_dir() / "t").glob("v*/report.json")).read_text())
    assert report["new_items"] == 1 and report["skipped"] == 6
    assert {f["item_id"] for f in report["failures"]} >= {"evil-000/link.png", "evil-000/../../escape.png"}
    assert "skipped 6" in capsys.readouterr().out


def test_video_frames_are_downscaled_at_decode_and_duration_is_capped(tmp_path):
    path = tmp_path / "big.mp4"
    make_video(path, seconds=6, fps=4, size=320)
    sample = sample_video(path, VideoConfig(segment_seconds=1, decode_size=40, max_seconds=3))
    assert sample.duration == 3 and [s for s, _, _ in sample.segments] == [0, 1, 2]
    sizes = {im.size for im in sample.frames} | {im.size for _, _, fs in sample.segments for im in fs}
    assert sizes == {(40, 40)}
    capped = sample_video(path, VideoConfig(segment_seconds=1, max_frames=5))  # 5 frames = 1.25 s decoded
    assert capped.duration == pytest.approx(6, abs=0.3)  # the header's duration; frames past the cap
    assert len({im.tobytes() for im in capped.frames[-3:]}) == 1  # ... repeat the last decoded one


def test_every_reader_uses_one_extension_table(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    for i, ext in enumerate(sorted(VIDEO_EXTS)):
        (media / f"v{i}{ext}").write_bytes(b"not decoded by the readers")
    make_image(media / "real.png", 0)
    index_kinds = {r.path.rsplit(".", 1)[1] for r in read_dir_records(media)}
    _, skipped = import_folder(media, name="imp")  # imported, or skipped as undecodable: seen
    assert "ogv" in index_kinds and index_kinds == {e[1:] for e in VIDEO_EXTS} | {"png"}
    imported = {Path(it.path).name for it in read_manifest(corpus_manifest("imp"))}
    seen = imported | {Path(s.split(": ", 1)[0]).name for s in skipped}
    assert seen == {p.name for p in media.iterdir()} and "real.png" in imported
