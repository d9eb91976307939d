import assert from "node:assert/strict";
import { callLogitBytes, exportTinyBundle } from "../testing/tiny_bundle.ts";
import { readManifest } from "../bundle/manifest.ts";
import { writeTinyLlama } from "../testing/tiny_llama.ts";
import { exportModel } from "./export_model.ts";

for (const multifunction of [false, true]) {
  Deno.test(`logits emitted in parts ${multifunction ? "(multifunction) " : ""}join into the whole logits, bit for bit`, async () => {
    // The tiny vocabulary of 96 in a head split into 3 parts of 32, with outputs at most 48 wide.
    const options = { dtype: "fp32", targetSplitSize: 32, multifunction } as const;
    const parts = await exportTinyBundle({ ...options, maxLogitsAxis: 48 });
    const whole = await exportTinyBundle(options);
    const head = (await readManifest(parts)).pieces.at(-1)!.functions[0]!;
    assert.deepEqual(head.outputs.map((io) => [io.name, io.shape.at(-1)]), [
      ["logits_0", 32],
      ["logits_1", 32],
      ["logits_2", 32],
    ]);
    assert.deepEqual(await callLogitBytes(parts), await callLogitBytes(whole));
  });
}

Deno.test("export refuses a vocabulary whose head parts are still too wide, before writing", async () => {
  const tiny = await writeTinyLlama();
  const output = `${await Deno.makeTempDir()}/never.llamane`;
  await assert.rejects(
    exportModel({
      checkpoint: tiny.checkpoint,
      params: tiny.params,
      output,
      targetSplitSize: 48,
      maxLogitsAxis: 40,
    }),
    /the vocabulary of 96 is wider than one logits output may be \(40\), and the head splits into parts of 48/,
  );
  await assert.rejects(Deno.stat(output), Deno.errors.NotFound);
});
