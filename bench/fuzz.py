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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serve import ADMIN, free_port, make_setup, start_server, wait_ready  # noqa: E402


def failures(summary: str) -> Counter:
    """Failures by check, from the summary schemathesis prints ("❌ ST205 Allow header mismatch: 11")."""
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"❌ (ST\d+ [^:\n]+): (\d+)", summary)})


def run(base: str, max_time: int, max_examples: int, workdir: Path, admin: str = ADMIN, seed=0) -> Counter:
    """Runs schemathesis against a started service (its cache goes under `workdir`; `admin` is the
    service's admin token); failures by check."""
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
    return failures(proc.stdout)


def main_counts(argv: list[str] | None = None) -> Counter:
    """Starts the service, runs schemathesis, prints and returns the failures by check."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-time", type=int, default=600, help="seconds for the whole schemathesis run")
    p.add_argument("-n", "--max-examples", type=int, default=200, help="cases per operation and phase")
    p.add_argument("--model", default="tiny-clip", help="registry name or saved model dir")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xmodal-fuzz-") as tmp:
        home = Path(tmp)
        model_dir, _ = make_setup(args.model, 200, home)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(model_dir, home, batching=True, threads=1, port=port)
        try:
            wait_ready(base, proc)
            found = run(base, args.max_time, args.max_examples, home)
        finally:
            proc.terminate()
            proc.wait(30)
    for check, n in sorted(found.items()):
        print(f"FAILED {check}: {n}")
    print(f"schemathesis: {sum(found.values())} failures")
    return found


if __name__ == "__main__":
    sys.exit(1 if main_counts() else 0)
