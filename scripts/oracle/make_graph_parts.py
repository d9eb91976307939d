"""The parts of the exporter's graph (export/graph/) computed by PyTorch, for their unit tests.

Usage: /usr/bin/python3 scripts/oracle/make_graph_parts.py

Writes testdata/graph_parts/<part>.json: the inputs, checkpoint tensors and float32 outputs of one
part (RMSNorm, RoPE, attention over a cache, the SwiGLU feed-forward, the embedding, the head) of a
model small enough to read: dim 32, 4 query heads over 2 KV heads of width 8, FFN 48, vocabulary
16, calls of 3 tokens over a cache of 5 slots. Outputs follow Meta's Llama semantics
(reference_forward.py: RoPE rotates adjacent pairs). The graph keeps RoPE heads in halves (its wq
and wk rows reordered), so the rotated inputs and outputs of RoPE, and the cached and new keys,
are written here in that layout, converted from Meta's. Deterministic: a rerun gives the same bytes.
"""

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from reference_forward import rms_norm, rope_frequencies, rotate  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "testdata", "graph_parts")
DIM, HEADS, KV_HEADS, HEAD_DIM, HIDDEN, VOCAB = 32, 4, 2, 8, 48, 16
NORM_EPS, ROPE_THETA = 1e-5, 10000.0
CALL, CACHE = 3, 5
# The cache holds this many earlier tokens, in its first slots; the last slot is empty (masked).
CACHED = 4
CONFIG = {
    "dim": DIM,
    "nHeads": KV_HEADS * (HEADS // KV_HEADS),
    "nKvHeads": KV_HEADS,
    "headDim": HEAD_DIM,
    "hiddenDim": HIDDEN,
    "vocabSize": VOCAB,
    "normEps": NORM_EPS,
    "ropeTheta": ROPE_THETA,
}

generator = torch.Generator().manual_seed(20261206)


def random(*shape, scale=1.0):
    return torch.randn(*shape, generator=generator, dtype=torch.float32) * scale


def as_json(t):
    """Shape and row-major values; JSON has no infinities, so the mask's -inf is written as null."""
    values = [None if v == float("-inf") else v for v in t.flatten().tolist()]
    return {"shape": list(t.shape), "values": values}


def halves(x):
    """Heads `[..., hd]` from Meta's adjacent pairs to the graph's halves: evens, then odds."""
    return torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)


def rope_tables(positions):
    """cos and sin `[L, hd/2]` (float32) and the matching unit rotations (complex64)."""
    angles = torch.outer(
        torch.tensor(positions, dtype=torch.float64),
        rope_frequencies(HEAD_DIM, ROPE_THETA, None),
    )
    rotations = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
    return angles.cos().float(), angles.sin().float(), rotations


def write(part, inputs, tensors, outputs):
    document = {
        "config": CONFIG,
        "callLength": CALL,
        "inputs": {name: as_json(t) for name, t in inputs.items()},
        "tensors": {name: as_json(t) for name, t in tensors.items()},
        "outputs": {name: as_json(t) for name, t in outputs.items()},
    }
    with open(os.path.join(OUT, f"{part}.json"), "w") as f:
        json.dump(document, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")


def rms_norm_part():
    # Activations far beyond fp16's square range: the graph's form must not care.
    x = random(1, CALL, DIM, scale=300.0)
    gain = random(DIM)
    write("rms_norm", {"x": x}, {"norm.weight": gain}, {"out": rms_norm(x, gain, NORM_EPS)})


def rope_part():
    cos, sin, rotations = rope_tables(range(CACHED, CACHED + CALL))
    x = random(CALL, HEADS, HEAD_DIM)
    rotated = rotate(x, rotations)
    write(
        "rope",
        {"x": halves(x)[None], "freqs_cos": cos, "freqs_sin": sin},
        {},
        {"out": halves(rotated)[None]},
    )


def attention_part():
    names = {w: f"layers.0.attention.{w}.weight" for w in ["wq", "wk", "wv", "wo"]}
    # Queries and keys scaled up so that attention is far from uniform.
    wq = random(HEADS * HEAD_DIM, DIM, scale=0.5)
    wk = random(KV_HEADS * HEAD_DIM, DIM, scale=0.5)
    wv = random(KV_HEADS * HEAD_DIM, DIM, scale=0.2)
    wo = random(DIM, HEADS * HEAD_DIM, scale=0.2)
    x = random(CALL, DIM)
    cached_keys = random(CACHED, KV_HEADS, HEAD_DIM, scale=2.0)
    cached_values = random(CACHED, KV_HEADS, HEAD_DIM)
    cos, sin, rotations = rope_tables(range(CACHED, CACHED + CALL))

    q = rotate((x @ wq.T).view(CALL, HEADS, HEAD_DIM), rotations)
    k = rotate((x @ wk.T).view(CALL, KV_HEADS, HEAD_DIM), rotations)
    v = (x @ wv.T).view(CALL, KV_HEADS, HEAD_DIM)
    keys = torch.cat([cached_keys, k]).repeat_interleave(HEADS // KV_HEADS, dim=1)
    values = torch.cat([cached_values, v]).repeat_interleave(HEADS // KV_HEADS, dim=1)
    causal = torch.full((CALL, CALL), float("-inf")).triu(diagonal=1)
    seen = torch.cat([torch.zeros(CALL, CACHED), causal], dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, keys) / math.sqrt(HEAD_DIM) + seen
    attended = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), values)
    out = attended.reshape(CALL, HEADS * HEAD_DIM) @ wo.T

    # The graph's inputs: caches [1, Hkv, C, hd] with an unused last slot holding finite noise,
    # and a mask [1, L, C + L] that hides it.
    def cache(entries):
        unused = random(CACHE - CACHED, KV_HEADS, HEAD_DIM)
        return torch.cat([entries, unused]).transpose(0, 1)[None]

    empty = torch.full((CALL, CACHE - CACHED), float("-inf"))
    mask = torch.cat([seen[:, :CACHED], empty, causal], dim=1)[None]
    write(
        "attention",
        {
            "x": x[None],
            "mask": mask,
            "freqs_cos": cos,
            "freqs_sin": sin,
            "k_cache_0": cache(halves(cached_keys)),
            "v_cache_0": cache(cached_values),
        },
        {names["wq"]: wq, names["wk"]: wk, names["wv"]: wv, names["wo"]: wo},
        {
            "out": out[None],
            "k_new_0": halves(k).transpose(0, 1)[None],
            "v_new_0": v.transpose(0, 1)[None],
        },
    )


def feed_forward_part():
    x = random(1, CALL, DIM)
    w1, w3 = random(HIDDEN, DIM, scale=0.3), random(HIDDEN, DIM, scale=0.3)
    w2 = random(DIM, HIDDEN, scale=0.3)
    out = (torch.nn.functional.silu(x @ w1.T) * (x @ w3.T)) @ w2.T
    tensors = {f"layers.0.feed_forward.{n}.weight": w for n, w in [("w1", w1), ("w2", w2), ("w3", w3)]}
    write("feed_forward", {"x": x}, tensors, {"out": out})


def embedding_part():
    table = random(VOCAB, DIM)
    tokens = torch.tensor([[3, 0, 15]], dtype=torch.int32)
    write("embedding", {"tokens": tokens}, {"tok_embeddings.weight": table}, {"out": table[tokens.long()]})


def head_part():
    x = random(1, CALL, DIM, scale=4.0)
    gain, output = random(DIM), random(VOCAB, DIM)
    logits = rms_norm(x, gain, NORM_EPS) @ output.T
    write("head", {"x": x}, {"norm.weight": gain, "output.weight": output}, {"logits": logits})


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for part in [rms_norm_part, rope_part, attention_part, feed_forward_part, embedding_part, head_part]:
        part()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
