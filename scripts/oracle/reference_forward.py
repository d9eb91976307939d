"""An independent reference forward for Meta-layout Llama checkpoints, for test oracles.

Written from Meta's Llama semantics (docs/reference/static-llm.md, section 1), deliberately
apart from the KJV training model (scripts/kjv/model.py), so each checks the other. Everything is
computed in float32 from weights upcast to float32, so bf16 and fp16 checkpoints get exact float32
references.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any, Optional

import torch

# Llama 3.1 rope scaling constants; params.json does not record them.
OLD_CONTEXT = 8192
LOW_FREQ_FACTOR = 1.0
HIGH_FREQ_FACTOR = 4.0


def unwrap_state_dict(loaded: Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, which may be nested under a top-level "model" key."""
    nested = loaded.get("model")
    return nested if isinstance(nested, Mapping) else loaded


def rope_frequencies(head_dim: int, theta: float, scale_factor: Optional[float]) -> torch.Tensor:
    """f_j = theta^(-2j/hd) for j < hd/2 in float64, with Llama 3.1 scaling given a factor."""
    freqs = [theta ** (-2 * j / head_dim) for j in range(head_dim // 2)]
    if scale_factor is not None:
        freqs = [scale_frequency(f, scale_factor) for f in freqs]
    return torch.tensor(freqs, dtype=torch.float64)


def scale_frequency(freq: float, factor: float) -> float:
    wavelength = 2 * math.pi / freq
    if wavelength < OLD_CONTEXT / HIGH_FREQ_FACTOR:
        return freq
    if wavelength > OLD_CONTEXT / LOW_FREQ_FACTOR:
        return freq / factor
    smooth = (OLD_CONTEXT / wavelength - LOW_FREQ_FACTOR) / (HIGH_FREQ_FACTOR - LOW_FREQ_FACTOR)
    return (1 - smooth) * freq / factor + smooth * freq


def rope_band(freq: float) -> str:
    """Which branch of the Llama 3.1 scaling rule a frequency takes: kept, smoothed or divided."""
    wavelength = 2 * math.pi / freq
    if wavelength < OLD_CONTEXT / HIGH_FREQ_FACTOR:
        return "kept"
    return "divided" if wavelength > OLD_CONTEXT / LOW_FREQ_FACTOR else "smoothed"


def rotate(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """x [T, heads, hd] with adjacent pairs (x[2j], x[2j+1]) read as complex numbers, times
    rotations [T, hd/2] (unit complex64), as Meta's reference does."""
    as_complex = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(as_complex * rotations[:, None, :]).flatten(-2)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def forward(
    state: Mapping[str, torch.Tensor],
    params: Mapping[str, Any],
    tokens: list[int],
    rope_scale_factor: Optional[float] = None,
    *,
    window: Optional[tuple[int, int]] = None,
    observe: Optional[Callable[[str, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """Logits [T, V] (float32) of a full causal forward over `tokens`, position 0 first.

    `rope_scale_factor` must be given exactly when params["use_scaled_rope"] is true. `window`,
    (cache slots C, sinks S), limits each token to the first S tokens and the C - S tokens before
    it, as a KV cache of C slots keeping S sinks does (llama/attention_window.ts, sinks within
    reach). `observe(name, x)` sees every linear layer's input [T, in]: per layer i,
    `layers.{i}.attention_in` (wq, wk, wv), `attention_out` (wo), `ffn_in` (w1, w3) and `ffn_hidden`
    (w2).
    """
    if bool(params.get("use_scaled_rope", False)) != (rope_scale_factor is not None):
        raise ValueError("rope_scale_factor must be given exactly when use_scaled_rope is true")
    w = {name: t.to(torch.float32) for name, t in state.items()}
    dim, n_heads = params["dim"], params["n_heads"]
    n_kv_heads = params.get("n_kv_heads") or n_heads
    head_dim = dim // n_heads
    eps = params["norm_eps"]
    embedding = w["tok_embeddings.weight"]
    # Tied checkpoints have no output.weight: the head reuses the embedding table.
    output = w.get("output.weight", embedding)
    n_layers = params["n_layers"]
    length = len(tokens)

    angles = torch.outer(
        torch.arange(length, dtype=torch.float64),
        rope_frequencies(head_dim, params.get("rope_theta", 10000.0), rope_scale_factor),
    )
    rotations = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
    causal = torch.full((length, length), float("-inf")).triu(diagonal=1)
    if window is not None:
        cache_length, sinks = window
        # Keys more than C - S positions back fall out of the cache, unless they are sinks.
        causal += torch.full((length, length), float("-inf")).tril(diagonal=sinks - cache_length - 1)
        causal[:, :sinks] = torch.full((length, sinks), float("-inf")).triu(diagonal=1)

    def seen(name: str, x: torch.Tensor) -> torch.Tensor:
        if observe is not None:
            observe(name, x)
        return x

    x = embedding[torch.tensor(tokens)]
    for i in range(n_layers):
        p = f"layers.{i}."
        h = seen(p + "attention_in", rms_norm(x, w[p + "attention_norm.weight"], eps))
        q = (h @ w[p + "attention.wq.weight"].T).view(length, n_heads, head_dim)
        k = (h @ w[p + "attention.wk.weight"].T).view(length, n_kv_heads, head_dim)
        v = (h @ w[p + "attention.wv.weight"].T).view(length, n_kv_heads, head_dim)
        q, k = rotate(q, rotations), rotate(k, rotations)
        # Query head j reads key/value head j // (n_heads / n_kv_heads), as Meta's repeat_kv.
        repeat = n_heads // n_kv_heads
        k = k.repeat_interleave(repeat, dim=1)
        v = v.repeat_interleave(repeat, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(head_dim) + causal
        attended = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)
        attended = seen(p + "attention_out", attended.reshape(length, n_heads * head_dim))
        x = x + attended @ w[p + "attention.wo.weight"].T
        h = seen(p + "ffn_in", rms_norm(x, w[p + "ffn_norm.weight"], eps))
        gate = torch.nn.functional.silu(h @ w[p + "feed_forward.w1.weight"].T)
        up = h @ w[p + "feed_forward.w3.weight"].T
        x = x + seen(p + "ffn_hidden", gate * up) @ w[p + "feed_forward.w2.weight"].T
    return rms_norm(x, w["norm.weight"], eps) @ output.T


def hidden_dim(params: Mapping[str, Any]) -> int:
    """F = multiple_of * ceil(int(ffn_dim_multiplier * int(2*4*D/3)) / multiple_of)."""
    hidden = int(2 * 4 * params["dim"] / 3)
    multiplier = params.get("ffn_dim_multiplier")
    if multiplier is not None:
        hidden = int(multiplier * hidden)
    return params["multiple_of"] * math.ceil(hidden / params["multiple_of"])
