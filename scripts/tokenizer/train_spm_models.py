#!/usr/bin/python3
"""Trains the two extra SentencePiece test models under testdata/tokenizer/.

Usage: /usr/bin/python3 scripts/tokenizer/train_spm_models.py

The embedded KJV tokenizer (models/kjv-tiny/tokenizer.model, built by scripts/kjv/build.sh) is a
Llama-2-like BPE with byte fallback and identity normalization. These two vary everything else
the TypeScript tokenizer must get right:

- spm_unigram.model: a unigram model with identity normalization, no byte fallback (unknown
  characters become <unk>, runs of them one <unk>), remove_extra_whitespaces on, user-defined
  symbols (matched before anything else), an extra control symbol and a custom unk surface.
- spm_nfkc_bpe.model: a BPE model with the default nmt_nfkc normalization (a precompiled charsmap),
  no byte fallback, and whitespace treated as a suffix (the dummy ▁ goes at the end).

Both train on the same KJV text as the embedded model (Genesis to Philemon; the held-out books
stay unseen), seeded and single-threaded so that re-running the script rewrites identical files.
"""

import os
import pathlib
import sys

import sentencepiece as spm

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "tokenizer"
# The trainer records its input and output paths in the model, so they must not vary: a fixed,
# git-ignored work directory rather than a fresh temporary one.
WORK = ROOT / "out" / "tokenizer"
sys.path.insert(0, str(ROOT / "scripts" / "kjv"))

from prepare_text import HELDOUT_FIRST_REFERENCE, dump_verses  # noqa: E402

USER_DEFINED = ["<sep>", "[INST]", "[/INST]", "LORD", "\U0001F64F", "ab\u2581cd"]

MODELS = {
    "spm_unigram": dict(
        model_type="unigram",
        vocab_size=800,
        normalization_rule_name="identity",
        byte_fallback=False,
        remove_extra_whitespaces=True,
        add_dummy_prefix=True,
        user_defined_symbols=USER_DEFINED,
        control_symbols=["<ctrl>"],
        unk_surface="[?]",
        character_coverage=0.9995,
    ),
    "spm_nfkc_bpe": dict(
        model_type="bpe",
        vocab_size=600,
        normalization_rule_name="nmt_nfkc",
        byte_fallback=False,
        treat_whitespace_as_suffix=True,
        character_coverage=0.9995,
    ),
}


def main() -> None:
    os.chdir(ROOT)
    # The trainers draw random numbers (sentence sampling, shuffles); a fixed seed plus one thread
    # makes their output a function of the input alone.
    spm.set_random_generator_seed(20240601)
    verses = dump_verses()
    split = next(i for i, (ref, _) in enumerate(verses) if ref == HELDOUT_FIRST_REFERENCE)
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    text = WORK / "train.txt"
    text.write_text("".join(f"{verse}\n" for _, verse in verses[:split]), encoding="utf-8")
    for name, options in MODELS.items():
        prefix = WORK / name
        spm.SentencePieceTrainer.train(
            input=str(text.relative_to(ROOT)),
            model_prefix=str(prefix.relative_to(ROOT)),
            num_threads=1,
            minloglevel=1,
            **options,
        )
        (OUT / f"{name}.model").write_bytes(prefix.with_suffix(".model").read_bytes())
        print(f"wrote {OUT / name}.model")


if __name__ == "__main__":
    main()
