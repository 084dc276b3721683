"""The default preset from cold: `xmodal train --preset default` in a fresh XMODAL_HOME (empty feature
and token caches; the prepared corpora are linked in), timed, then `xmodal eval` of the model it made.

    .venv/bin/python bench/preset.py [--keep DIR]   # needs `xmodal data prepare all` done in XMODAL_HOME

--keep copies the model it made to DIR (for bench/understand.py --model DIR) before the temporary
XMODAL_HOME goes.

Issue target: the preset takes at most 15 minutes on 2 cores. Writes its section of BENCHMARKS.md
between <!-- bench:preset --> and <!-- /bench:preset -->; the whole log goes to bench/out/preset.log.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402


def timed(cmd: list[str], env: dict, log) -> float:
    """Runs `cmd` with output appended to `log`; its wall time in seconds (exits on failure)."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc != 0:
        sys.exit(f"{' '.join(cmd[3:5])} exited with {rc}; see {log.name}")
    return time.perf_counter() - t0


def _log_path() -> Path:
    (ROOT / "bench/out").mkdir(exist_ok=True)
    return ROOT / "bench/out/preset.log"


def main() -> None:
    from training.home import xmodal_home

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="copy the model it made to this folder (replaced)")
    args = ap.parse_args()

    corpora = xmodal_home() / "corpora"
    missing = [c for c in ("openclipart", "fashion-mnist", "easy-vqa") if not (corpora / c).is_dir()]
    if missing:
        sys.exit(f"corpora not prepared in {corpora}: {', '.join(missing)}; run `xmodal data prepare all`")
    xmodal = [sys.executable, "-c", "from app.cli import main; main()"]  # this checkout (cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix="xmodal-preset-") as tmp, open(_log_path(), "w") as log:
        home = Path(tmp)
        (home / "corpora").symlink_to(corpora.resolve())
        env = {**os.environ, "XMODAL_HOME": str(home)}
        load0 = os.getloadavg()[0]
        train_s = timed([*xmodal, "train", "--preset", "default"], env, log)
        load1 = os.getloadavg()[0]
        eval_s = timed([*xmodal, "eval", "--model", str(home / "models/default")], env, log)
        card = json.loads((home / "models/default/card.json").read_text())
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(home / "models/default", args.keep)
    m, heads = card["metrics"], card["heads"]
    vqa, questions = heads["easy-vqa/test/vqa/accuracy"], heads["easy-vqa/test/vqa/questions"]
    recall, fashion = m["openclipart/test"], m["fashion-mnist/test/prompt_classification_heldout"]
    photos = m["photos/among_openclipart_test"]
    text = "\n".join(
        [
            "## The default preset from cold (bench/preset.py)",
            "",
            f"`xmodal train --preset default` in an empty XMODAL_HOME (no cached features), {os.cpu_count()} "
            f"cores, 1-min load average {load0:.1f} before and {load1:.1f} after. Date "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            "| stage | seconds |",
            "|---|---:|",
            f"| whole preset, cold (target <= 900) | **{train_s:.0f}** |",
            f"| of which contrastive steps on cached features | {card['train_wall_s']:.0f} |",
            f"| of which VQA + caption head training | {sum(card['heads']['train_s'].values()):.0f} |",
            f"| `xmodal eval` afterwards (not part of the preset) | {eval_s:.0f} |",
            "",
            f"The model it made: openclipart test t2i R@10 **{recall['t2i_R@10']:.3f}** (target >= 0.50 "
            f"with the photos below >= 0.65; gallery {recall['gallery']}), Fashion-MNIST prompt "
            "classification on the held-out split "
            f"**{fashion['accuracy']:.3f}** on {fashion['images']:,} images (target >= 0.85), easy-vqa VQA "
            f"{vqa:.4f} on {questions:,} questions; real photos found by their caption among the clip art "
            f"test images: R@10 **{photos['t2i_R@10']:.3f}** ({photos['photos']} photos, gallery "
            f"{photos['gallery']}). "
            "The rest of the preset's time is the towers' one pass over about 9k training images and 2.5k "
            "head images.",
        ]
    )
    write_section(ROOT / "BENCHMARKS.md", "preset", text)
    print(text)


if __name__ == "__main__":
    main()
