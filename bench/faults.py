"""Writes the figures of a `make faults` run into RELIABILITY.md (its `faults` section).

    python bench/faults.py var/faults.jsonl

The input is what tests/faults recorded (one JSON object per test, via $XMODAL_FAULTS_REPORT)."""

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402


def _rows(figures: list[dict]) -> list[str]:
    by = {f["test"]: f for f in figures}
    rows = []
    if k := by.get("test_random_sigkills_then_resume_index_every_item_exactly_once"):
        stages = ", ".join(sorted({s.split(":")[0] for s in k["stages"]}))
        rows.append(
            "| indexer SIGKILLed at random points, then resumed "
            f"| {k['kills']} kills over {k['items']:,} items (kill points: {stages}); "
            f"{k['reembedded_chunks']} torn or unjournalled shards re-embedded "
            f"| items lost **{k['lost']}**, duplicated **{k['duplicated']}**; "
            "vectors equal to an uninterrupted run |"
        )
    if d := by.get("test_a_really_full_tmpfs_leaves_the_published_version_intact"):
        rows.append(
            "| disk full while adding to an index (3 MB tmpfs, freed 8 KB at a time) "
            f"| {d['disk_full_failures']} failed attempts ({d['in_shards']} while writing shards, "
            f"{d['in_version']} while writing the version) "
            "| every error says the disk is full and that the published version is untouched; "
            "it verified and answered the same each time; the add landed once there was room |"
        )
    if s := by.get("test_killing_the_server_under_load_gives_connection_errors_only"):
        conn = sum(n for o, n in s["outcomes"].items() if o.startswith("connection"))
        rows.append(
            f"| server SIGKILLed under load, restarted | {s['clients']} clients, {s['kills']} kills, "
            f"{s['requests']:,} requests ({s['ok']:,} answered, {conn:,} connection errors); "
            f"restarts took {', '.join(map(str, s['restart_s']))} s "
            f"| wrong or partial answers **{s['wrong_or_partial']}**, "
            f"other failures **{s['other_failures']}** |"
        )
    if h := by.get("test_hot_swaps_under_load_fail_no_request"):
        rows.append(
            "| hot-swaps under load (index reloads and model activations) "
            f"| {h['clients']} clients, {h['swaps']} swaps, {h['requests']:,} requests "
            f"| failed requests **{h['failed']}**, failed swaps **{h['swap_failures']}** |"
        )
    return rows


def main(argv: list[str]) -> None:
    path = Path(argv[0])
    figures = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    text = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `make faults` on {platform.node()} "
            "(2 shared CPU cores, other jobs running).",
            "",
            "| fault | scale | result |",
            "|---|---|---|",
            *_rows(figures),
        ]
    )
    write_section(ROOT / "RELIABILITY.md", "faults", text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
