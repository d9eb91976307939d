/**
 * Writes the fixtures of ffi/cpu/tests/bundle_plans.rs: the tiny test Llama exported as a real
 * bundle (fp16 activations, int4 per-channel linears, int8 embedding), the execution plans of its
 * three pieces for an 8-token prefill call and a 1-token decode call, the inputs of those two calls
 * as the runtime builds them, and eager fp32 reference logits of the 9 tokens (an oracle that shares
 * no code with the native library): of the checkpoint itself, and of the checkpoint with every
 * weight replaced by what the bundle stores (int4 linears and int8 embedding dequantized, fp16
 * norms), which isolates the native arithmetic from the quantization error.
 *
 * Run from the repository root:
 * `deno run --allow-read --allow-write --allow-env ffi/cpu/tests/data/generate.ts`
 *
 * @module
 */

import { exportModel } from "../../../../export/export_model.ts";
import { readPackage } from "../../../../coreml/package.ts";
import { writeTinyLlama } from "../../../../testing/tiny_llama.ts";
import { planFunction } from "../../../../runtime/backend/cpu/plan.ts";
import { buildCallInputs } from "../../../../runtime/call_inputs.ts";
import { KvCache } from "../../../../runtime/kv_cache.ts";
import { openModel } from "../../../../llama/open.ts";
import { EagerLlama } from "../../../../llama/forward.ts";
import { ropeFrequencies } from "../../../../llama/rope.ts";
import { quantizeMatrix } from "../../../../export/quantize.ts";
import type { TensorSource } from "../../../../checkpoint/tensor_source.ts";

const OUT = new URL("./tiny_c4w/", import.meta.url).pathname;
const INPUT_LEN = 8;
const MAX_CONTEXT_LEN = 40;
const PIECES = ["embedding", "blocks", "head"] as const;
/** The prompt of the prefill call; the decode call feeds one more token. */
const TOKENS = [1, 17, 42, 5, 88, 23, 61, 9];
const NEXT_TOKEN = 30;

function bytesOf(values: Float16Array | Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

const tiny = await writeTinyLlama();
const work = await Deno.makeTempDir({ prefix: "llamane-fixture-" });
const bundle = `${work}/tiny.llamane`;
await exportModel({
  checkpoint: tiny.checkpoint,
  params: tiny.params,
  output: bundle,
  inputLen: INPUT_LEN,
  maxContextLen: MAX_CONTEXT_LEN,
});

await Deno.remove(OUT, { recursive: true }).catch(() => {});
await Deno.mkdir(OUT, { recursive: true });
for (const piece of PIECES) {
  const { model, weightsPath } = readPackage(`${bundle}/${piece}.mlpackage`);
  const fn = model.program.functions.get("main")!;
  const outputs = model.description.outputs.map((o) => o.name);
  for (const callLength of [INPUT_LEN, 1]) {
    const plan = planFunction(fn, INPUT_LEN, callLength, outputs);
    await Deno.writeTextFile(`${OUT}/${piece}.L${callLength}.plan.json`, JSON.stringify(plan));
  }
  await Deno.copyFile(weightsPath!, `${OUT}/${piece}.weight.bin`);
}

using opened = await openModel({ checkpoint: tiny.checkpoint, params: tiny.params });
const { config } = opened;
const cacheLength = MAX_CONTEXT_LEN - INPUT_LEN;
const cache = new KvCache({
  layers: config.nLayers,
  kvHeads: config.nKvHeads,
  cacheLength,
  headDim: config.headDim,
  dtype: "fp16",
});
const freqs = ropeFrequencies(config);
const prefill = buildCallInputs(cache, freqs, { tokens: TOKENS, callLength: INPUT_LEN });
// The decode call sees the 8 prefill tokens in cache slots 0..7 (the test commits them).
const filled = new Float16Array(config.nKvHeads * cacheLength * config.headDim);
const keys = Array.from({ length: config.nLayers }, () => filled);
cache.commit(keys, keys, cacheLength, TOKENS.map((_, i) => i));
const decode = buildCallInputs(cache, freqs, { tokens: [NEXT_TOKEN], callLength: 1 });
for (const [name, call] of [["L8", prefill], ["L1", decode]] as const) {
  for (const input of ["mask", "freqs_cos", "freqs_sin"]) {
    await Deno.writeFile(`${OUT}/${input}.${name}.bin`, bytesOf(call.get(input)!));
  }
}

/** `source` as the bundle stores it: int4 per-channel linears, int8 per-row embedding, fp16. */
function asStored(source: TensorSource): TensorSource {
  const stored = async (name: string): Promise<Float32Array> => {
    const values = await source.readFloat32(name);
    const shape = source.info(name)!.shape;
    if (shape.length === 1) return values.map(Math.f16round);
    const [rows, columns] = shape as [number, number];
    const bits = name === "tok_embeddings.weight" ? 8 : 4;
    const q = quantizeMatrix(values, rows, columns, bits, columns, Math.f16round);
    return Float32Array.from(q.values, (v, i) => v * q.scales[Math.floor(i / columns)]!);
  };
  return {
    path: source.path,
    format: source.format,
    list: () => source.list(),
    info: (name) => source.info(name),
    readFloat32: stored,
    readStored: () => Promise.reject(new Error("the stored view has only fp32 values")),
    close: () => {},
    [Symbol.dispose]: () => {},
  };
}

const sequence = [...TOKENS, NEXT_TOKEN];
const eager = await EagerLlama.load(opened.source, config);
await Deno.writeFile(`${OUT}/eager_logits.bin`, bytesOf(eager.forward(sequence)));
const eagerStored = await EagerLlama.load(asStored(opened.source), config);
await Deno.writeFile(`${OUT}/eager_stored_logits.bin`, bytesOf(eagerStored.forward(sequence)));
await Deno.writeTextFile(
  `${OUT}/fixture.json`,
  JSON.stringify(
    {
      tokens: TOKENS,
      nextToken: NEXT_TOKEN,
      layers: config.nLayers,
      kvHeads: config.nKvHeads,
      headDim: config.headDim,
      cacheLength,
      vocabSize: config.vocabSize,
    },
    null,
    2,
  ) + "\n",
);
await Deno.remove(work, { recursive: true });
await Deno.remove(tiny.dir, { recursive: true });
console.log(`wrote ${OUT}`);
