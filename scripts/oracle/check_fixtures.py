#!/usr/bin/python3
"""Verifies the oracle fixtures: reloads each checkpoint with torch.load, reruns the reference
forward and compares with the stored logits (bit for bit with the BLAS that wrote them).

Usage: /usr/bin/python3 scripts/oracle/check_fixtures.py [fixture dir ...]
(default: every directory under testdata/oracle/)
"""

import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_forward import forward, unwrap_state_dict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Of the largest stored logit: float32 reordering noise is about 1e-6 of it, any real error (a
# wrong RoPE band, a dropped norm weight) at least 1e-3.
RELATIVE_TOLERANCE = 1e-5


def check_fixture(directory: str) -> str:
    """Raises AssertionError on any mismatch; returns a one-line summary of what was checked."""
    with open(os.path.join(directory, "reference.json")) as f:
        reference = json.load(f)
    checkpoint_path = os.path.join(directory, reference["checkpoint"])
    with open(checkpoint_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert (
        digest == reference["checkpoint_sha256"]
    ), f"{directory}: checkpoint changed since generation"
    with open(os.path.join(directory, reference["params"])) as f:
        params = json.load(f)
    loaded = torch.load(checkpoint_path)
    state = unwrap_state_dict(loaded)
    worst = 0.0
    for sequence in reference["sequences"]:
        expected = np.fromfile(os.path.join(directory, sequence["logits"]), dtype="<f4")
        actual = forward(state, params, sequence["tokens"], reference.get("rope_scale_factor"))
        assert list(actual.shape) == sequence["shape"], f"{directory}: shape {list(actual.shape)}"
        difference = np.abs(actual.numpy().reshape(-1) - expected).max()
        # Another BLAS (OpenBLAS instead of Debian's reference one) reorders float32 sums.
        limit = RELATIVE_TOLERANCE * np.abs(expected).max()
        assert difference <= limit, f"{directory}: logits differ by {difference} (limit {limit})"
        worst = max(worst, float(difference))
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()})
    strided = sum(not t.is_contiguous() for t in state.values())
    offset = sum(t.storage_offset() > 0 for t in state.values())
    return (
        f"{len(reference['sequences'])} sequences reproduced "
        f"{'exactly' if worst == 0 else f'within {worst:.2g}'}; {'/'.join(dtypes)}, "
        f"{'nested, ' if state is not loaded else ''}{len(state)} tensors "
        f"({strided} non-contiguous, {offset} at a storage offset)"
    )


def main() -> None:
    torch.set_num_threads(1)
    oracle = os.path.join(ROOT, "testdata", "oracle")
    directories = sys.argv[1:] or sorted(
        os.path.join(oracle, d)
        for d in os.listdir(oracle)
        if os.path.isdir(os.path.join(oracle, d))
    )
    for directory in directories:
        print(f"{os.path.basename(directory)}: {check_fixture(directory)}")


if __name__ == "__main__":
    main()
