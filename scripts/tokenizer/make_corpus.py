#!/usr/bin/python3
"""Writes testdata/tokenizer/corpus.json: the strings every tokenizer oracle test encodes.

Usage: /usr/bin/python3 scripts/tokenizer/make_corpus.py

About 2,900 strings, deterministic (a seeded generator over held-out KJV verses and fixed
character pools), covering what breaks tokenizers: plain English, accents (precomposed and
decomposed), CJK, emoji (ZWJ sequences, flags, skin tones, keycaps), combining marks, other
scripts, digits and contractions, runs of spaces, tabs and newlines, leading and trailing
whitespace, Unicode spaces, control characters, strings that look like special tokens or byte
pieces, compatibility characters that NFKC rewrites, runs of one character (where equal merges
compete), long texts, and the empty string.
Lone surrogates are left out: neither sentencepiece nor tiktoken accepts them.
"""

import json
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "tokenizer" / "corpus.json"
sys.path.insert(0, str(ROOT / "scripts" / "kjv"))

from prepare_text import HELDOUT_FIRST_REFERENCE, dump_verses  # noqa: E402

ACCENTED = {
    "a": "áàâäãåā", "e": "éèêëē", "i": "íìîï", "o": "óòôöõøō", "u": "úùûüū",
    "c": "çć", "n": "ñń", "s": "šśß", "z": "žź", "y": "ýÿ", "l": "ł", "A": "ÁÅÄ", "E": "ÉÈ",
    "O": "ÖØ", "U": "Ü",
}
CJK = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
    "日本語東京大阪漢字仮名ひらがなカタカナ한국어서울세계"
)
CJK_PUNCTUATION = "、。「」『』（）！？：；・ー〜"
FULLWIDTH = "ＡＢＣＤＥａｂｃｄｅ０１２３４５６７８９"
EMOJI = [
    "\U0001F600", "\U0001F64F", "\U0001F44D", "\U0001F44D\U0001F3FD", "\u2764\uFE0F",
    "\U0001F468\u200D\U0001F469\u200D\U0001F467", "\U0001F1EC\U0001F1E7", "\U0001F1EF\U0001F1F5",
    "1\uFE0F\u20E3", "\U0001F3F3\uFE0F\u200D\U0001F308", "\U0001F9D1\U0001F3FF\u200D\U0001F4BB",
    "\u2600", "\u2728", "\U0001F525", "\U0001F30D", "\U0001FAE0",
]
COMBINING = [chr(c) for c in range(0x300, 0x370)] + ["\u20D7", "\u1AB0", "\uFE20"]
SCRIPTS = [
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Καλημέρα κόσμε, ἐν ἀρχῇ ἦν ὁ λόγος.",
    "مرحبا بالعالم، في البدء كان الكلمة",
    "שלום עולם, בראשית ברא אלהים",
    "สวัสดีชาวโลก ในปฐมกาล",
    "नमस्ते दुनिया, आदि में वचन था",
    "გამარჯობა მსოფლიო",
    "Բարեւ աշխարհ",
    "∑ᵢ xᵢ² ≤ ∫₀¹ f(x) dx → ∞ ± √2 ≠ π",
    "┌─┬─┐ │ ║ ╚═╝ ░▒▓█ ←↑→↓ ⇒ ⇔",
]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00A0", "\u2003", "\u3000", "\u0085",
          "\u2028", "\u2029", "\u200B", "\uFEFF", "\u202F", "\u205F", "\u1680", "\x0b", "\x0c"]
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\u0080", "\u009f", "\uFFFD",
           "\uE000", "\U000F0000", "\uFFFF"]
SPECIAL_LOOKING = [
    "<s>", "</s>", "<unk>", "<pad>", "<0x41>", "<0x0A>", "<0xE3>", "\u2581", "\u2581\u2581",
    "\u2581hello", "hello\u2581", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>", "<|reserved_special_token_5|>",
    "<|reserved_special_token_250|>", "<|python_tag|>", "<|eom_id|>", "<|image|>",
    "<|not_a_token|>", "<|", "|>", "[INST]", "[/INST]", "<sep>", "<ctrl>", "LORD", "ab cd",
    "ab\u2581cd", "\U0001F64F", " \u2047 ", "[?]",
]
NFKC_SENSITIVE = ["ﬁ", "ﬂ", "①", "²", "½", "™", "Ⅻ", "ｶﾀｶﾅ", "㍻", "ℌ", "ℵ", "Å", "Ω", "ǅ",
                  "\u00A0", "…", "‼", "ﾞ", "ㄱ", "e\u0301", "A\u030A", "\u1E9B\u0323"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL",
                "'D", "'\u017F", "\u2019s", "don't", "I'M", "they'RE", "it's", "o'clock"]
ASCII_POOL = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "          .,;:!?'\"-()[]{}<>/\\|@#$%^&*_+=~`"
)


def accent(rng: random.Random, text: str) -> str:
    """Replaces about a third of the accentable letters by accented ones."""
    return "".join(
        rng.choice(ACCENTED[c]) if c in ACCENTED and rng.random() < 0.33 else c for c in text
    )


def decompose_marks(rng: random.Random, text: str) -> str:
    """Adds one to three combining marks after some letters."""
    out = []
    for c in text:
        out.append(c)
        if c.isalpha() and rng.random() < 0.25:
            out.extend(rng.choice(COMBINING) for _ in range(rng.randint(1, 3)))
    return "".join(out)


def random_code_point(rng: random.Random) -> str:
    """Any scalar value, weighted towards the BMP; never a surrogate."""
    while True:
        c = rng.randint(0, 0x2FFFF) if rng.random() < 0.8 else rng.randint(0, 0x10FFFF)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def words(rng: random.Random, verses: list[str], count: int) -> str:
    """A few consecutive words from a random verse."""
    verse = rng.choice(verses).split(" ")
    start = rng.randrange(len(verse))
    return " ".join(verse[start:start + count])


def build(rng: random.Random, verses: list[str]) -> list[str]:
    corpus: list[str] = ["", "", " ", "a", "\n", "The", " The", "  The  ", "\t\t", "\u2581"]
    corpus += verses[:700]
    corpus += [accent(rng, rng.choice(verses)) for _ in range(200)]
    corpus += [decompose_marks(rng, rng.choice(verses)) for _ in range(120)]
    corpus += [
        "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 6)))
        + words(rng, verses, 2)
        for _ in range(30)
    ]
    for _ in range(200):
        pool = CJK + CJK_PUNCTUATION + FULLWIDTH
        cjk = "".join(rng.choice(pool) for _ in range(rng.randint(1, 40)))
        if rng.random() < 0.5:
            corpus.append(cjk)
        else:
            corpus.append(f"{words(rng, verses, 3)} {cjk} {words(rng, verses, 2)}")
    for _ in range(200):
        parts = [rng.choice(EMOJI) if rng.random() < 0.5 else words(rng, verses, rng.randint(1, 3))
                 for _ in range(rng.randint(1, 6))]
        corpus.append(rng.choice(["", " "]).join(parts))
    for _ in range(150):
        script = rng.choice(SCRIPTS)
        if rng.random() < 0.3:
            corpus.append(script)
        else:
            corpus.append(f"{words(rng, verses, 4)} {script[:rng.randint(1, len(script))]}")
    for _ in range(250):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(words(rng, verses, rng.randint(1, 3)) if rng.random() < 0.5 else
                         "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 9))))
        corpus.append("".join(parts))
    for _ in range(80):
        corpus.append("".join(rng.choice(SPACES) for _ in range(rng.randint(1, 12))))
    for _ in range(120):
        n = rng.randint(0, 10 ** rng.randint(1, 12))
        forms = [str(n), f"{n:,}", f"{n / 7:.3f}", f"v{n}.{rng.randint(0, 99)}", f"{n}th",
                 f"{rng.randint(1, 31):02d}/{rng.randint(1, 12):02d}/{rng.randint(1000, 2999)}"]
        corpus.append(f"{words(rng, verses, 3)} {rng.choice(forms)}{rng.choice(['', '.', '!'])}")
    for _ in range(120):
        before, contraction = words(rng, verses, 2), rng.choice(CONTRACTIONS)
        corpus.append(f"{before}{contraction} {words(rng, verses, 2)}")
    for _ in range(150):
        parts = [rng.choice(SPECIAL_LOOKING) if rng.random() < 0.5 else words(rng, verses, 2)
                 for _ in range(rng.randint(1, 5))]
        corpus.append(rng.choice(["", " ", "\n"]).join(parts))
    for _ in range(80):
        parts = [rng.choice(NFKC_SENSITIVE) if rng.random() < 0.5 else words(rng, verses, 2)
                 for _ in range(rng.randint(1, 5))]
        corpus.append(rng.choice(["", " "]).join(parts))
    for _ in range(60):
        text = words(rng, verses, 3)
        corpus.append(text + "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 3))))
    for _ in range(150):
        corpus.append("".join(rng.choice(ASCII_POOL) for _ in range(rng.randint(1, 80))))
    for _ in range(100):
        corpus.append("".join(random_code_point(rng) for _ in range(rng.randint(1, 24))))
    # Runs of one character make equal-scoring merges compete: leftmost must win.
    for c in "elsotmnrE.-!=*_ 1\n\t\u2581\u65e5":
        corpus += [c * n for n in range(2, 8)] + [f"th{c * 5}e", f"{c * 3} {c * 4}"]
    for _ in range(6):
        start = rng.randrange(len(verses) - 40)
        corpus.append(" ".join(verses[start:start + rng.randint(10, 40)]))
    return corpus


def main() -> None:
    verses = dump_verses()
    split = next(i for i, (ref, _) in enumerate(verses) if ref == HELDOUT_FIRST_REFERENCE)
    heldout = [text for _, text in verses[split:]]
    corpus = build(random.Random(20240601), heldout)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        json.dump(corpus, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {len(corpus)} strings to {OUT}")


if __name__ == "__main__":
    main()
