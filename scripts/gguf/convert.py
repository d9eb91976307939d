"""Converts a Meta-layout Llama checkpoint to a GGUF file for llama.cpp (architecture "llama").

Usage (the venv from scripts/gguf/setup_venv.sh: Debian's torch plus the pinned gguf package):
  out/peer-venv/bin/python scripts/gguf/convert.py --checkpoint consolidated.00.pth \
      --params params.json [--tokenizer tokenizer.model] --outtype {f32,f16,q8_0,q4_0} \
      --context-length N [--rope-scale-factor F] [--name NAME] --output model.gguf

Layout decisions, checked against llama.cpp's LLaMA graph:
- Tensors keep Meta's [out, in] row-major data; GGUF lists dimensions innermost first, which the
  gguf writer does. wq and wk are NOT permuted: llama.cpp's LLaMA RoPE ("normal" mode) rotates
  adjacent pairs (x[2j], x[2j+1]), which is Meta's layout; llama.cpp's Hugging Face converter only
  permutes because Hugging Face checkpoints were permuted to rotate halves.
- Tied checkpoints (no output.weight) get no `output` tensor: llama.cpp then reuses token_embd.
- `use_scaled_rope` (Llama 3.1/3.2) becomes the `rope_freqs` tensor of per-frequency divisors, as
  llama.cpp's converter writes it; params.json does not record the scale factor (8 for Llama 3.1,
  32 for Llama 3.2 1B/3B), hence --rope-scale-factor.
- Norm weights and rope_freqs stay F32 (llama.cpp's converters do the same); every matrix gets the
  requested type. q8_0 and q4_0 are "pure": the embedding (also the tied head) has that type too,
  where llama-quantize would give the head Q6_K.
- Without a tokenizer, a SentencePiece-shaped vocabulary of the right size is synthesized
  (<unk>, <s>, </s>, the 256 byte tokens, then placeholders): enough to load and time the model,
  not to read its text.

The GGUF is written to `<output>.partial` and renamed into place, so a killed run never leaves a
file that looks complete. Memory: the whole checkpoint (torch 1.13 cannot mmap it) plus one tensor.
"""

import argparse
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import gguf
import numpy as np
import torch

# Llama 3.1 RoPE scaling constants (Meta's reference); params.json records only use_scaled_rope.
ROPE_OLD_CONTEXT = 8192
ROPE_LOW_FREQ_FACTOR = 1.0
ROPE_HIGH_FREQ_FACTOR = 4.0
# Rows quantized at once: bounds the fp32 copy of a bf16 tensor (the 1B embedding is 1 GB in fp32).
CHUNK_ELEMENTS = 1 << 24
OUTTYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}
SYNTHETIC_SPECIALS = ["<unk>", "<s>", "</s>"]


class ConversionError(Exception):
    """The checkpoint, params.json or tokenizer cannot be converted; the message says why."""


@dataclass(frozen=True)
class Config:
    """The network's shape, resolved from params.json and the checkpoint."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden_dim: int
    vocab_size: int
    norm_eps: float
    rope_theta: float
    use_scaled_rope: bool

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


@dataclass(frozen=True)
class Vocabulary:
    """SentencePiece-style tokens for the tokenizer.ggml.* keys."""

    tokens: list[str]
    scores: list[float]
    types: list[int]
    bos_id: int
    eos_id: int
    unk_id: int
    pad_id: Optional[int]
    add_space_prefix: bool


def hidden_dim(params: Mapping[str, Any]) -> int:
    """Meta's FFN rule: multiple_of * ceil(int(ffn_dim_multiplier * int(8D/3)) / multiple_of)."""
    hidden = int(2 * 4 * params["dim"] / 3)
    multiplier = params.get("ffn_dim_multiplier")
    if multiplier is not None:
        hidden = int(multiplier * hidden)
    return params["multiple_of"] * math.ceil(hidden / params["multiple_of"])


def read_config(path: pathlib.Path, state: Mapping[str, torch.Tensor]) -> Config:
    params = json.loads(path.read_text())
    for key in ("dim", "n_layers", "n_heads", "norm_eps", "multiple_of"):
        if key not in params:
            raise ConversionError(f"{path}: missing field {key!r}")
    embedding = state.get("tok_embeddings.weight")
    if embedding is None:
        raise ConversionError("the checkpoint has no tok_embeddings.weight")
    vocab_size = params.get("vocab_size", -1)
    # Llama 1/2 params.json say -1: the embedding's row count is the vocabulary size.
    if vocab_size == -1:
        vocab_size = embedding.shape[0]
    if params["dim"] % params["n_heads"] != 0:
        raise ConversionError(f"{path}: dim {params['dim']} is not a multiple of n_heads")
    return Config(
        dim=params["dim"],
        n_layers=params["n_layers"],
        n_heads=params["n_heads"],
        n_kv_heads=params.get("n_kv_heads") or params["n_heads"],
        hidden_dim=hidden_dim(params),
        vocab_size=vocab_size,
        norm_eps=float(params["norm_eps"]),
        rope_theta=float(params.get("rope_theta", 10000.0)),
        use_scaled_rope=bool(params.get("use_scaled_rope", False)),
    )


def load_state(path: pathlib.Path) -> dict[str, torch.Tensor]:
    # weights_only: a checkpoint is data, never code to run.
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    nested = loaded.get("model")
    return dict(nested if isinstance(nested, Mapping) else loaded)


def tensor_plan(config: Config, tied: bool) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(GGUF name, Meta name, Meta shape) of every checkpoint tensor, in llama.cpp's order."""
    d, f, kv = config.dim, config.hidden_dim, config.n_kv_heads * config.head_dim
    yield "token_embd.weight", "tok_embeddings.weight", (config.vocab_size, d)
    for i in range(config.n_layers):
        meta, blk = f"layers.{i}.", f"blk.{i}."
        yield blk + "attn_norm.weight", meta + "attention_norm.weight", (d,)
        yield blk + "attn_q.weight", meta + "attention.wq.weight", (d, d)
        yield blk + "attn_k.weight", meta + "attention.wk.weight", (kv, d)
        yield blk + "attn_v.weight", meta + "attention.wv.weight", (kv, d)
        yield blk + "attn_output.weight", meta + "attention.wo.weight", (d, d)
        yield blk + "ffn_norm.weight", meta + "ffn_norm.weight", (d,)
        yield blk + "ffn_gate.weight", meta + "feed_forward.w1.weight", (f, d)
        yield blk + "ffn_down.weight", meta + "feed_forward.w2.weight", (d, f)
        yield blk + "ffn_up.weight", meta + "feed_forward.w3.weight", (f, d)
    yield "output_norm.weight", "norm.weight", (d,)
    if not tied:
        yield "output.weight", "output.weight", (config.vocab_size, d)


def check_tensors(
    state: Mapping[str, torch.Tensor], plan: list[tuple[str, str, tuple[int, ...]]]
) -> None:
    expected = {meta: shape for _, meta, shape in plan}
    for meta, shape in expected.items():
        if meta not in state:
            raise ConversionError(f"the checkpoint has no {meta}")
        if tuple(state[meta].shape) != shape:
            raise ConversionError(
                f"{meta} has shape {tuple(state[meta].shape)}, params.json implies {shape}"
            )
    # Llama 2 checkpoints carry rope.freqs, which llama.cpp computes itself.
    unexpected = sorted(set(state) - set(expected) - {"rope.freqs"})
    if unexpected:
        raise ConversionError(f"the checkpoint has tensors this converter cannot map: {unexpected}")


def rope_divisors(config: Config, factor: float) -> np.ndarray:
    """Per-frequency divisors (llama.cpp's rope_freqs) of Meta's Llama 3.1 frequency scaling."""
    divisors = []
    for j in range(config.head_dim // 2):
        freq = config.rope_theta ** (-2 * j / config.head_dim)
        wavelength = 2 * math.pi / freq
        if wavelength < ROPE_OLD_CONTEXT / ROPE_HIGH_FREQ_FACTOR:
            divisors.append(1.0)
        elif wavelength > ROPE_OLD_CONTEXT / ROPE_LOW_FREQ_FACTOR:
            divisors.append(factor)
        else:
            smooth = (ROPE_OLD_CONTEXT / wavelength - ROPE_LOW_FREQ_FACTOR) / (
                ROPE_HIGH_FREQ_FACTOR - ROPE_LOW_FREQ_FACTOR
            )
            # Meta scales the frequency by (1 - smooth) / factor + smooth; llama.cpp divides by it.
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(divisors, dtype=np.float32)


def sentencepiece_vocabulary(path: pathlib.Path, vocab_size: int) -> Vocabulary:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    if processor.vocab_size() != vocab_size:
        raise ConversionError(
            f"{path} has {processor.vocab_size()} tokens, the checkpoint {vocab_size}"
        )
    tokens, scores, types = [], [], []
    for i in range(vocab_size):
        tokens.append(processor.id_to_piece(i))
        scores.append(processor.get_score(i))
        if processor.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif processor.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif processor.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif processor.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    # The Python binding does not expose the normalizer spec; a dummy prefix shows in the pieces.
    add_space_prefix = processor.encode("a", out_type=str)[0].startswith("\u2581")
    pad = processor.pad_id()
    return Vocabulary(
        tokens=tokens,
        scores=scores,
        types=types,
        bos_id=processor.bos_id(),
        eos_id=processor.eos_id(),
        unk_id=processor.unk_id(),
        pad_id=pad if pad >= 0 else None,
        add_space_prefix=add_space_prefix,
    )


def synthetic_vocabulary(vocab_size: int) -> Vocabulary:
    """SentencePiece-shaped placeholders: llama.cpp needs the byte tokens (e.g. for newline)."""
    specials = len(SYNTHETIC_SPECIALS)
    if vocab_size < specials + 256:
        raise ConversionError(f"vocab_size {vocab_size} is too small for a synthesized vocabulary")
    tokens = SYNTHETIC_SPECIALS + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    rest = range(len(tokens), vocab_size)
    tokens += [f"\u2581placeholder{i}" for i in rest]
    types += [gguf.TokenType.NORMAL] * len(rest)
    return Vocabulary(
        tokens=tokens,
        scores=[0.0] * (specials + 256) + [-float(i) for i in rest],
        types=[int(t) for t in types],
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=None,
        add_space_prefix=True,
    )


def quantized_shape(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> tuple[int, ...]:
    """The shape of the array the writer receives: bytes per row for block types."""
    if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return shape
    return gguf.quant_shape_to_byte_shape(shape, qtype)


def convert_tensor(tensor: torch.Tensor, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """The tensor in `qtype`, quantized a chunk of rows at a time."""
    if tensor.dim() == 1:
        return tensor.to(torch.float32).numpy()
    rows, columns = tensor.shape
    step = max(1, CHUNK_ELEMENTS // columns)
    chunks = []
    for start in range(0, rows, step):
        chunk = tensor[start : start + step].to(torch.float32).numpy()
        chunks.append(gguf.quantize(chunk, qtype))
    return np.concatenate(chunks, axis=0)


def add_metadata(writer: gguf.GGUFWriter, config: Config, args: argparse.Namespace, ftype):
    writer.add_name(args.name or args.output.stem)
    writer.add_context_length(args.context_length)
    writer.add_embedding_length(config.dim)
    writer.add_block_count(config.n_layers)
    writer.add_feed_forward_length(config.hidden_dim)
    writer.add_head_count(config.n_heads)
    writer.add_head_count_kv(config.n_kv_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(ftype)
    if args.outtype in ("q8_0", "q4_0"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def add_vocabulary(writer: gguf.GGUFWriter, vocab: Vocabulary):
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_unk_token_id(vocab.unk_id)
    if vocab.pad_id is not None:
        writer.add_pad_token_id(vocab.pad_id)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(vocab.add_space_prefix)


def convert(args: argparse.Namespace) -> str:
    started = time.monotonic()
    qtype, ftype = OUTTYPES[args.outtype]
    state = load_state(args.checkpoint)
    config = read_config(args.params, state)
    if config.use_scaled_rope and args.rope_scale_factor is None:
        raise ConversionError("params.json sets use_scaled_rope: give --rope-scale-factor")
    tied = "output.weight" not in state
    plan = list(tensor_plan(config, tied))
    check_tensors(state, plan)
    vocab = (
        sentencepiece_vocabulary(args.tokenizer, config.vocab_size)
        if args.tokenizer is not None
        else synthetic_vocabulary(config.vocab_size)
    )

    partial = args.output.with_name(args.output.name + ".partial")
    writer = gguf.GGUFWriter(partial, "llama")
    add_metadata(writer, config, args, ftype)
    add_vocabulary(writer, vocab)

    extra = []
    if config.use_scaled_rope:
        extra.append(("rope_freqs.weight", rope_divisors(config, args.rope_scale_factor)))
    for name, array in extra:
        writer.add_tensor_info(name, array.shape, array.dtype, array.nbytes)
    types = {}
    for name, meta, shape in plan:
        types[name] = gguf.GGMLQuantizationType.F32 if len(shape) == 1 else qtype
        byte_shape = quantized_shape(shape, types[name])
        if types[name] == gguf.GGMLQuantizationType.F32:
            dtype, raw = np.dtype(np.float32), None
        elif types[name] == gguf.GGMLQuantizationType.F16:
            dtype, raw = np.dtype(np.float16), None
        else:
            dtype, raw = np.dtype(np.uint8), types[name]
        nbytes = math.prod(byte_shape) * dtype.itemsize
        writer.add_tensor_info(name, byte_shape, dtype, nbytes, raw_dtype=raw)

    # Tensor infos first, data after: one tensor in memory at a time besides the checkpoint.
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, array in extra:
            writer.write_tensor_data(array)
        for name, meta, _ in plan:
            writer.write_tensor_data(convert_tensor(state.pop(meta), types[name]))
        writer.close()
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, args.output)
    seconds = time.monotonic() - started
    return (
        f"wrote {args.output}: {len(plan) + len(extra)} tensors, {args.outtype}, "
        f"{args.output.stat().st_size} bytes, {'tied' if tied else 'untied'} output, "
        f"{'SentencePiece' if args.tokenizer else 'synthesized'} vocabulary of "
        f"{config.vocab_size}, in {seconds:.1f} s"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=pathlib.Path, required=True)
    parser.add_argument("--params", type=pathlib.Path, required=True)
    parser.add_argument("--tokenizer", type=pathlib.Path, help="SentencePiece tokenizer.model")
    parser.add_argument("--outtype", choices=sorted(OUTTYPES), required=True)
    parser.add_argument(
        "--context-length",
        type=int,
        required=True,
        help="llama.context_length: the context the model was trained for (params.json lacks it)",
    )
    parser.add_argument("--rope-scale-factor", type=float, help="required with use_scaled_rope")
    parser.add_argument("--name", help="general.name (default: the output's stem)")
    parser.add_argument("--output", type=pathlib.Path, required=True)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    try:
        print(convert(args))
    except ConversionError as error:
        sys.exit(f"Cannot convert {args.checkpoint}: {error}")


if __name__ == "__main__":
    main()
