import assert from "node:assert/strict";
import { chunkLayers, layerWeightBytes } from "./chunks.ts";
import { exportModel } from "./export_model.ts";
import { ExportOptionsError, resolveExportOptions } from "./options.ts";
import type { LinearQuantization } from "../bundle/manifest.ts";
import { readManifest } from "../bundle/manifest.ts";
import { writeTinyLlama } from "../testing/tiny_llama.ts";
import { callLogitBytes } from "../testing/tiny_bundle.ts";
import { openModel } from "../llama/open.ts";

const limits = { maxWeightBytes: 1e9, maxLayers: 24 };

Deno.test("chunkLayers() takes the fewest even chunks within the layer and byte limits", () => {
  const ranges = (n: number, bytes: number, l = limits, count?: number) =>
    chunkLayers(n, bytes, l, count).map((r) => `${r.firstLayer}-${r.endLayer}`);
  assert.deepEqual(ranges(16, 1e6), ["0-16"]);
  // SmolLM2's 30 layers exceed 24: two chunks of 15.
  assert.deepEqual(ranges(30, 1e6), ["0-15", "15-30"]);
  // Llama 3.1 8B in c4w: 32 layers of about 110 MB; at most 9 per GB, so 4 chunks of 8.
  assert.deepEqual(ranges(32, 1.1e8), ["0-8", "8-16", "16-24", "24-32"]);
  // 3 layers of 1 byte within 1.5 bytes: one layer per chunk, not 2 + 1.
  assert.deepEqual(ranges(3, 1, { maxWeightBytes: 1.5, maxLayers: 24 }), ["0-1", "1-2", "2-3"]);
  // An explicit count: as even as possible, larger chunks first, whatever the limits.
  assert.deepEqual(ranges(7, 1e12, limits, 3), ["0-3", "3-5", "5-7"]);
  assert.deepEqual(ranges(7, 1, limits, 1), ["0-7"]);
});

Deno.test("chunkLayers() refuses counts outside 1..nLayers and limits no layer can meet", () => {
  for (const count of [0, 5, -1, 1.5]) {
    assert.throws(() => chunkLayers(4, 1, limits, count), ExportOptionsError);
  }
  assert.throws(
    () => chunkLayers(4, 2e9, limits),
    /one layer holds 2000000000 bytes of weights, more than a chunk may hold \(1000000000 bytes\)/,
  );
  assert.throws(() => chunkLayers(4, 1, { maxWeightBytes: 1e9, maxLayers: 0 }), ExportOptionsError);
});

Deno.test("export refuses several chunks without graph breaks", () => {
  assert.throws(
    () => resolveExportOptions({ checkpoint: "c", params: "p", graphBreaks: false, numChunks: 2 }),
    /layer chunks are programs between graph breaks/,
  );
});

Deno.test("layerWeightBytes() is what an export writes per layer, for every weight form", async () => {
  const tiny = await writeTinyLlama();
  using model = await openModel({ checkpoint: tiny.checkpoint, params: tiny.params });
  for (const linearQuantize of ["none", "c8w", "b8w", "c4w", "b4w"] as LinearQuantization[]) {
    for (const dtype of ["fp16", "fp32"] as const) {
      const options = { checkpoint: tiny.checkpoint, params: tiny.params, linearQuantize, dtype };
      const output = `${await Deno.makeTempDir()}/tiny.llamane`;
      const { manifest } = await exportModel({ ...options, output });
      const written = manifest.pieces.find((p) => p.name === "blocks")!.weightBytes;
      const estimate = model.config.nLayers * layerWeightBytes(
        model.config,
        resolveExportOptions(options),
        (name) => model.source.info(name)!.dtype,
      );
      // weight.bin adds a header, a record before each 64-aligned blob, and a few small constants.
      assert.ok(
        written >= estimate && written <= estimate + 4096,
        `${linearQuantize} ${dtype}: wrote ${written}, estimated ${estimate}`,
      );
    }
  }
});

for (const multifunction of [false, true]) {
  Deno.test(`a chunked ${multifunction ? "multifunction " : ""}KJV bundle computes the unchunked bundle's logits`, async () => {
    const dir = await Deno.makeTempDir();
    const base = {
      checkpoint: "models/kjv-tiny/consolidated.00.pth",
      params: "models/kjv-tiny/params.json",
      dtype: "fp32",
      inputLen: 8,
      maxContextLen: 64,
      multifunction,
    } as const;
    await exportModel({ ...base, output: `${dir}/one.llamane` });
    await exportModel({ ...base, output: `${dir}/three.llamane`, numChunks: 3 });
    const three = await readManifest(`${dir}/three.llamane`);
    assert.deepEqual(three.pieces.map((p) => p.name), [
      "embedding",
      "blocks_0",
      "blocks_1",
      "blocks_2",
      "head",
    ]);
    const caches = three.pieces.map((p) =>
      p.functions[0]!.inputs.filter((io) => io.name.startsWith("k_cache_")).map((io) => io.name)
    );
    assert.deepEqual(caches, [[], ["k_cache_0", "k_cache_1"], ["k_cache_2"], ["k_cache_3"], []]);
    assert.deepEqual(
      await callLogitBytes(`${dir}/three.llamane`),
      await callLogitBytes(`${dir}/one.llamane`),
    );
  });
}
