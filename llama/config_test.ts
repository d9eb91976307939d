import assert from "node:assert/strict";
import type { TensorInfo } from "../checkpoint/tensor_source.ts";
import { ffnHiddenDim, ParamsError, parseParamsJson, resolveConfig } from "./config.ts";
import { CheckpointMismatchError, expectedTensors, validateTensors } from "./weights.ts";

const base = {
  dim: 64,
  n_layers: 2,
  n_heads: 4,
  n_kv_heads: 2,
  vocab_size: 100,
  multiple_of: 32,
  norm_eps: 1e-5,
};

function tensorsFor(params: Record<string, unknown>, tied = false): TensorInfo[] {
  const config = resolveConfig(
    "p",
    params,
    tied ? [] : [{ name: "output.weight", dtype: "F32", shape: [] }],
  );
  return [...expectedTensors(config)].map(([name, shape]) => ({ name, dtype: "F32", shape }));
}

Deno.test("ffnHiddenDim() gives Meta's published hidden sizes", () => {
  // Llama-2-7B, Llama-3-8B and Llama-3.2-1B, as their released params.json imply.
  assert.equal(ffnHiddenDim(4096, 256), 11008);
  assert.equal(ffnHiddenDim(4096, 1024, 1.3), 14336);
  assert.equal(ffnHiddenDim(2048, 256, 1.5), 8192);
});

Deno.test("resolveConfig() fills Meta's defaults", () => {
  const config = resolveConfig("p", { dim: 64, n_layers: 1, n_heads: 4, vocab_size: 10 }, []);
  assert.equal(config.nKvHeads, 4);
  assert.equal(config.headDim, 16);
  assert.equal(config.ropeTheta, 10000);
  assert.equal(config.normEps, 1e-5);
  assert.equal(config.hiddenDim, ffnHiddenDim(64, 256));
  assert.equal(config.ropeScaling, undefined);
  assert.equal(config.tiedOutput, true);
});

Deno.test("resolveConfig() takes vocab_size -1 from the embedding", () => {
  const embedding: TensorInfo = { name: "tok_embeddings.weight", dtype: "BF16", shape: [321, 64] };
  assert.equal(resolveConfig("p", { ...base, vocab_size: -1 }, [embedding]).vocabSize, 321);
  assert.throws(() => resolveConfig("p", { ...base, vocab_size: -1 }, []), ParamsError);
});

Deno.test("resolveConfig() makes the RoPE scale factor explicit", () => {
  const scaled = { ...base, use_scaled_rope: true };
  assert.equal(resolveConfig("p", scaled, []).ropeScaling?.factor, 8);
  assert.equal(resolveConfig("p", scaled, [], { ropeScaleFactor: 32 }).ropeScaling?.factor, 32);
  assert.throws(() => resolveConfig("p", scaled, [], { ropeScaleFactor: 0.5 }), RangeError);
});

Deno.test("resolveConfig() rejects missing and nonsensical fields by name", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, dim: undefined }, /missing field "dim"/],
    [{ ...base, n_layers: 0 }, /"n_layers" must be a positive integer, got 0/],
    [{ ...base, n_heads: 2.5 }, /"n_heads" must be a positive integer/],
    [{ ...base, n_heads: 5, n_kv_heads: 5 }, /dim \(64\) is not a multiple of n_heads \(5\)/],
    [{ ...base, n_kv_heads: 3 }, /n_heads \(4\) is not a multiple of n_kv_heads \(3\)/],
    [{ ...base, norm_eps: -1 }, /"norm_eps" must be a positive number/],
    [{ ...base, rope_theta: "big" }, /"rope_theta" must be a positive number, got "big"/],
    [{ ...base, use_scaled_rope: "yes" }, /"use_scaled_rope" must be true or false/],
    [{ ...base, dim: 48, n_heads: 16, n_kv_heads: 16 }, /head dimension 3 must be even/],
    [{ ...base, n_layers: 1e9 }, /"n_layers" is 1000000000, more than the 1024 any model needs/],
    [{ ...base, dim: 2 ** 20, n_heads: 4 }, /"dim" is 1048576, more than the 65536/],
    [{ ...base, vocab_size: 1e9 }, /vocabulary size is 1000000000, more than/],
    [{ ...base, ffn_dim_multiplier: 1e9 }, /FFN hidden size is \d+, more than the 262144/],
  ];
  for (const [params, message] of cases) {
    const defined = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
    assert.throws(
      () => resolveConfig("params.json", defined, []),
      (e) => e instanceof ParamsError && message.test(e.message),
    );
  }
});

Deno.test("parseParamsJson() rejects invalid JSON and non-objects", () => {
  assert.throws(() => parseParamsJson("x.json", "{"), /Cannot read params "x.json": invalid JSON/);
  // The engine's message would quote the text; the error gives the byte offset instead.
  assert.throws(
    () => parseParamsJson("x.json", "root:secret-line"),
    (e) => e instanceof ParamsError && !e.message.includes("secret"),
  );
  assert.throws(() => parseParamsJson("x.json", "[1]"), /expected a JSON object/);
});

Deno.test("validateTensors() lists every missing or misshapen tensor", () => {
  const tensors = tensorsFor(base).filter((t) => t.name !== "layers.1.attention.wk.weight")
    .map((t) => t.name === "norm.weight" ? { ...t, shape: [63] } : t);
  const config = resolveConfig("p", base, tensors);
  assert.throws(() => validateTensors("ckpt.pth", config, tensors), (e) => {
    assert.ok(e instanceof CheckpointMismatchError);
    assert.deepEqual(e.mismatches, [
      '"layers.1.attention.wk.weight": missing, expected shape [32, 64]',
      '"norm.weight": expected shape [64], got [63]',
    ]);
    return true;
  });
  validateTensors("ckpt.pth", config, tensorsFor(base));
});

Deno.test("validateTensors() accepts a tied checkpoint without output.weight", () => {
  const tensors = tensorsFor(base, true);
  const config = resolveConfig("p", base, tensors);
  assert.equal(config.tiedOutput, true);
  validateTensors("ckpt.pth", config, tensors);
});
