"""Each benchmark owns one section of BENCHMARKS.md, between `<!-- bench:NAME -->` markers."""

from pathlib import Path

from training.atomic import write_atomic


def write_section(path: Path, name: str, text: str) -> None:
    """Replaces the text between this benchmark's markers, adding them (or the file) when missing."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    doc = path.read_text() if path.is_file() else "# Benchmarks\n"
    if start in doc and end in doc:
        head, rest = doc.split(start, 1)
        doc = head + start + "\n" + text.strip("\n") + "\n" + end + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + f"\n\n{start}\n{text.strip(chr(10))}\n{end}\n"
    write_atomic(path, doc)
