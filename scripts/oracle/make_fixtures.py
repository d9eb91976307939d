#!/usr/bin/python3
"""Writes the PyTorch oracle fixtures under testdata/oracle/, then verifies them.

Usage: /usr/bin/python3 scripts/oracle/make_fixtures.py   (from anywhere; takes seconds)

Each fixture directory holds a Meta-format checkpoint and params.json (the KJV fixture points at
models/kjv-tiny/ instead), token sequences, and the float32 logits of reference_forward.forward()
as raw little-endian [T, V] files, described by reference.json. Deterministic: weights and tokens
come from seeded generators and the forward runs on one thread, so a rerun gives the same bytes.
"""

import hashlib
import json
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Optional

import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_fixtures import check_fixture  # noqa: E402
from reference_forward import forward, hidden_dim, rope_band, rope_frequencies  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "testdata", "oracle")
KJV_MODEL = os.path.join(ROOT, "models", "kjv-tiny")
KJV_HELDOUT = os.path.join(ROOT, "testdata", "kjv", "heldout.txt")
# Queries and keys get a larger scale than other weights so that attention is far from uniform and
# a wrong rotation (RoPE layout, scaling band) moves the logits well beyond float32 noise.
QK_GAIN = 2.0
# A scaled-RoPE fixture must separate scaled from unscaled rotation by at least this much in the
# logits (absolute), or a loader that ignores use_scaled_rope could still pass.
MIN_SCALING_EFFECT = 1e-2
MAX_FIXTURE_BYTES = 300 * 1024


# params.json keys in the order Meta writes them; a fixture's params list them in this order.
PARAMS_ORDER = (
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "vocab_size",
    "multiple_of",
    "ffn_dim_multiplier",
    "norm_eps",
    "rope_theta",
    "use_scaled_rope",
)
# The shape most fixtures share: GQA with 4 query heads over 2 kv heads, 2 layers of dim 32.
BASE_PARAMS = {
    "dim": 32,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 2,
    "vocab_size": 128,
    "multiple_of": 32,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
}


def fixture_params(**changes: Any) -> dict[str, Any]:
    """BASE_PARAMS with `changes` applied (None removes a key), in PARAMS_ORDER."""
    merged = {**BASE_PARAMS, **changes}
    return {key: merged[key] for key in PARAMS_ORDER if merged.get(key) is not None}


@dataclass
class Fixture:
    """A random-weight fixture: one feature of the checkpoint or config format to cover."""

    name: str
    notes: str
    params: dict[str, Any]
    vocab: int
    lengths: tuple[int, ...]
    seed: int
    dtype: torch.dtype = torch.float32
    tied: bool = False
    nested: bool = False
    fused_views: bool = False
    rope_scale_factor: Optional[float] = None


FIXTURES = [
    Fixture(
        name="gqa",
        notes="GQA with groups of 3 (6 query heads over 2 kv heads); no ffn_dim_multiplier, "
        "multiple_of 48 (F = 48 * ceil(128 / 48) = 144); rope_theta 500000; norm_eps 1e-6",
        params=fixture_params(
            dim=48, n_heads=6, vocab_size=100, multiple_of=48, norm_eps=1e-6, rope_theta=500000.0
        ),
        vocab=100,
        lengths=(8, 19, 33),
        seed=101,
    ),
    Fixture(
        name="mha_ffn_multiplier",
        notes="plain multi-head attention: n_kv_heads absent (defaults to n_heads = 4); "
        "ffn_dim_multiplier 1.3 with multiple_of 16 (int(1.3 * 85) = 110 rounds up to F = 112); "
        "rope_theta 10000; norm_eps 1e-5",
        params=fixture_params(n_kv_heads=None, multiple_of=16, ffn_dim_multiplier=1.3),
        vocab=128,
        lengths=(12, 24, 40),
        seed=102,
    ),
    Fixture(
        name="scaled_rope_8",
        notes="use_scaled_rope with factor 8 (Llama 3.1); head_dim 16 and rope_theta 10000 put "
        "frequencies in all three bands (kept, smoothed, divided by the factor) given old_ctx 8192",
        params=fixture_params(n_heads=2, n_kv_heads=1, use_scaled_rope=True),
        vocab=128,
        lengths=(16, 40),
        seed=103,
        rope_scale_factor=8.0,
    ),
    Fixture(
        name="scaled_rope_32",
        notes="use_scaled_rope with factor 32 (Llama 3.2 1B/3B), which params.json does not "
        "record: take it from rope_scale_factor; head_dim 16, rope_theta 500000 (all three bands); "
        "ffn_dim_multiplier 1.5 (F = 128)",
        params=fixture_params(
            n_heads=2,
            n_kv_heads=1,
            ffn_dim_multiplier=1.5,
            rope_theta=500000.0,
            use_scaled_rope=True,
        ),
        vocab=128,
        lengths=(16, 40),
        seed=104,
        rope_scale_factor=32.0,
    ),
    Fixture(
        name="tied_vocab_auto",
        notes="tied embeddings (no output.weight: the head reuses tok_embeddings.weight) and "
        "vocab_size -1 in params.json (the vocabulary, 112, comes from the embedding shape)",
        params=fixture_params(vocab_size=-1),
        vocab=112,
        lengths=(9, 27),
        seed=105,
        tied=True,
    ),
    Fixture(
        name="bf16",
        notes="every tensor stored as bfloat16; references computed in float32 from the upcast "
        "weights",
        params=fixture_params(),
        vocab=128,
        lengths=(10, 30),
        seed=106,
        dtype=torch.bfloat16,
    ),
    Fixture(
        name="fp16",
        notes="every tensor stored as float16; references computed in float32 from the upcast "
        "weights",
        params=fixture_params(),
        vocab=128,
        lengths=(10, 30),
        seed=107,
        dtype=torch.float16,
    ),
    Fixture(
        name="nested",
        notes='state dict nested as torch.save({"model": state_dict}); n_kv_heads given and equal '
        "to n_heads",
        params=fixture_params(n_kv_heads=4),
        vocab=128,
        lengths=(8, 20),
        seed=108,
        nested=True,
    ),
    Fixture(
        name="noncontiguous",
        notes="views sharing storages: per layer, wq/wk/wv are row slices of one fused [qkv, D] "
        "tensor (wk and wv at non-zero storage offsets); w1/w3 are the column halves of one "
        "[F, 2D] tensor (strides (2D, 1), w3 at storage offset D); w2 is a transposed view "
        "(strides (1, D)). Only the pickle's offsets and strides give the right weights",
        params=fixture_params(),
        vocab=128,
        lengths=(11, 25),
        seed=109,
        fused_views=True,
    ),
]

KJV_SEQUENCES = (
    # (first words of a held-out verse, tokens including BOS)
    ("Now faith is the substance", 32),
    ("Jesus Christ the same yesterday", 16),
    ("And I saw a new heaven", 12),
)


def random_weights(fixture: Fixture) -> dict[str, torch.Tensor]:
    """Meta-named weights in Meta's key order, scaled to keep activations near unit size."""
    g = torch.Generator().manual_seed(fixture.seed)
    p = fixture.params
    dim, n_heads = p["dim"], p["n_heads"]
    head_dim = dim // n_heads
    kv_dim = (p.get("n_kv_heads") or n_heads) * head_dim
    ffn = hidden_dim(p)

    def linear(rows: int, cols: int, gain: float = 1.0) -> torch.Tensor:
        return torch.randn(rows, cols, generator=g) * (gain / math.sqrt(cols))

    def norm() -> torch.Tensor:
        # Not all ones, so that a loader which drops the norm weights fails.
        return 1 + 0.2 * torch.randn(dim, generator=g)

    w = {"tok_embeddings.weight": torch.randn(fixture.vocab, dim, generator=g)}
    for i in range(p["n_layers"]):
        prefix = f"layers.{i}."
        w[prefix + "attention_norm.weight"] = norm()
        w[prefix + "attention.wq.weight"] = linear(n_heads * head_dim, dim, QK_GAIN)
        w[prefix + "attention.wk.weight"] = linear(kv_dim, dim, QK_GAIN)
        w[prefix + "attention.wv.weight"] = linear(kv_dim, dim)
        w[prefix + "attention.wo.weight"] = linear(dim, n_heads * head_dim)
        w[prefix + "ffn_norm.weight"] = norm()
        w[prefix + "feed_forward.w1.weight"] = linear(ffn, dim)
        w[prefix + "feed_forward.w2.weight"] = linear(dim, ffn)
        w[prefix + "feed_forward.w3.weight"] = linear(ffn, dim)
    w["norm.weight"] = norm()
    if not fixture.tied:
        w["output.weight"] = linear(fixture.vocab, dim)
    return {name: t.to(fixture.dtype) for name, t in w.items()}


def as_fused_views(w: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """The same values, re-expressed as views into shared storages with offsets and strides."""
    w = dict(w)
    for i in range(n_layers):
        a, f = f"layers.{i}.attention.", f"layers.{i}.feed_forward."
        q, k, v = w[a + "wq.weight"], w[a + "wk.weight"], w[a + "wv.weight"]
        fused = torch.cat((q, k, v))
        w[a + "wq.weight"], w[a + "wk.weight"], w[a + "wv.weight"] = fused.split(
            [q.shape[0], k.shape[0], v.shape[0]]
        )
        gate, up = w[f + "w1.weight"], w[f + "w3.weight"]
        side_by_side = torch.cat((gate, up), dim=1)
        w[f + "w1.weight"], w[f + "w3.weight"] = side_by_side.split(gate.shape[1], dim=1)
        w[f + "w2.weight"] = w[f + "w2.weight"].t().contiguous().t()
        views = [w[a + n + ".weight"] for n in ("wq", "wk", "wv")]
        views += [w[f + n + ".weight"] for n in ("w1", "w2", "w3")]
        assert views[1].storage_offset() > 0 and views[2].storage_offset() > 0
        assert views[0].storage().data_ptr() == views[2].storage().data_ptr()
        assert not views[3].is_contiguous() and not views[4].is_contiguous()
        assert not views[5].is_contiguous() and views[5].storage_offset() > 0
    return w


def check_rope_scaling(fixture: Fixture, w: dict[str, torch.Tensor], tokens: list[int]) -> float:
    """Asserts that every scaling band is populated and that scaling visibly changes the logits."""
    p = fixture.params
    head_dim = p["dim"] // p["n_heads"]
    bands = {rope_band(float(f)) for f in rope_frequencies(head_dim, p["rope_theta"], None)}
    assert bands == {"kept", "smoothed", "divided"}, f"{fixture.name}: RoPE bands {bands}"
    unscaled = forward(w, dict(p, use_scaled_rope=False), tokens)
    effect = (forward(w, p, tokens, fixture.rope_scale_factor) - unscaled).abs().max().item()
    assert effect > MIN_SCALING_EFFECT, f"{fixture.name}: scaling changes logits by only {effect}"
    return effect


def format_json(value: Any) -> str:
    """Indented JSON with each list of integers on one line, so token sequences stay readable."""
    text = json.dumps(value, indent=2)
    return (
        re.sub(
            r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
            lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]",
            text,
        )
        + "\n"
    )


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_fixture(
    directory: str,
    reference: dict[str, Any],
    checkpoint: dict[str, torch.Tensor],
    params: dict[str, Any],
    rope_scale_factor: Optional[float],
    sequences: list[list[int]],
) -> None:
    """Computes and writes the logits of each sequence, and reference.json."""
    entries = []
    for index, tokens in enumerate(sequences):
        logits = forward(checkpoint, params, tokens, rope_scale_factor)
        name = f"logits_{index}.f32"
        logits.numpy().astype("<f4").tofile(os.path.join(directory, name))
        entries.append({"tokens": tokens, "logits": name, "shape": list(logits.shape)})
    reference["sequences"] = entries
    with open(os.path.join(directory, "reference.json"), "w") as f:
        f.write(format_json(reference))


def make_random_fixture(fixture: Fixture) -> None:
    directory = os.path.join(OUT, fixture.name)
    os.makedirs(directory)
    w = random_weights(fixture)
    if fixture.fused_views:
        w = as_fused_views(w, fixture.params["n_layers"])
    torch.save(
        {"model": w} if fixture.nested else w, os.path.join(directory, "consolidated.00.pth")
    )
    with open(os.path.join(directory, "params.json"), "w") as f:
        f.write(format_json(fixture.params))

    g = torch.Generator().manual_seed(fixture.seed + 1000)
    sequences = [
        torch.randint(0, fixture.vocab, (n,), generator=g).tolist() for n in fixture.lengths
    ]
    reference: dict[str, Any] = {"checkpoint": "consolidated.00.pth", "params": "params.json"}
    notes = fixture.notes
    if fixture.rope_scale_factor is not None:
        reference["rope_scale_factor"] = fixture.rope_scale_factor
        effect = check_rope_scaling(fixture, w, sequences[-1])
        notes += f"; scaling moves the longest sequence's logits by up to {effect:.3g}"
    reference["notes"] = notes
    reference["checkpoint_sha256"] = sha256(os.path.join(directory, "consolidated.00.pth"))
    write_fixture(directory, reference, w, fixture.params, fixture.rope_scale_factor, sequences)


def make_kjv_fixture() -> None:
    directory = os.path.join(OUT, "kjv")
    os.makedirs(directory)
    checkpoint_path = os.path.join(KJV_MODEL, "consolidated.00.pth")
    with open(os.path.join(KJV_MODEL, "params.json")) as f:
        params = json.load(f)
    state = torch.load(checkpoint_path)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(KJV_MODEL, "tokenizer.model"))
    with open(KJV_HELDOUT, encoding="utf-8") as f:
        verses = f.read().splitlines()
    sequences = []
    for opening, length in KJV_SEQUENCES:
        start = next(i for i, verse in enumerate(verses) if verse.startswith(opening))
        # Verses joined by a space encode exactly as the training stream does (one verse at a time).
        ids = sp.encode(" ".join(verses[start : start + 3]))
        sequences.append([sp.bos_id()] + ids[: length - 1])
    losses = []
    for tokens in sequences:
        logits = forward(state, params, tokens)
        losses.append(
            torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(tokens[1:])).item()
        )
    mean_loss = sum(losses) / len(losses)
    # A trained model predicts held-out KJV far better than chance (ln 1024 = 6.93 nats).
    assert mean_loss < 5.0, f"kjv: next-token loss {mean_loss:.3f} nats looks untrained"
    reference = {
        "checkpoint": os.path.relpath(checkpoint_path, directory),
        "params": os.path.relpath(os.path.join(KJV_MODEL, "params.json"), directory),
        "notes": "the embedded model models/kjv-tiny on three held-out verses (Hebrews 11:1, "
        "Hebrews 13:8, Revelation 21:1), BOS first, tokenized with its tokenizer.model; mean "
        f"next-token loss {mean_loss:.3f} nats. Regenerate whenever the model is retrained "
        "(checkpoint_sha256 tells)",
        "checkpoint_sha256": sha256(checkpoint_path),
    }
    write_fixture(directory, reference, state, params, None, sequences)


def main() -> None:
    torch.set_num_threads(1)
    names = [fixture.name for fixture in FIXTURES] + ["kjv"]
    for name in names:
        shutil.rmtree(os.path.join(OUT, name), ignore_errors=True)
    for fixture in FIXTURES:
        make_random_fixture(fixture)
    make_kjv_fixture()
    for name in names:
        directory = os.path.join(OUT, name)
        size = sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))
        assert size <= MAX_FIXTURE_BYTES, f"{name}: {size} bytes is over the fixture budget"
        print(f"{name}: {size // 1024} KB, {check_fixture(directory)}")


if __name__ == "__main__":
    main()
