#!/usr/bin/python3
"""Dumps the King James Bible from Debian's `bible-kjv`, split into training and held-out text.

Usage: /usr/bin/python3 scripts/kjv/prepare_text.py <train.txt> <heldout.txt>

Both outputs hold one verse per line with the reference stripped. The held-out part is Hebrews
through Revelation (a book boundary, about 3.7% of the text), so evaluation text is never seen by
the tokenizer or the model.
"""

import os
import re
import subprocess
import sys

VERSE_COUNT = 31102
HELDOUT_FIRST_REFERENCE = "Heb1:1"
# A reference such as "Ge1:1", "1Sm3:10" or "Rev22:21", then one space.
REFERENCE = re.compile(r"^([1-3]?[A-Za-z]+[0-9]+:[0-9]+) (.*)$")


def dump_verses() -> list[tuple[str, str]]:
    """Returns (reference, text) for every verse, in canonical order."""
    # `bible -f` wraps at $COLUMNS and may page when attached to a terminal: a huge width, no
    # stdin and a pipe for stdout keep each verse on one line; continuation lines are rejoined
    # anyway in case a build of the tool wraps regardless.
    env = dict(os.environ, COLUMNS="100000")
    dump = subprocess.run(
        ["bible", "-f", "Gen1:1-Rev22:21"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    verses: list[tuple[str, str]] = []
    for line in dump.splitlines():
        line = line.strip()
        if not line:
            continue
        match = REFERENCE.match(line)
        if match:
            verses.append((match.group(1), match.group(2).strip()))
        elif verses:
            reference, text = verses[-1]
            verses[-1] = (reference, f"{text} {line}")
        else:
            raise SystemExit(
                f"Cannot parse the bible dump: text before the first reference: {line!r}"
            )
    if len(verses) != VERSE_COUNT:
        raise SystemExit(
            f"Cannot parse the bible dump: found {len(verses)} verses, expected {VERSE_COUNT}; "
            "check the bible-kjv package version"
        )
    return verses


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    train_path, heldout_path = sys.argv[1], sys.argv[2]
    verses = dump_verses()
    split = next(
        i for i, (reference, _) in enumerate(verses) if reference == HELDOUT_FIRST_REFERENCE
    )
    for path, part in ((train_path, verses[:split]), (heldout_path, verses[split:])):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{text}\n" for _, text in part)
    heldout = len(verses) - split
    print(f"{split} training verses, {heldout} held-out verses (from {HELDOUT_FIRST_REFERENCE})")


if __name__ == "__main__":
    main()
