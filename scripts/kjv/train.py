#!/usr/bin/python3
"""Trains the embedded KJV model and writes it in Meta's format.

Usage: /usr/bin/python3 scripts/kjv/train.py <train.txt> <tokenizer.model> <model dir> <stats.json>

Writes <model dir>/consolidated.00.pth (fp32 state dict with Meta's keys) and params.json, and the
training figures (config, steps, wall time, losses) to <stats.json> for evaluate.py to merge.
"""

import json
import math
import os
import sys
import time

import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import load_stream, with_bos  # noqa: E402
from model import Llama, ModelArgs  # noqa: E402

# Sized for about 20 minutes on this machine (2 cores shared with other work): with OpenBLAS on one
# thread (see build.sh) a step of 2048 tokens takes about 0.8 s.
ARGS = ModelArgs(
    dim=192,
    n_layers=4,
    n_heads=6,
    n_kv_heads=2,
    vocab_size=1024,
    multiple_of=32,
    norm_eps=1e-5,
    rope_theta=10000.0,
)
TRAINING = {
    "seed": 1234,
    "context": 256,
    "batch_size": 8,
    "steps": 1400,
    "warmup_steps": 60,
    "peak_lr": 2.5e-3,
    "final_lr": 2.5e-4,
    "weight_decay": 0.1,
    "betas": [0.9, 0.95],
    "grad_clip": 1.0,
    # On 2 cores shared with other jobs, torch's OpenMP elementwise kernels lose more to contention
    # than a second thread gains: with OpenBLAS, a step ran 12 times faster on one thread than two.
    "threads": 1,
}
LOG_EVERY = 25
# The reported train loss averages the last steps so that one noisy batch does not dominate it.
FINAL_LOSS_WINDOW = 50


def learning_rate(step: int) -> float:
    """Linear warmup, then cosine decay from peak_lr to final_lr at the last step."""
    peak, final = TRAINING["peak_lr"], TRAINING["final_lr"]
    warmup, steps = TRAINING["warmup_steps"], TRAINING["steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - 1 - warmup)
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: Llama) -> torch.optim.Optimizer:
    matrices = [p for p in model.parameters() if p.dim() == 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": TRAINING["weight_decay"]},
            {"params": vectors, "weight_decay": 0.0},
        ],
        lr=TRAINING["peak_lr"],
        betas=tuple(TRAINING["betas"]),
    )


def save_meta_checkpoint(model: Llama, model_dir: str) -> dict:
    """Writes consolidated.00.pth and params.json; returns the params."""
    # Fresh contiguous copies, so each tensor owns its storage as in Meta's files.
    state = {name: t.detach().clone().contiguous() for name, t in model.state_dict().items()}
    torch.save(state, os.path.join(model_dir, "consolidated.00.pth"))
    params = {
        "dim": ARGS.dim,
        "n_layers": ARGS.n_layers,
        "n_heads": ARGS.n_heads,
        "n_kv_heads": ARGS.n_kv_heads,
        "vocab_size": ARGS.vocab_size,
        "multiple_of": ARGS.multiple_of,
        "norm_eps": ARGS.norm_eps,
        "rope_theta": ARGS.rope_theta,
    }
    with open(os.path.join(model_dir, "params.json"), "w") as f:
        json.dump(params, f, indent=2)
        f.write("\n")
    return params


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    text_path, tokenizer_path, model_dir, stats_path = sys.argv[1:]
    torch.set_num_threads(TRAINING["threads"])
    torch.manual_seed(TRAINING["seed"])
    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    if sp.vocab_size() != ARGS.vocab_size:
        raise SystemExit(
            f"Cannot train: tokenizer has {sp.vocab_size()} pieces, model expects {ARGS.vocab_size}"
        )
    stream = load_stream(text_path, sp)
    context, batch_size = TRAINING["context"], TRAINING["batch_size"]
    model = Llama(ARGS, context)
    optimizer = make_optimizer(model)
    sampler = torch.Generator().manual_seed(TRAINING["seed"])
    parameter_count = sum(p.numel() for p in model.parameters())
    print(
        f"{parameter_count} parameters, {stream.numel()} training tokens, hidden {ARGS.hidden_dim}",
        flush=True,
    )

    losses: list[float] = []
    start = time.monotonic()
    for step in range(TRAINING["steps"]):
        starts = torch.randint(0, stream.numel() - context + 1, (batch_size,), generator=sampler)
        chunk = torch.stack([stream[s : s + context] for s in starts.tolist()])
        inputs, targets = with_bos(chunk, sp.bos_id())
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TRAINING["grad_clip"])
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % LOG_EVERY == 0 or step == 0:
            recent = losses[-LOG_EVERY:]
            elapsed = time.monotonic() - start
            print(
                f"step {step + 1}/{TRAINING['steps']} loss {sum(recent) / len(recent):.4f} "
                f"lr {learning_rate(step):.2e} {elapsed:.0f}s",
                flush=True,
            )
    wall_time = time.monotonic() - start

    model.eval()
    params = save_meta_checkpoint(model, model_dir)
    final = losses[-FINAL_LOSS_WINDOW:]
    stats = {
        "config": {
            "params": params,
            "hidden_dim": ARGS.hidden_dim,
            "training": TRAINING,
        },
        "parameter_count": parameter_count,
        "corpus_tokens": stream.numel(),
        "training_tokens": TRAINING["steps"] * batch_size * context,
        "steps": TRAINING["steps"],
        "wall_time_seconds": round(wall_time, 1),
        "final_train_loss": round(sum(final) / len(final), 4),
        "final_train_loss_note": "mean cross-entropy (nats/token) over the last "
        f"{len(final)} steps",
    }
    with open(stats_path, "w") as f:
        json.dump(stats, f, indent=2)
        f.write("\n")
    print(f"done in {wall_time:.0f}s, final train loss {stats['final_train_loss']}", flush=True)


if __name__ == "__main__":
    main()
