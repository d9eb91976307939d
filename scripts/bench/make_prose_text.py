"""Writes out/bench/prose/botchan.txt (ignored by git): English prose in the public domain for the
SmolLM2 quality benchmark, beside the KJV text. It is Yasotaro Morri's 1919 translation of
Natsume Soseki's novel Botchan, as Project Gutenberg publishes it (EBook #8868), which the
sentencepiece source package on PyPI carries as a test corpus; the file is taken from that package,
pinned by version and SHA-256; only the novel's first chapter is kept (no Gutenberg header or
licence, no translator's note).

Run with the test venv:  .venv/bin/python scripts/bench/make_prose_text.py
Deterministic: a rerun gives the same bytes.
"""

import hashlib
import pathlib
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "out" / "bench" / "prose" / "botchan.txt"
PACKAGE = "sentencepiece==0.2.0"
ARCHIVE = "sentencepiece-0.2.0.tar.gz"
ARCHIVE_SHA256 = "a52c19171daaf2e697dc6cbe67684e0fa341b1248966f6aebb541de654d15843"
MEMBER = "sentencepiece-0.2.0/test/botchan.txt"
FIRST_CHAPTER = "CHAPTER I"
# Headings vary ("CHAPTER II.", "CHAPTER IV"): the next line that starts so ends the chapter.
HEADING = "CHAPTER "


def download(directory: str) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--dest", directory, PACKAGE],
        check=True,
    )
    archive = pathlib.Path(directory) / ARCHIVE
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != ARCHIVE_SHA256:
        raise SystemExit(f"{ARCHIVE} has SHA-256 {digest}, expected {ARCHIVE_SHA256}")
    return archive


def first_chapter(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    start = lines.index(FIRST_CHAPTER)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(HEADING))
    return "\n".join(lines[start:end]).strip() + "\n"


def main() -> None:
    if OUT.exists():
        print(f"prose text ready: {OUT}")
        return
    with tempfile.TemporaryDirectory() as directory:
        with tarfile.open(download(directory)) as archive:
            text = archive.extractfile(MEMBER).read().decode("utf-8-sig")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(first_chapter(text), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
