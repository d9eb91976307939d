#!/usr/bin/python3
"""Writes testdata/perplexity/kjv.json: the PyTorch perplexity oracle of `llamane eval`.

Usage: /usr/bin/python3 scripts/oracle/make_perplexity.py   (from anywhere; takes a minute)

The KJV model reads the first MAX_TOKENS tokens of the held-out text (BOS, then SentencePiece's ids
of the whole file) through the reference forward of reference_forward.py, built here from its parts
with a band mask instead of the causal one, each position attending to itself and the CACHE_LENGTH
positions before it: the sliding window of a bundle exported with
--input_len CALL_LENGTH and --max_context_len CALL_LENGTH + CACHE_LENGTH. The perplexity is
exp of the mean negative log-likelihood of every token after the first, in float64 from the float32
logits. The same without the window is recorded too, so a test can tell that the window matters,
and the same with SINKS attention sinks: the window of that bundle when the checkpoint says the
model was trained on TRAINED_CONTEXT positions (as the KJV model was), which keeps the first SINKS
tokens in its cache and lets a token attend to them while they are fewer than TRAINED_CONTEXT
positions back (llama/attention_window.ts).
Deterministic (one thread): a rerun gives the same file.
"""

import json
import math
import os
import sys

import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_forward import forward, rms_norm, rope_frequencies, rotate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "kjv-tiny")
TEXT = "testdata/kjv/heldout.txt"
OUT = os.path.join(ROOT, "testdata", "perplexity", "kjv.json")
MAX_TOKENS = 700
CALL_LENGTH = 32
CACHE_LENGTH = 128
TRAINED_CONTEXT = 256
SINKS = 4


def windowed_forward(
    state, params, tokens: list[int], window: int, sinks: int = 0, sink_reach: int = 0
) -> torch.Tensor:
    """reference_forward.forward with position q attending to positions q - (window - sinks) ... q,
    and to positions p < sinks while q - p < sink_reach.

    Written out here rather than added to reference_forward.py as an option: that file's hash marks
    the SmolLM2 fixtures as current, and changing it would regenerate them for everyone.
    """
    w = {name: t.to(torch.float32) for name, t in state.items()}
    dim, n_heads, n_kv_heads = params["dim"], params["n_heads"], params["n_kv_heads"]
    head_dim, eps, length = dim // n_heads, params["norm_eps"], len(tokens)
    angles = torch.outer(
        torch.arange(length, dtype=torch.float64),
        rope_frequencies(head_dim, params.get("rope_theta", 10000.0), None),
    )
    rotations = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
    distance = torch.arange(length)[:, None] - torch.arange(length)[None, :]
    sink = (torch.arange(length)[None, :] < sinks) & (distance < sink_reach)
    visible = (distance >= 0) & ((distance <= window - sinks) | sink)
    band = torch.where(visible, 0.0, float("-inf"))
    x = w["tok_embeddings.weight"][torch.tensor(tokens)]
    repeat = n_heads // n_kv_heads
    for i in range(params["n_layers"]):
        p = f"layers.{i}."
        h = rms_norm(x, w[p + "attention_norm.weight"], eps)
        q = rotate((h @ w[p + "attention.wq.weight"].T).view(length, n_heads, head_dim), rotations)
        k = rotate((h @ w[p + "attention.wk.weight"].T).view(length, n_kv_heads, head_dim), rotations)
        v = (h @ w[p + "attention.wv.weight"].T).view(length, n_kv_heads, head_dim)
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(head_dim) + band
        attended = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)
        x = x + attended.reshape(length, n_heads * head_dim) @ w[p + "attention.wo.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
        gate = torch.nn.functional.silu(h @ w[p + "feed_forward.w1.weight"].T)
        x = x + (gate * (h @ w[p + "feed_forward.w3.weight"].T)) @ w[p + "feed_forward.w2.weight"].T
    return rms_norm(x, w["norm.weight"], eps) @ w.get("output.weight", w["tok_embeddings.weight"]).T


def perplexity(logits: torch.Tensor, tokens: list[int]) -> float:
    log_probs = torch.log_softmax(logits[:-1].to(torch.float64), dim=-1)
    targets = torch.tensor(tokens[1:])
    nll = -log_probs.gather(1, targets[:, None]).mean().item()
    return math.exp(nll)


def main() -> None:
    torch.set_num_threads(1)
    processor = spm.SentencePieceProcessor(model_file=os.path.join(MODEL, "tokenizer.model"))
    with open(os.path.join(ROOT, TEXT), encoding="utf-8") as file:
        text = file.read()
    tokens = ([processor.bos_id()] + processor.encode(text))[:MAX_TOKENS]
    with open(os.path.join(MODEL, "params.json"), encoding="utf-8") as file:
        params = json.load(file)
    state = torch.load(os.path.join(MODEL, "consolidated.00.pth"), map_location="cpu")
    with torch.no_grad():
        # The band mask as wide as the sequence is the causal one: the two forwards must agree.
        full_logits = forward(state, params, tokens)
        assert torch.equal(windowed_forward(state, params, tokens, len(tokens)), full_logits)
        windowed = perplexity(windowed_forward(state, params, tokens, CACHE_LENGTH), tokens)
        with_sinks = perplexity(
            windowed_forward(state, params, tokens, CACHE_LENGTH, SINKS, TRAINED_CONTEXT), tokens
        )
        full = perplexity(full_logits, tokens)
    fixture = {
        "notes": "perplexity of the KJV model on the first max_tokens tokens of text (BOS first), "
        + "each token attending to itself and the cache_length tokens before it",
        "checkpoint": "models/kjv-tiny/consolidated.00.pth",
        "params": "models/kjv-tiny/params.json",
        "text": TEXT,
        "max_tokens": MAX_TOKENS,
        "call_length": CALL_LENGTH,
        "cache_length": CACHE_LENGTH,
        "tokens": "TOKENS",
        "perplexity": windowed,
        "perplexity_without_window": full,
        "trained_context": TRAINED_CONTEXT,
        "sinks": SINKS,
        "perplexity_with_sinks": with_sinks,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    # The ids on one line, the rest one field per line.
    text = json.dumps(fixture, indent=1).replace('"TOKENS"', json.dumps(tokens))
    with open(OUT, "w", encoding="utf-8") as file:
        file.write(text + "\n")
    print(
        f"wrote {OUT}: perplexity {windowed:.6f} (without the window {full:.6f}, "
        + f"with sinks {with_sinks:.6f})"
    )


if __name__ == "__main__":
    main()
