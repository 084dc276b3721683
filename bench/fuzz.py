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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.serve import ADMIN, free_port, make_setup, start_server, wait_ready  # noqa: E402


def failures(summary: str) -> Counter:
    """Failures by check, from the summary schemathesis prints ("❌ ST205 Allow header mismatch: 11")."""
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"❌ (ST\d+ [^:\n]+): (\d+)", summary)})


def cases(summary: str) -> int:
    """How many test cases schemathesis generated ("9358 generated, ..." in its summary)."""
    found = re.search(r"(\d+) generated", summary)
    return int(found[1]) if found else 0


def run(
    base: str, max_time: int, max_examples: int, workdir: Path, admin: str = ADMIN, seed=0
) -> tuple[Counter, int]:
    """Runs schemathesis against a started service (its cache goes under `workdir`; `admin` is the
    service's admin token); failures by check, and the number of cases."""
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/openapi.json",
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
    return failures(proc.stdout), cases(proc.stdout)


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
            found, n = run(base, args.max_time, args.max_examples, home)
        finally:
            proc.terminate()
            proc.wait(30)
    for check, n in sorted(found.items()):
        print(f"FAILED {check}: {n}")
    print(f"schemathesis: {sum(found.values())} failures in {n} cases")
    if args.write:
        listed = "".join(f"\n- {check}: {count}" for check, count in sorted(found.items()))
        text = (
            "## Service: schemathesis, every check (bench/fuzz.py)\n\n"
            f"Model `{args.model}`, admin routes with the token, {args.max_time} s, at most "
            f"{args.max_examples} cases per operation and phase, hooks of bench/fuzz_hooks.py; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, a host shared with other jobs.\n\n"
            f"**{sum(found.values())} failures in {n} cases**{':' if found else '.'}{listed}\n"
        )
        write_section(ROOT / "BENCHMARKS.md", "fuzz", text)
    return found


if __name__ == "__main__":
    sys.exit(1 if main_counts() else 0)
