#!/usr/bin/python3
"""Greedy-decodes with the PyTorch reference forward, to check a GGUF conversion against llama.cpp.

Usage: /usr/bin/python3 scripts/gguf/torch_greedy.py --checkpoint consolidated.00.pth \
    --params params.json --tokens '[1, 300, 394, 390]' --new-tokens 32 [--stop-token 2] \
    [--rope-scale-factor F]

Prints the generated token ids as a JSON list (the stop token, when met, ends the list without
being in it). The forward is scripts/oracle/reference_forward.py, in float32, recomputed over the
whole sequence at each step: slow, but written by nobody who wrote the converter or llama.cpp.
"""

import argparse
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "oracle"))
from reference_forward import forward, unwrap_state_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=pathlib.Path, required=True)
    parser.add_argument("--params", type=pathlib.Path, required=True)
    parser.add_argument("--tokens", required=True, help="prompt token ids, a JSON list")
    parser.add_argument("--new-tokens", type=int, required=True)
    parser.add_argument("--stop-token", type=int)
    parser.add_argument("--rope-scale-factor", type=float)
    args = parser.parse_args()

    state = unwrap_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
    params = json.loads(args.params.read_text())
    tokens = list(json.loads(args.tokens))
    generated = []
    with torch.no_grad():
        for _ in range(args.new_tokens):
            logits = forward(state, params, tokens, args.rope_scale_factor)
            token = int(logits[-1].argmax())
            if token == args.stop_token:
                break
            generated.append(token)
            tokens.append(token)
    print(json.dumps(generated))


if __name__ == "__main__":
    main()
