/**
 * The mask hides positions with the finite MASK_HIDDEN instead of -inf (no infinity reaches a
 * softmax, which fp16 softmax on the Neural Engine has turned into NaNs elsewhere). Hidden
 * entries must still add exactly nothing: every call's logits and new cache entries are compared,
 * bit for bit, with those of the same call masked with -inf, on fp32 and fp16 bundles, from an
 * empty cache to a cache that has wrapped.
 */
import assert from "node:assert/strict";
import { MASK, MASK_HIDDEN } from "../bundle/io_names.ts";
import { exportTinyBundle } from "../testing/tiny_bundle.ts";
import { CpuBackend } from "./backend/cpu.ts";
import { buildCallInputs } from "./call_inputs.ts";
import { LoadedModel } from "./model.ts";
import { ModelSession } from "./session.ts";
import { ropeFrequencies } from "../llama/rope.ts";

const cpu = await CpuBackend.create();

/** The bytes of every output of one forward call, copied before the next call reuses them. */
async function forwardBytes(
  session: ModelSession,
  inputs: ReturnType<typeof buildCallInputs>,
  callLength: number,
): Promise<Uint8Array[]> {
  const result = await session.model.forward(callLength, inputs, session.cache);
  return [result.logits, ...result.newKeys, ...result.newValues].map((a) =>
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice()
  );
}

for (const dtype of ["fp32", "fp16"] as const) {
  Deno.test(`a ${dtype} bundle computes the same bits with the finite mask as with -inf`, async () => {
    const bundle = await exportTinyBundle({ dtype, inputLen: 4, maxContextLen: 16 });
    using model = await LoadedModel.load(bundle, cpu);
    const session = new ModelSession(model);
    const freqs = ropeFrequencies(model.manifest.model);
    let hiddenEntries = 0;
    // 7 calls of 4 tokens: 28 positions through a 12-slot cache, so the window wraps.
    for (let call = 0; call < 7; call++) {
      const tokens = [3, 1, 4, 1].map((t) => (t + 5 * call) % model.manifest.model.vocabSize);
      const spec = { tokens, callLength: 4 };
      const finite = buildCallInputs(session.cache, freqs, spec);
      const mask = finite.get(MASK)!;
      assert.ok(mask.every((v) => v === 0 || v === MASK_HIDDEN));
      hiddenEntries += mask.filter((v) => v === MASK_HIDDEN).length;
      const infinite = new Map(finite);
      infinite.set(MASK, mask.map((v) => (v === MASK_HIDDEN ? -Infinity : v)));
      assert.deepEqual(
        await forwardBytes(session, finite, 4),
        await forwardBytes(session, infinite, 4),
        `call ${call}`,
      );
      await session.call(tokens);
    }
    assert.ok(hiddenEntries > 0);
  });
}
