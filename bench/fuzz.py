"""Schemathesis against the service: every check, admin routes with the token, loopback only.

    .venv/bin/python bench/fuzz.py                      # `make fuzz`: the long run (10 min)
    .venv/bin/python bench/fuzz.py --max-time 40 -n 8   # the short run the test suite makes

Starts `xmodal serve` on 127.0.0.1 over a tiny model and a synthetic index (bench/serve.py's setup),
runs `schemathesis run` on its /openapi.json with `--checks all`, and prints the failures by check and
operation. Exit status: 0 when no check failed, 1 otherwise.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).with_name("schemathesis.toml")  # which statuses count as rejecting invalid data
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.serve import ADMIN, free_port, make_setup, start_server, wait_ready  # noqa: E402


@dataclass
class FuzzResult:
    """What a schemathesis run printed in its summary."""

    failures: Counter  # by check: "ST202 Schema-valid request rejected" -> 1
    cases: int  # test cases generated
    dropped: int  # failures the hooks' filter_failure left out (bench/fuzz_hooks.py)
    operations: list[str]  # the operations that failed: "POST /knn-service"


def parse_summary(summary: str) -> FuzzResult:
    """A FuzzResult from schemathesis's summary ("❌ ST205 Allow header mismatch: 11", "9358 generated",
    "Filtered: 133")."""
    found = Counter({m[1]: int(m[2]) for m in re.finditer(r"❌ (ST\d+ [^:\n]+): (\d+)", summary)})
    generated = re.search(r"(\d+) generated", summary)
    dropped = re.search(r"Filtered: (\d+)", summary)
    failed = re.findall(r"^_+ ([A-Z]+ /\S*) _+$", summary.partition("FAILURES")[2], re.M)
    return FuzzResult(
        found, int(generated[1]) if generated else 0, int(dropped[1]) if dropped else 0, sorted(set(failed))
    )


def section(result: FuzzResult, model: str, max_time: int, max_examples: int) -> str:
    """The BENCHMARKS.md section of a run."""
    listed = "".join(f"\n- {check}: {count}" for check, count in sorted(result.failures.items()))
    return (
        "## Service: schemathesis, every check (bench/fuzz.py)\n\n"
        f"Model `{model}`, admin routes with the token, {max_time} s, at most {max_examples} cases per "
        f"operation and phase, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, a host shared with "
        f"other jobs.\n\n**{result.failures.total()} failures in {result.cases} cases**"
        f"{':' if result.failures else '.'}{listed}\n"
        + (f"\nFailing operations: {', '.join(result.operations)}.\n" if result.operations else "")
        + "\n"
        f"Left out by bench/fuzz_hooks.py: {result.dropped} rejections of a form whose file part was no "
        "real file of its kind (random bytes, an empty file, an image sent as the video); a schema "
        "cannot say which bytes decode.\n"
    )


def run(base: str, max_time: int, max_examples: int, workdir: Path, admin: str = ADMIN, seed=0) -> FuzzResult:
    """Runs schemathesis against a started service (its cache goes under `workdir`; `admin` is the
    service's admin token)."""
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG),
        "run", f"{base}/openapi.json",
        "--checks", "all", "--header", f"Authorization: Bearer {admin}",
        "--max-time", str(max_time), "--max-examples", str(max_examples), "--seed", str(seed),
        "--workers", "1", "--request-timeout", "30", "--max-response-time", "10",
        "--warnings", "off",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "bench.fuzz_hooks", "PYTHONPATH": str(ROOT)}  # a real video
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    print(proc.stdout, proc.stderr[-2000:], sep="\n", flush=True)
    if "SUMMARY" not in proc.stdout:
        raise SystemExit(f"schemathesis did not finish (exit {proc.returncode})")
    return parse_summary(proc.stdout)


def main_counts(argv: list[str] | None = None) -> Counter:
    """Starts the service, runs schemathesis, prints and returns the failures by check."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-time", type=int, default=600, help="seconds for the whole schemathesis run")
    p.add_argument("-n", "--max-examples", type=int, default=200, help="cases per operation and phase")
    p.add_argument("--model", default="tiny-clip", help="registry name or saved model dir")
    p.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xmodal-fuzz-") as tmp:
        home = Path(tmp)
        model_dir, _ = make_setup(args.model, 200, home)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(model_dir, home, batching=True, threads=1, port=port)
        try:
            wait_ready(base, proc)
            result = run(base, args.max_time, args.max_examples, home)
        finally:
            proc.terminate()
            proc.wait(30)
    for check, count in sorted(result.failures.items()):
        print(f"FAILED {check}: {count}")
    total, cases, dropped = result.failures.total(), result.cases, result.dropped
    print(f"schemathesis: {total} failures in {cases} cases ({dropped} left out by the hooks)")
    if args.write:
        text = section(result, args.model, args.max_time, args.max_examples)
        write_section(ROOT / "BENCHMARKS.md", "fuzz", text)
    return result.failures


if __name__ == "__main__":
    sys.exit(1 if main_counts() else 0)
