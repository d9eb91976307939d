/**
 * A palettized bundle runs on the CPU backend as the float model its palettes stand for: the KJV
 * model exported with lut4 layers and a lut6 embedding and head (and the other way round)
 * generates, with f32 activations, the greedy tokens of an fp32 bundle of a checkpoint holding the
 * dequantized weights. Those weights come from palettizing each linear's rows as the exporter lays
 * them out (wq and wk rows in the half-split RoPE order, one palette per 16 rows), then putting the
 * rows back in the checkpoint's order.
 */

import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import { type ExportOptions, linearShapes } from "../export/options.ts";
import { type PaletteBits, palettizeMatrix } from "../export/palettize.ts";
import { ropeSourceRow } from "../export/graph/weight_reader.ts";
import { openModel } from "../llama/open.ts";
import { greedyTokensWith } from "../testing/greedy_tokens.ts";
import { type Fp32Tensor, writeSafetensors } from "../testing/tiny_llama.ts";

const CHECKPOINT = "models/kjv-tiny/consolidated.00.pth";
const PARAMS = "models/kjv-tiny/params.json";
const GROUP_ROWS = 16;
const PROMPTS = [[1, 322, 342, 977], [1, 500, 17, 90, 4, 250]];
const NEW_TOKENS = 24;

/** `rows` palettized as the exporter stores them, in the checkpoint's row order. */
function dequantized(
  values: Float32Array,
  rows: number,
  columns: number,
  bits: PaletteBits,
  ropeHeadDim: number | undefined,
): Float32Array {
  const order = (r: number) => ropeHeadDim === undefined ? r : ropeSourceRow(r, ropeHeadDim);
  const laidOut = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    laidOut.set(values.subarray(order(r) * columns, (order(r) + 1) * columns), r * columns);
  }
  const p = palettizeMatrix(laidOut, rows, columns, bits, GROUP_ROWS, Math.fround);
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    const palette = Math.floor(r / GROUP_ROWS) * 2 ** bits;
    for (let c = 0; c < columns; c++) {
      out[order(r) * columns + c] = p.palettes[palette + p.indices[r * columns + c]!]!;
    }
  }
  return out;
}

/**
 * The KJV checkpoint with its layers' linears palettized to `bits`, its embedding and output head
 * (which `-E` stores) to `embeddingBits`.
 */
async function dequantizedCheckpoint(
  path: string,
  bits: PaletteBits,
  embeddingBits: PaletteBits,
): Promise<void> {
  using model = await openModel({ checkpoint: CHECKPOINT, params: PARAMS });
  const { config, source } = model;
  const linears = new Set(linearShapes(config).slice(0, -1).map(([name]) => name));
  const tensors: Fp32Tensor[] = [];
  for (const { name, shape } of source.list()) {
    const values = await source.readFloat32(name);
    const [rows, columns] = shape as [number, number];
    const rope = /attention\.w[qk]\.weight$/.test(name) ? config.headDim : undefined;
    const palettized = linears.has(name)
      ? dequantized(values, rows, columns, bits, rope)
      : name === "tok_embeddings.weight" || name === "output.weight"
      ? dequantized(values, rows, columns, embeddingBits, undefined)
      : values;
    tensors.push({ name, shape, values: palettized });
  }
  await writeSafetensors(path, tensors);
}

const CASES: [string, Partial<ExportOptions>, PaletteBits, PaletteBits][] = [
  ["lut4, -E lut6", { linearQuantize: "lut4", embeddingQuantize: { paletteBits: 6 } }, 4, 6],
  ["lut6, -E lut4", { linearQuantize: "lut6", embeddingQuantize: { paletteBits: 4 } }, 6, 4],
];

for (const [name, options, bits, embeddingBits] of CASES) {
  Deno.test(`a ${name} bundle generates the greedy tokens of its dequantized weights in fp32`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "llamane-palettized-" });
    try {
      const common = { params: PARAMS, dtype: "fp32", maxContextLen: 128, inputLen: 8 } as const;
      await exportModel({
        ...common,
        checkpoint: CHECKPOINT,
        output: `${dir}/lut.llamane`,
        embeddingQuantize: "none",
        lutGroupSize: GROUP_ROWS,
        ...options,
      });
      await dequantizedCheckpoint(`${dir}/dequantized.safetensors`, bits, embeddingBits);
      await exportModel({
        ...common,
        checkpoint: `${dir}/dequantized.safetensors`,
        tokenizer: "models/kjv-tiny/tokenizer.model",
        output: `${dir}/float.llamane`,
        linearQuantize: "none",
        embeddingQuantize: "none",
      });
      const want = await greedyTokensWith({}, `${dir}/float.llamane`, PROMPTS, NEW_TOKENS);
      const got = await greedyTokensWith(
        { LLAMANE_CPU_ACTIVATIONS: "f32" },
        `${dir}/lut.llamane`,
        PROMPTS,
        NEW_TOKENS,
      );
      assert.deepEqual(got, want);
      const int8 = await greedyTokensWith({}, `${dir}/lut.llamane`, PROMPTS, NEW_TOKENS);
      const same = int8.map((tokens, i) => tokens.findIndex((t, j) => t !== want[i]![j]));
      console.log(`${name}, int8 activations: first token off the fp32 path ${same.join(", ")}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
