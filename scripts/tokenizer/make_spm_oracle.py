#!/usr/bin/python3
"""Writes the SentencePiece oracle files testdata/tokenizer/spm_oracle_<name>.json.

Usage: /usr/bin/python3 scripts/tokenizer/make_spm_oracle.py

Debian's python3-sentencepiece is the oracle. For each model (the embedded KJV tokenizer and the
two test models of train_spm_models.py) the file records the model's SHA-256 (so a retrained
model is caught instead of silently compared against stale answers), its pieces and bos/eos ids,
and for every string of corpus.json the ids of `encode(text)` and the text of `decode(ids)`
(null where it equals the input, to keep the file small). `random_decodes` adds id sequences the
encoder never produces: byte pieces forming broken UTF-8, control pieces and <unk> in odd places,
pieces starting with ▁ at the start and after bytes. Re-running rewrites identical files.
"""

import hashlib
import json
import pathlib
import random

import sentencepiece as spm

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "testdata" / "tokenizer" / "corpus.json"
MODELS = {
    "kjv": ROOT / "models" / "kjv-tiny" / "tokenizer.model",
    "unigram": ROOT / "testdata" / "tokenizer" / "spm_unigram.model",
    "nfkc_bpe": ROOT / "testdata" / "tokenizer" / "spm_nfkc_bpe.model",
}
RANDOM_DECODES = 400


def random_ids(rng: random.Random, sp: spm.SentencePieceProcessor) -> list[int]:
    """An id sequence mixing byte pieces (valid and broken UTF-8) with any other pieces."""
    size = sp.get_piece_size()
    byte_ids = [i for i in range(size) if sp.is_byte(i)]
    special = [i for i in range(size) if sp.is_control(i) or sp.is_unknown(i)]
    ids: list[int] = []
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if byte_ids and roll < 0.4:
            # Bytes of a real character, sometimes cut short or out of order.
            encoded = rng.choice(["é", "日", "🙂", "\u2581", "a", "\n"]).encode("utf-8")
            if rng.random() < 0.3:
                encoded = encoded[: rng.randint(1, len(encoded))]
            if rng.random() < 0.1:
                encoded = encoded[::-1]
            ids += [sp.piece_to_id(f"<0x{b:02X}>") for b in encoded]
        elif byte_ids and roll < 0.5:
            ids.append(rng.choice(byte_ids))
        elif roll < 0.6:
            ids.append(rng.choice(special))
        else:
            ids.append(rng.randrange(size))
    return ids


def oracle(sp: spm.SentencePieceProcessor, path: pathlib.Path, corpus: list[str]) -> dict:
    encodes = [sp.encode(text) for text in corpus]
    decodes = [sp.decode(ids) for ids in encodes]
    rng = random.Random(20240601)
    random_decodes = []
    for _ in range(RANDOM_DECODES):
        ids = random_ids(rng, sp)
        random_decodes.append([ids, sp.decode(ids)])
    return {
        "model": str(path.relative_to(ROOT)),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "sentencepiece": spm.__version__,
        "pieces": [sp.id_to_piece(i) for i in range(sp.get_piece_size())],
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "encode": encodes,
        "decode": [None if text == original else text for text, original in zip(decodes, corpus)],
        "random_decodes": random_decodes,
    }


def main() -> None:
    corpus = json.loads(CORPUS.read_text(encoding="utf-8"))
    for name, path in MODELS.items():
        sp = spm.SentencePieceProcessor(model_file=str(path))
        out = ROOT / "testdata" / "tokenizer" / f"spm_oracle_{name}.json"
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            json.dump(oracle(sp, path, corpus), f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
