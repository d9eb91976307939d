"""An independent NumPy statement of how llamane scales whole rows of int4 (c4w, `-E 4,0`), as
docs/design.md describes it: per row, the scale that minimises the row's squared error with each
value weighted by its own square, `sum w^2 (w - scale * q)^2`.

Per row: the extreme value (largest |w|, the first of equals) is mapped to -(8 + k/10) for
k = 0, -8, -6, -4, -2, 2, 4, 6, 8, then absmax (max|w| / 7) is tried; each candidate's integers
q = clip(round_half_even(w * inverse), -8, 7) are refitted by weighted least squares
(scale = sum(w^2 w q) / sum(w^2 q^2), gain sum(w^2 w q)^2 / sum(w^2 q^2), the first of equal gains
kept). Rows of 1024 values or more try the candidates on every (n // 512)-th value and refit the
winner on all of them. The winner, rounded to the storage dtype, is kept when its weighted error is
strictly below that of absmax rounded the same way; then q = clip(round_half_even(w / scale)).
Sums run left to right in float64, as the exporter's loops do, so the scales agree bit for bit.

Usage: weighted_scales.py ROWS.f32 ROWS COLUMNS fp16|fp32 OUT
  reads a little-endian float32 [ROWS, COLUMNS] matrix and writes the float32 scales [ROWS]
  followed by the int8 values [ROWS, COLUMNS].
"""

import sys

import numpy as np

QMIN, QMAX = -8, 7
LEVEL_STEPS = [0, -8, -6, -4, -2, 2, 4, 6, 8]
SAMPLES = 512


def sequential_sum(terms: np.ndarray) -> np.ndarray:
    """Row sums added left to right (np.sum would add pairwise)."""
    return np.cumsum(terms, axis=1)[:, -1]


def levels(y: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(y, QMIN, QMAX))


def weighted_fit(w: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the weighted least-squares scale of q = levels(w * inverse), and its gain."""
    k = levels(w * inverse[:, None])
    importance = w * w
    wq = sequential_sum(importance * w * k)
    qq = sequential_sum(importance * k * k)
    fitted = qq != 0
    safe = np.where(fitted, qq, 1)
    return np.where(fitted, wq / safe, 0), np.where(fitted, wq * wq / safe, 0)


def weighted_error(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    d = w - scale[:, None] * levels(w / scale[:, None])
    return sequential_sum(w * w * d * d)


def row_scales(weights: np.ndarray, storage: type) -> np.ndarray:
    """The stored scale of each row of a float32 matrix (0 for a row of zeros)."""
    w = weights.astype(np.float64)
    rows, columns = w.shape
    extreme = w[np.arange(rows), np.argmax(np.abs(w), axis=1)]
    to_storage = lambda x: x.astype(storage).astype(np.float64)  # noqa: E731
    absmax = to_storage(np.abs(extreme) / QMAX)
    nonzero = absmax > 0
    extreme = np.where(nonzero, extreme, 1)
    stride = max(1, columns // SAMPLES)
    sample = w[:, ::stride]
    best_scale = np.zeros(rows)
    best_gain = np.zeros(rows)
    candidates = [(QMIN - k / 10) / extreme for k in LEVEL_STEPS] + [QMAX / np.abs(extreme)]
    for inverse in candidates:
        scale, gain = weighted_fit(sample, inverse)
        better = gain > best_gain
        best_scale = np.where(better, scale, best_scale)
        best_gain = np.where(better, gain, best_gain)
    if stride > 1:
        refit = best_scale != 0
        scale, gain = weighted_fit(w, 1 / np.where(refit, best_scale, 1))
        best_scale = np.where(refit & (gain > 0), scale, best_scale)
    searched = to_storage(best_scale)
    usable = nonzero & (searched != 0) & np.isfinite(searched)
    safe_searched = np.where(usable, searched, 1)
    safe_absmax = np.where(nonzero, absmax, 1)
    better = usable & (weighted_error(w, safe_searched) < weighted_error(w, safe_absmax))
    return np.where(better, searched, absmax)


def quantize(weights: np.ndarray, storage: type) -> tuple[np.ndarray, np.ndarray]:
    """The stored scales [rows] and int8 values [rows, columns] of a float32 matrix."""
    scales = row_scales(weights, storage)
    safe = np.where(scales == 0, 1, scales)
    values = np.where(scales[:, None] == 0, 0, levels(weights.astype(np.float64) / safe[:, None]))
    return scales.astype(np.float32), values.astype(np.int8)


def main() -> None:
    path, rows, columns, dtype, out = sys.argv[1:]
    storage = {"fp16": np.float16, "fp32": np.float32}[dtype]
    weights = np.fromfile(path, "<f4").reshape(int(rows), int(columns))
    scales, values = quantize(weights, storage)
    with open(out, "wb") as f:
        f.write(scales.astype("<f4").tobytes())
        f.write(values.tobytes())


if __name__ == "__main__":
    main()
