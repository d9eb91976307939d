"""What calibrated input scales would do for int8 weights with one scale per output row (c8w) on
SmolLM2-135M-Instruct: the PyTorch simulation behind docs/design.md's "Calibrated input scales"
paragraph. Nothing here is part of the exporter.

A linear layer's input channels can be rescaled exactly in fp32: its columns times s_j, the inputs
divided by s_j, which folds into what produces them (the RMSNorm gain before wq, wk, wv, w1 and w3;
wv's rows for wo, one scale per key/value channel shared by the query heads that read it; w3's rows
for w2). With each row's step set by its largest value, the rounding noise of int8 rows is, up to a
constant, `sum_i max_j (|w_ij| s_j)^2 * sum_j E[x_j^2] / s_j^2`. For every layer and input the
script takes `s_j = E[x_j^2]^(a/2)` with the power `a` in 0, 0.05, ..., 1 that minimises that
prediction, from the activations of calibration tokens: the 512 tokens of the held-out KJV text after
the 2,049 that quality_smollm2 scores.

It prints top-1 agreement and mean KL divergence against the fp32 forward, through the window of
quality_smollm2's bundles (a cache of 992 slots keeping the first 4 tokens), for int8 rows in every
linear layer, int8 blocks of 32 (Q8_0's form), and int8 rows after the scales. Weights are rounded
to nearest with absmax scales kept in fp32; the embedding and the head stay fp32, so the figures are
the layers' own loss. About 5 minutes on 2 cores for the KJV text.

  /usr/bin/python3 scripts/bench/simulate_input_scales.py [--text FILE] [--tokens N]

`--text out/bench/prose/botchan.txt --tokens 993` scores quality_smollm2_prose's text (made by
scripts/bench/make_prose_text.py), with the same KJV calibration tokens. Needs testdata/smollm2/
(scripts/fixtures/smollm2/make.sh) and the test venv (scripts/setup_venv.sh), whose `tokenizers`
encodes the texts in a process of its own: Debian's PyTorch lives in another Python.
"""

import argparse
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "oracle"))
from reference_forward import forward, unwrap_state_dict  # noqa: E402

SMOLLM2 = ROOT / "testdata" / "smollm2"
TOKENIZERS = ROOT / "out" / "tokenizers"
KJV = ROOT / "testdata" / "kjv" / "heldout.txt"
KJV_TOKENS = 2049
CALIBRATION_TOKENS = 512
# quality_smollm2's bundles: 1,024 positions minus one call of 32; the first 4 tokens stay.
WINDOW = (992, 4)
POWERS = [step / 20 for step in range(21)]

Weights = dict[str, torch.Tensor]


def token_ids(text: pathlib.Path) -> list[int]:
    """The text's ids under SmolLM2's vocabulary (no BOS, as llamane encodes it), from Python
    `tokenizers` through scripts/tokenizer/hf_oracle.py, which runs in the test venv."""
    oracle = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "tokenizer" / "hf_oracle.py")]
    subprocess.run([*oracle, "build", str(TOKENIZERS)], check=True, stdout=subprocess.DEVNULL)
    encoded = subprocess.run(
        [*oracle, "encode", str(TOKENIZERS / "smollm2")],
        input=json.dumps([text.read_text(encoding="utf-8")]),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(encoded.stdout)[0]["ids"]


def int8_rows(w: torch.Tensor) -> torch.Tensor:
    """Round to nearest with one absmax scale per output row, dequantized."""
    step = (w.abs().amax(dim=1, keepdim=True) / 127).clamp_min(torch.finfo(torch.float32).tiny)
    return (w / step).round().clamp(-128, 127) * step


def int8_blocks(w: torch.Tensor) -> torch.Tensor:
    """Round to nearest with one absmax scale per block of 32 inputs, dequantized."""
    return int8_rows(w.reshape(-1, 32)).reshape(w.shape)


def quantize_linears(state: Weights, rule: Callable[[torch.Tensor], torch.Tensor]) -> Weights:
    linears = (".wq.", ".wk.", ".wv.", ".wo.", ".w1.", ".w2.", ".w3.")
    return {name: rule(t) if any(k in name for k in linears) else t for name, t in state.items()}


def input_statistics(state: Weights, params: dict, tokens: list[int]) -> dict[str, torch.Tensor]:
    """E[x_j^2] of every linear layer's inputs over a causal forward of `tokens`."""
    statistics: dict[str, torch.Tensor] = {}
    forward(state, params, tokens, observe=lambda name, x: statistics.update({name: x.pow(2).mean(0)}))
    return statistics


def predicted_noise(matrices: list[torch.Tensor], mean_square: torch.Tensor, scale: torch.Tensor) -> float:
    steps = sum(float((w * scale).abs().amax(dim=1).pow(2).sum()) for w in matrices)
    return steps * float((mean_square / scale.pow(2)).sum())


def best_scale(matrices: list[torch.Tensor], mean_square: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The scales `E[x^2]^(a/2)` (mean 1) of least predicted noise over `POWERS`, and their power."""
    candidates = []
    for power in POWERS:
        scale = mean_square.clamp_min(1e-12).pow(power / 2)
        scale = scale / scale.mean()
        candidates.append((predicted_noise(matrices, mean_square, scale), power, scale))
    _, power, scale = min(candidates, key=lambda candidate: candidate[0])
    return scale, power


def rescale_inputs(state: Weights, params: dict, statistics: dict[str, torch.Tensor]) -> tuple[Weights, list[float]]:
    """The same function in fp32 with every linear's inputs scaled as the module says, and the
    powers chosen."""
    w = dict(state)
    n_heads, n_kv_heads = params["n_heads"], params["n_kv_heads"]
    head_dim = params["dim"] // n_heads
    repeat = n_heads // n_kv_heads
    powers = []
    for i in range(params["n_layers"]):
        p = f"layers.{i}."
        for norm, readers, inputs in (
            ("attention_norm", ["attention.wq", "attention.wk", "attention.wv"], "attention_in"),
            ("ffn_norm", ["feed_forward.w1", "feed_forward.w3"], "ffn_in"),
        ):
            names = [p + reader + ".weight" for reader in readers]
            scale, power = best_scale([w[name] for name in names], statistics[p + inputs])
            for name in names:
                w[name] = w[name] * scale
            w[p + norm + ".weight"] = w[p + norm + ".weight"] / scale
            powers.append(power)

        scale, power = best_scale([w[p + "feed_forward.w2.weight"]], statistics[p + "ffn_hidden"])
        w[p + "feed_forward.w2.weight"] = w[p + "feed_forward.w2.weight"] * scale
        w[p + "feed_forward.w3.weight"] = w[p + "feed_forward.w3.weight"] / scale[:, None]
        powers.append(power)

        # wo's input channel (h, d) is value channel (h // repeat, d): one scale per value channel,
        # so wo's columns are regrouped to [rows * repeat, kv channels] to choose it.
        wo = w[p + "attention.wo.weight"]
        by_value_channel = wo.view(-1, n_kv_heads, repeat, head_dim).transpose(1, 2).reshape(-1, n_kv_heads * head_dim)
        mean_square = statistics[p + "attention_out"].view(n_kv_heads, repeat, head_dim).sum(1).reshape(-1)
        scale, power = best_scale([by_value_channel], mean_square)
        per_query_channel = scale.view(n_kv_heads, 1, head_dim).expand(n_kv_heads, repeat, head_dim).reshape(-1)
        w[p + "attention.wo.weight"] = wo * per_query_channel
        w[p + "attention.wv.weight"] = w[p + "attention.wv.weight"] / scale[:, None]
        powers.append(power)
    return w, powers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=pathlib.Path, default=KJV, help="text to score (default the held-out KJV)")
    parser.add_argument("--tokens", type=int, default=KJV_TOKENS, help="its first N tokens (default 2049)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    state = {k: v.float() for k, v in unwrap_state_dict(torch.load(SMOLLM2 / "meta" / "consolidated.00.pth")).items()}
    params = json.loads((SMOLLM2 / "meta" / "params.json").read_text())
    kjv = token_ids(KJV)
    calibration = kjv[KJV_TOKENS : KJV_TOKENS + CALIBRATION_TOKENS]
    tokens = token_ids(args.text)[: args.tokens]

    with torch.no_grad():
        reference = torch.log_softmax(forward(state, params, tokens, window=WINDOW)[:-1], dim=-1)

        def report(name: str, weights: Weights) -> None:
            scored = torch.log_softmax(forward(weights, params, tokens, window=WINDOW)[:-1], dim=-1)
            kl = (reference.exp() * (reference - scored)).sum(-1).mean()
            top1 = (scored.argmax(-1) == reference.argmax(-1)).float().mean()
            print(f"{name:28s} top-1 {float(top1):.4f}  KL {float(kl):.5f}", flush=True)

        print(f"{len(tokens) - 1} positions of {args.text.name}, {len(calibration)} calibration tokens")
        report("int8 rows", quantize_linears(state, int8_rows))
        report("int8 blocks of 32", quantize_linears(state, int8_blocks))
        scaled, powers = rescale_inputs(state, params, input_statistics(state, params, calibration))
        print(f"powers chosen: {min(powers)} to {max(powers)}")
        report("scaled inputs, fp32", scaled)
        report("scaled inputs, int8 rows", quantize_linears(scaled, int8_rows))


if __name__ == "__main__":
    main()
