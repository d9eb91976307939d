"""Greedy continuations from the PyTorch reference forward, for checking that exported bundles
generate the same tokens.

Usage: /usr/bin/python3 scripts/oracle/make_greedy.py

Writes testdata/greedy/<fixture>.json: for each prompt, its token ids (BOS first, from the
model's own tokenizer for the KJV model; random ids for random-weight fixtures, with lengths
around the tests' call length of 8) and the 64 tokens a float32 argmax loop over
reference_forward.forward() picks after it, recomputing the whole sequence at every step. Also
records each step's margin between the best and second-best logit, so a test can tell a
near-tie from a real disagreement. Deterministic: a rerun gives the same bytes.
"""

import hashlib
import json
import os
import sys

import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(__file__))
from reference_forward import forward, unwrap_state_dict  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "testdata", "greedy")
NEW_TOKENS = 64
KJV_PROMPTS = ["And God said", "In the beginning", "Blessed are the poor in spirit"]
# Prompt lengths around the call length of 8 the tests export with: 1, L-1, L, L+1 and 3L+5.
PROMPT_LENGTHS = [1, 7, 8, 9, 29]
# Random-weight fixtures whose continuations are recorded, with deterministic prompt ids.
RANDOM_FIXTURES = ["gqa", "scaled_rope_32"]


def greedy(state, params, tokens, scale=None):
    tokens = list(tokens)
    margins = []
    for _ in range(NEW_TOKENS):
        last = forward(state, params, tokens, scale)[-1]
        top = torch.topk(last, 2)
        margins.append(round(float(top.values[0] - top.values[1]), 6))
        tokens.append(int(top.indices[0]))
    return tokens, margins


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write(name, checkpoint, prompts, state, params, scale=None):
    cases = []
    for prompt in prompts:
        tokens, margins = greedy(state, params, prompt, scale)
        cases.append({"prompt": prompt, "continuation": tokens[len(prompt):], "margins": margins})
    data = {
        "checkpoint": os.path.relpath(checkpoint, OUT),
        "checkpoint_sha256": sha256(checkpoint),
        "rope_scale_factor": scale,
        "new_tokens": NEW_TOKENS,
        "cases": cases,
    }
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"{name}: {len(cases)} prompts, smallest margin {min(min(c['margins']) for c in cases)}")


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    kjv = os.path.join(ROOT, "models", "kjv-tiny")
    with open(os.path.join(kjv, "params.json")) as f:
        params = json.load(f)
    checkpoint = os.path.join(kjv, "consolidated.00.pth")
    state = unwrap_state_dict(torch.load(checkpoint))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(kjv, "tokenizer.model"))
    with open(os.path.join(ROOT, "testdata", "kjv", "heldout.txt"), encoding="utf-8") as f:
        heldout = [sp.bos_id()] + sp.encode(f.read()[:2000])
    prompts = [[sp.bos_id()] + sp.encode(p) for p in KJV_PROMPTS]
    prompts += [heldout[:n] for n in PROMPT_LENGTHS]
    write("kjv", checkpoint, prompts, state, params)
    generator = torch.Generator().manual_seed(7)
    for name in RANDOM_FIXTURES:
        directory = os.path.join(ROOT, "testdata", "oracle", name)
        with open(os.path.join(directory, "params.json")) as f:
            params = json.load(f)
        with open(os.path.join(directory, "reference.json")) as f:
            scale = json.load(f).get("rope_scale_factor")
        checkpoint = os.path.join(directory, "consolidated.00.pth")
        state = unwrap_state_dict(torch.load(checkpoint))
        vocab = state["tok_embeddings.weight"].shape[0]
        prompts = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]
        write(name, checkpoint, prompts, state, params, scale)


if __name__ == "__main__":
    main()
