/**
 * The reconstruction error an export reports, against the same figure computed from the written
 * bundle: every stored weight read back from its package (model.mlmodel and weight.bin),
 * dequantized here in float64, its rows put back in the checkpoint's order, and compared with the
 * checkpoint's values.
 */

import assert from "node:assert/strict";
import { exportModel, type ExportSummary } from "./export_model.ts";
import type { ExportOptions } from "./options.ts";
import { formatReconstructionError } from "./reconstruction_error.ts";
import { ropeSourceRow } from "./graph/weight_reader.ts";
import { readPackage } from "../coreml/package.ts";
import { BlobStorageReader } from "../coreml/blob_storage.ts";
import type { Operation, Value } from "../coreml/mil.ts";
import { float16Values } from "../coreml/tensor.ts";
import { openCheckpoint } from "../checkpoint/mod.ts";
import { writeTinyLlama } from "../testing/tiny_llama.ts";

const LAYER_TENSORS: Readonly<Record<string, string>> = {
  wq: "attention.wq",
  wk: "attention.wk",
  wv: "attention.wv",
  wo: "attention.wo",
  w1: "feed_forward.w1",
  w2: "feed_forward.w2",
  w3: "feed_forward.w3",
};
const LINEAR_PART = /^(?:layers_(\d+)_(w[qkvo123])|output)_part(\d+)_weight$/;
const EMBEDDING_TABLE = "embedding_table";

/** A constant's values, fp16 widened. */
function numbers(value: Value, blobs: BlobStorageReader | undefined): ArrayLike<number> {
  const values = value.kind === "immediate"
    ? value.values
    : blobs!.readValues(value.offsetBytes, value.dtype);
  return value.dtype === "fp16"
    ? float16Values(values as Uint16Array)
    : values as ArrayLike<number>;
}

/** What a weight-defining op dequantizes to, row-major, in float64. */
function dequantize(op: Operation, blobs: BlobStorageReader | undefined): Float64Array {
  const constant = (name: string): Value => {
    const bound = op.inputs.get(name)?.[0];
    assert.ok(bound !== undefined && typeof bound !== "string", `${op.name}: ${name}`);
    return bound;
  };
  const input = (name: string) => numbers(constant(name), blobs);
  switch (op.type) {
    case "const":
      return Float64Array.from(numbers(op.attributes.get("val")!, blobs));
    case "constexpr_blockwise_shift_scale": {
      const data = input("data");
      const scales = input("scale");
      const offsets = op.inputs.has("offset") ? input("offset") : undefined;
      const group = data.length / scales.length;
      return Float64Array.from(data, (q, i) => {
        const g = Math.floor(i / group);
        return (q - (offsets?.[g] ?? 0)) * scales[g]!;
      });
    }
    case "constexpr_lut_to_dense": {
      const indices = input("indices");
      const lut = input("lut");
      // [groups of rows, 1, entries, 1]
      const [groups, , entries] = constant("lut").shape as number[];
      const perPalette = indices.length / groups!;
      return Float64Array.from(
        indices,
        (index, i) => lut[Math.floor(i / perPalette) * entries! + index]!,
      );
    }
  }
  throw new Error(`op ${op.name} of type ${op.type} defines no weight`);
}

/** Squared error and squared values of one tensor, summed over its stored parts. */
interface Sums {
  error: number;
  values: number;
}

/** Each linear tensor's and the embedding table's relative error, read from the bundle. */
async function bundleErrors(
  bundle: string,
  checkpoint: string,
  summary: ExportSummary,
): Promise<{ linear: Map<string, number>; embedding: number }> {
  const { model } = summary.manifest;
  using source = await openCheckpoint(checkpoint);
  const linear = new Map<string, Sums>();
  const embedding: Sums = { error: 0, values: 0 };
  const seen = new Set<string>();
  for (const piece of summary.manifest.pieces) {
    const { model: coreml, weightsPath } = readPackage(`${bundle}/${piece.package}`);
    using blobs = weightsPath === undefined ? undefined : BlobStorageReader.open(weightsPath);
    for (const fn of coreml.program.functions.values()) {
      for (const op of fn.block.operations) {
        const name = op.outputs[0]?.name ?? "";
        const match = LINEAR_PART.exec(name);
        // A multifunction piece's functions share their weights.
        if ((match === null && name !== EMBEDDING_TABLE) || seen.has(name)) continue;
        seen.add(name);
        const [layer, kind, part] = match?.slice(1) ?? [];
        const tensor = match === null || (layer === undefined && model.tiedOutput)
          ? "tok_embeddings.weight"
          : layer === undefined
          ? "output.weight"
          : `layers.${layer}.${LAYER_TENSORS[kind!]}.weight`;
        const stored = dequantize(op, blobs);
        const [rows, columns] = op.outputs[0]!.type.shape as [number, number];
        const w = await source.readFloat32(tensor);
        const rope = kind === "wq" || kind === "wk";
        let sums = embedding;
        if (match !== null) {
          sums = linear.get(tensor) ?? { error: 0, values: 0 };
          linear.set(tensor, sums);
        }
        for (let r = 0; r < rows; r++) {
          const laidOut = Number(part ?? 0) * rows + r;
          const from = rope ? ropeSourceRow(laidOut, model.headDim) : laidOut;
          for (let c = 0; c < columns; c++) {
            const value = w[from * columns + c]!;
            sums.error += (value - stored[r * columns + c]!) ** 2;
            sums.values += value ** 2;
          }
        }
      }
    }
  }
  const relative = (s: Sums) => s.error === 0 ? 0 : s.error / s.values;
  return {
    linear: new Map([...linear].map(([tensor, sums]) => [tensor, relative(sums)])),
    embedding: relative(embedding),
  };
}

function assertRelativelyClose(actual: number, expected: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= 1e-9 * Math.abs(expected),
    `${what}: ${actual} != ${expected}`,
  );
}

const CASES: [string, Partial<ExportOptions>, { tied?: boolean }][] = [
  ["fp16 c4w (defaults)", {}, {}],
  ["b4w asymmetric, -E 4,32, parts of 16 rows", {
    linearQuantize: "b4w",
    asymmetric: true,
    embeddingQuantize: { bits: 4, groupSize: 32 },
    targetSplitSize: 16,
  }, {}],
  ["c8w, fp16 embedding", { linearQuantize: "c8w", embeddingQuantize: "none" }, {}],
  ["lut4 multifunction, -E lut6, tied head", {
    linearQuantize: "lut4",
    lutGroupSize: 4,
    embeddingQuantize: { paletteBits: 6 },
    multifunction: true,
  }, { tied: true }],
  ["fp16 float in one program", { linearQuantize: "none", graphBreaks: false }, {}],
];

for (const [name, options, model] of CASES) {
  Deno.test(`the summary's reconstruction error is the bundle's: ${name}`, async () => {
    const tiny = await writeTinyLlama(undefined, model);
    const bundle = `${tiny.dir}/tiny.llamane`;
    const summary = await exportModel({
      checkpoint: tiny.checkpoint,
      params: tiny.params,
      output: bundle,
      inputLen: 8,
      maxContextLen: 40,
      ...options,
    });
    const read = await bundleErrors(bundle, tiny.checkpoint, summary);
    const reported = summary.reconstructionError;
    const nLayers = summary.manifest.model.nLayers;
    // Each layer's seven linears and the head, once each, whatever the functions.
    assert.equal(reported.linear.length, 7 * nLayers + 1);
    assert.deepEqual(reported.linear.map((t) => t.tensor).sort(), [...read.linear.keys()].sort());
    for (const { tensor, relativeError } of reported.linear) {
      assert.ok(relativeError > 0, `${tensor}: stored with some error`);
      assertRelativelyClose(relativeError, read.linear.get(tensor)!, tensor);
    }
    assertRelativelyClose(reported.embedding, read.embedding, "embedding");
    const errors = [...read.linear.values()];
    assertRelativelyClose(
      reported.linearMean,
      errors.reduce((a, b) => a + b) / errors.length,
      "mean",
    );
    const worst = [...read.linear].reduce((a, b) => b[1] > a[1] ? b : a);
    assert.equal(reported.linearWorst.tensor, worst[0]);
    assert.match(formatReconstructionError(reported), /^relative squared error: linear /);
  });
}

Deno.test("an fp32 export without quantization reports no error at all", async () => {
  const tiny = await writeTinyLlama();
  const summary = await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output: `${tiny.dir}/tiny.llamane`,
    inputLen: 8,
    maxContextLen: 40,
    dtype: "fp32",
    linearQuantize: "none",
    embeddingQuantize: "none",
  });
  const reported = summary.reconstructionError;
  assert.deepEqual(new Set(reported.linear.map((t) => t.relativeError)), new Set([0]));
  assert.equal(reported.embedding, 0);
  assert.equal(
    formatReconstructionError(reported),
    "relative squared error: linear 0; embedding 0",
  );
});
