"""Concurrent writers and full disks: the writer lock serialises versions (a second writer waits or
fails naming the first), concurrent adds both land, CURRENT never moves back, and a write that runs
out of space leaves the published version intact with a clear error."""

import errno
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import index.publish
from index.publish import IndexLockedError, current_version, set_current, verify_version, writer_lock
from index.readers import read_sources
from index.runner import JobConfig, load_base, run_job
from index.search import open_index
from index.store import MetaStore
from tests.faults.conftest import FULL
from tests.index.helpers import write_corpus
from training.errors import XModalError
from training.factory import load_model
from training.home import indexes_dir

HOLD = textwrap.dedent(
    """
    import sys, time
    from index.publish import writer_lock
    with writer_lock("t"):
        print("holding", flush=True)
        time.sleep(60)
    """
)


def _ids(name):
    return [r.item_id for r in MetaStore(open_index(name).path / "meta.sqlite").all_rows()]


def _job(name, model, corpus, base=None):
    records, desc = read_sources(manifest=corpus)
    return run_job(name, model, records, desc, JobConfig(4, 0), base=base, progress=False)


@pytest.fixture
def built(tmp_path, tiny_model_dir):
    """Index "t" v0001 over items img0..img7, and the tiny model."""
    model = load_model(tiny_model_dir)
    _job("t", model, write_corpus(tmp_path / "a", 8))
    return model


def test_a_second_writer_fails_naming_the_holder_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    holder = subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"holding\n"
        locked = pytest.raises(IndexLockedError, match=rf"pid {holder.pid} on .* \(started 20\d\d-")
        with locked as e, writer_lock("t", wait_s=0.3):
            pass
        assert "after 0 s" in str(e.value)
        holder.kill()  # SIGKILL: the kernel drops its flock
        holder.wait()
        t0 = time.perf_counter()
        with writer_lock("t", wait_s=5):
            assert time.perf_counter() - t0 < 1
    finally:
        holder.kill()
        holder.wait()


def test_concurrent_adds_both_land_and_current_only_moves_forward(tmp_path, built):
    stale = load_base("t")  # the base both adds start from
    _job("t", built, write_corpus(tmp_path / "b", 4, start=100), base=load_base("t"))  # v0002
    report = _job("t", built, write_corpus(tmp_path / "c", 4, start=200), base=stale)  # rebased on v0002
    assert report["version"] == "v0003" and current_version("t") == "v0003"
    ids = _ids("t")
    assert sorted(ids) == sorted(
        [f"img{i}" for i in range(8)] + [f"img{i}" for i in (*range(100, 104), *range(200, 204))]
    )
    assert open_index("t").manifest["parent"] == "v0002"
    with pytest.raises(XModalError, match="CURRENT is v0003, newer than v0002"):
        set_current("t", "v0002")
    set_current("t", "v0002", forward_only=False)  # `index use`: an explicit rollback
    assert current_version("t") == "v0002"


@pytest.mark.skipif(
    not FULL, reason="two processes, ~1 min here; run by `make faults` (the rebase is tested above)"
)
def test_two_concurrent_index_add_processes_both_land(tmp_path, built, tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    n = 40 if FULL else 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "index.cli", "add", "--name", "t", "--model", str(tiny_model_dir)]
            + ["--manifest", str(write_corpus(tmp_path / d, n, start=s)), "--workers", "0", "--no-progress"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for d, s in (("b", 100), ("c", 200))
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode()[-1500:] for _, e in outs]
    want = [f"img{i}" for i in (*range(8), *range(100, 100 + n), *range(200, 200 + n))]
    assert sorted(_ids("t")) == sorted(want)
    assert current_version("t") == "v0003"


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_a_version_leaves_the_published_one_intact(tmp_path, built, monkeypatch):
    before = _ids("t")
    with monkeypatch.context() as m:
        m.setattr(index.publish, "write_store", _enospc)  # the disk fills while meta.sqlite is written
        with pytest.raises(
            XModalError, match=r"\(the disk is full\).*the published version v0001 is untouched"
        ):
            _job("t", built, write_corpus(tmp_path / "b", 4, start=100), base=load_base("t"))
    assert current_version("t") == "v0001" and _ids("t") == before
    verify_version(indexes_dir() / "t" / "v0001")
    assert not list((indexes_dir() / "t").glob(".tmp-*"))
    _job("t", built, write_corpus(tmp_path / "b", 4, start=100), base=load_base("t"))  # resumes, then lands
    assert len(_ids("t")) == len(before) + 4


@pytest.mark.skipif(not FULL, reason="mounts a tmpfs (root); run by `make faults`")
def test_a_really_full_tmpfs_leaves_the_published_version_intact(tmp_path, tiny_model_dir, record_figures):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        model = load_model(tiny_model_dir)
        records, desc = read_sources(manifest=write_corpus(tmp_path / "a", 20))
        run_job("t", model, records, desc, JobConfig(4, 0), root=mnt, progress=False)
        v1 = open_index("t", root=mnt)
        want = v1.search(np.ones(model.embed_dim, np.float32) / model.embed_dim**0.5, 5)
        v1.close()
        filler, errors = mnt / "filler", []
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the volume, then free its last 32 KB
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        os.truncate(filler, filler.stat().st_size - 32 * 1024)
        records, desc = read_sources(manifest=write_corpus(tmp_path / "b", 40, start=100))
        cfg, unit = JobConfig(4, 0), np.ones(model.embed_dim, np.float32) / model.embed_dim**0.5
        for _ in range(200):  # retry, freeing 8 KB more each time, until the add fits
            try:
                run_job("t", model, records, desc, cfg, root=mnt, base=load_base("t", mnt), progress=False)
                break
            except XModalError as e:
                errors.append(str(e))
                assert "untouched" in str(e) or "nothing was published" in str(e)
            assert current_version("t", mnt) == "v0001" and not list((mnt / "t").glob(".tmp-*"))
            verify_version(mnt / "t" / "v0001")
            again = open_index("t", root=mnt)
            assert again.search(unit, 5) == want
            again.close()
            os.truncate(filler, max(0, filler.stat().st_size - 8 * 1024))
        final = open_index("t", root=mnt)
        assert current_version("t", mnt) == "v0002" and len(final) == 60
        final.close()
        assert any("writing a new version" in e for e in errors)  # the space ran out in both stages
        assert any("writing chunk shards" in e for e in errors)
        record_figures(
            disk_full_failures=len(errors),
            in_shards=sum("writing chunk shards" in e for e in errors),
            in_version=sum("writing a new version" in e for e in errors),
            previous_version_intact=True,
        )
    finally:
        subprocess.run(["umount", "-l", str(mnt)])  # lazy: a file still open must not leave it mounted
