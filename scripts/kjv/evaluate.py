#!/usr/bin/python3
"""Measures the trained KJV model and writes models/kjv-tiny/training.json.

Usage: /usr/bin/python3 scripts/kjv/evaluate.py <heldout.txt> <model dir> <stats.json> <out.json>

Adds to the training figures in <stats.json> the held-out loss and greedy continuations; the
continuations' token ids double as a greedy-decoding oracle for the runtime.
"""

import json
import os
import sys

import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import load_stream, with_bos  # noqa: E402
from model import Llama, ModelArgs  # noqa: E402

PROMPTS = ["And God said", "The LORD is my shepherd", "Jesus answered and said unto them"]
NEW_TOKENS = 48


def heldout_loss(model: Llama, stream: torch.Tensor, context: int, bos_id: int) -> float:
    """Mean cross-entropy in nats per token, scoring each window of `context` tokens after BOS."""
    total = 0.0
    for begin in range(0, stream.numel(), context):
        inputs, targets = with_bos(stream[begin : begin + context][None], bos_id)
        total += F.cross_entropy(model(inputs)[0], targets[0], reduction="sum").item()
    return total / stream.numel()


def greedy(model: Llama, prompt_ids: list[int], count: int) -> list[int]:
    tokens = list(prompt_ids)
    for _ in range(count):
        tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    return tokens[len(prompt_ids) :]


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    heldout_path, model_dir, stats_path, output_path = sys.argv[1:]
    torch.set_num_threads(1)
    with open(stats_path) as f:
        stats = json.load(f)
    params, context = stats["config"]["params"], stats["config"]["training"]["context"]
    model = Llama(ModelArgs(**params), context)
    model.load_state_dict(torch.load(os.path.join(model_dir, "consolidated.00.pth")))
    model.eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    stream = load_stream(heldout_path, sp)

    with torch.no_grad():
        loss = heldout_loss(model, stream, context, sp.bos_id())
        samples = []
        for prompt in PROMPTS:
            prompt_ids = [sp.bos_id()] + sp.encode(prompt)
            ids = greedy(model, prompt_ids, NEW_TOKENS)
            samples.append(
                {
                    "prompt": prompt,
                    "prompt_ids": prompt_ids,
                    "greedy_ids": ids,
                    "text": sp.decode(prompt_ids[1:] + ids),
                }
            )

    result = dict(stats)
    result["heldout_tokens"] = stream.numel()
    result["heldout_loss"] = round(loss, 4)
    result["heldout_loss_note"] = (
        "mean cross-entropy (nats/token) on testdata/kjv/heldout.txt (Hebrews to Revelation), "
        f"in consecutive windows of {context} tokens, each after BOS"
    )
    result["greedy_samples"] = samples
    with open(output_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"held-out loss {loss:.4f} nats/token over {stream.numel()} tokens")
    for sample in samples:
        print(f"{sample['text']!r}")


if __name__ == "__main__":
    main()
