"""The image test's client (standard library only, runs on the host): waits for /readyz, checks what a
person would use (text search, a caption, the web page) and drives load through the proxy.

    python deploy/image_check.py wait URL [--timeout S] [--version seed=v0002]
    python deploy/image_check.py smoke URL IMAGE.png
    python deploy/image_check.py load URL --seconds S --clients N --out load.json [--stop-file F]
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path


def _get(url: str, timeout: float = 10) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("content-type", "")


def _post(url: str, body: bytes, ctype: str, timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"content-type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {"detail": e.read().decode(errors="replace")}


def search(base: str, query: str, k: int = 3) -> tuple[int, dict]:
    return _post(f"{base}/v1/search/text", json.dumps({"query": query, "k": k}).encode(), "application/json")


def caption(base: str, image: Path) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\ncontent-disposition: form-data; name="image"; filename="{image.name}"\r\n'
            "content-type: image/png\r\n\r\n"
        ).encode()
        + image.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return _post(f"{base}/v1/caption", body, f"multipart/form-data; boundary={boundary}")


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def wait(base: str, timeout: float, version: str | None) -> None:
    """Until /readyz answers ready (and, with --version NAME=VER, serves that version of NAME)."""
    name, _, want = (version or "").partition("=")
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            status, body, _ = _get(f"{base}/readyz", timeout=5)
            ready = json.loads(body) if status == 200 else {}
            if ready.get("ready") and (not name or ready.get("indexes", {}).get(name) == want):
                print(f"ready: {base} {json.dumps(ready.get('indexes'))}")
                return
            last = f"{status} {body[:200]!r}"
        except (OSError, ValueError) as e:
            last = repr(e)
        time.sleep(1)
    fail(f"{base} not ready{' with ' + version if version else ''} after {timeout:.0f} s; last: {last}")


def smoke(base: str, image: Path) -> None:
    status, res = search(base, "a red circle")
    hits = res.get("hits") or []
    if status != 200 or not hits:
        fail(f"text search: {status} {res}")
    if not any("red" in (h.get("caption") or "") for h in hits) or not all(h.get("url") for h in hits):
        fail(f"text search 'a red circle' found no red item: {[h.get('caption') for h in hits]}")
    print(f"search 'a red circle' -> {[h['caption'] for h in hits]} ({res['took_ms']:.0f} ms)")
    status, res = caption(base, image)
    texts = [c.get("text", "") for c in res.get("captions", [])]
    if status != 200 or not texts or not texts[0].strip():
        fail(f"caption: {status} {res}")
    print(f"caption {image.name} -> {texts[0]!r}")
    status, page, ctype = _get(f"{base}/")
    if status != 200 or "text/html" not in ctype or b"<html" not in page.lower():
        fail(f"web page: {status} {ctype} {page[:200]!r}")
    status, _, ctype = _get(f"{base}/app.js")
    if status != 200 or "javascript" not in ctype:
        fail(f"web page script /app.js: {status} {ctype}")
    print(f"web page: {len(page)} bytes of HTML, /app.js served")


def load(base: str, seconds: float, clients: int, out: Path, stop_file: Path | None) -> None:
    """`clients` threads searching through `base` for at most `seconds`, or until `stop_file` exists;
    every answer that is not a 200 with hits is a failure. Writes counts, versions seen and latencies
    to `out`."""
    lock = threading.Lock()
    versions: Counter = Counter()
    failures: list[str] = []
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        queries = ("a red circle", "a blue square", "a green triangle", "a yellow circle")
        n = 0
        while time.monotonic() < stop and n < 20_000:  # bounded in time and count
            if stop_file is not None and stop_file.exists():
                break
            t0 = time.perf_counter()
            try:
                status, res = search(base, queries[(i + n) % len(queries)])
                ok = status == 200 and bool(res.get("hits"))
                what = f"{status} {str(res)[:200]}"
            except OSError as e:
                ok, what, res = False, repr(e), {}
            with lock:
                latencies.append(time.perf_counter() - t0)
                if ok:
                    versions[res.get("version")] += 1
                else:
                    failures.append(what)
            n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    report = {
        "requests": len(latencies),
        "failed": len(failures),
        "failures": failures[:10],
        "versions": dict(versions),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"load: {json.dumps(report)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("--timeout", type=float, default=180)
    w.add_argument("--version", help="NAME=VERSION that /readyz must report")
    s = sub.add_parser("smoke")
    s.add_argument("url")
    s.add_argument("image", type=Path)
    lo = sub.add_parser("load")
    lo.add_argument("url")
    lo.add_argument("--seconds", type=float, default=30)
    lo.add_argument("--clients", type=int, default=4)
    lo.add_argument("--out", type=Path, required=True)
    lo.add_argument("--stop-file", type=Path, help="stop early once this file exists")
    a = ap.parse_args()
    if a.cmd == "wait":
        wait(a.url, a.timeout, a.version)
    elif a.cmd == "smoke":
        smoke(a.url, a.image)
    else:
        load(a.url, a.seconds, a.clients, a.out, a.stop_file)


if __name__ == "__main__":
    main()
