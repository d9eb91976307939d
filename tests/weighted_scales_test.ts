/**
 * Whole rows of int4 on real weights: SmolLM2-135M-Instruct's tensors (scripts/fixtures/smollm2/,
 * made on first run) quantized by the exporter must store exactly the scales and integers of the
 * independent NumPy statement of the rule, scripts/oracle/weighted_scales.py: rows of 576 values,
 * searched whole, and of 1536, searched on a sample and refitted on every value.
 */

import assert from "node:assert/strict";
import { openCheckpoint } from "../checkpoint/mod.ts";
import { quantizeMatrix } from "../export/quantize.ts";
import { runOracleScript } from "../testing/oracle_python.ts";

const ROOT = new URL("../", import.meta.url);
const CHECKPOINT = new URL("testdata/smollm2/f32.gguf", ROOT).pathname;

const made = await new Deno.Command("bash", {
  args: [new URL("scripts/fixtures/smollm2/make.sh", ROOT).pathname],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!made.success) throw new Error("scripts/fixtures/smollm2/make.sh failed");

const ROUNDING = { fp16: Math.f16round, fp32: Math.fround } as const;

for (const name of ["blk.3.attn_q.weight", "blk.17.ffn_down.weight"]) {
  for (const dtype of ["fp16", "fp32"] as const) {
    Deno.test(`c4w scales of SmolLM2's ${name} (${dtype}) are the NumPy rule's, bit for bit`, async () => {
      using source = await openCheckpoint(CHECKPOINT);
      const [rows, columns] = source.info(name)!.shape as [number, number];
      const weights = await source.readFloat32(name);
      const dir = await Deno.makeTempDir({ prefix: "llamane_weighted_scales_" });
      try {
        await Deno.writeFile(`${dir}/weights.f32`, new Uint8Array(weights.buffer));
        await runOracleScript("scripts/oracle/weighted_scales.py", [
          `${dir}/weights.f32`,
          String(rows),
          String(columns),
          dtype,
          `${dir}/quantized`,
        ]);
        const oracle = await Deno.readFile(`${dir}/quantized`);
        const scales = new Float32Array(oracle.buffer, 0, rows);
        const values = new Int8Array(oracle.buffer, rows * 4, rows * columns);
        const q = quantizeMatrix(weights, rows, columns, 4, columns, ROUNDING[dtype]);
        assert.deepEqual(
          new Uint32Array(q.scales.buffer),
          new Uint32Array(scales.slice().buffer),
        );
        assert.deepEqual(q.values, values.slice());
        // The rule is not absmax: many rows clip their extreme a little or map it to -8.
        const absmaxRows = Array.from(q.scales).filter((scale, r) => {
          let extreme = 0;
          for (let i = r * columns; i < (r + 1) * columns; i++) {
            extreme = Math.max(extreme, Math.abs(weights[i]!));
          }
          return scale === ROUNDING[dtype](extreme / 7);
        }).length;
        assert.ok(absmaxRows < rows / 4, `${absmaxRows} of ${rows} rows keep absmax`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}
