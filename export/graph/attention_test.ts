import assert from "node:assert/strict";
import { emitProgram, runOnCpu } from "../../testing/small_program.ts";
import { assertClose, graphPart } from "../../testing/graph_parts.ts";
import { emitAttention } from "./attention.ts";
import { emitRopeTables } from "./rope.ts";

Deno.test("emitAttention() is PyTorch's grouped-query attention over the cache", async () => {
  const part = await graphPart("attention");
  const cacheLen = part.inputTypes.k_cache_0!.shape[2]!;
  const program = await emitProgram({
    inputs: part.inputTypes,
    tensors: part.tensors,
    config: part.config,
    options: { inputLen: part.callLength, maxContextLen: cacheLen + part.callLength },
    body: async (e, ctx, inputs) => [
      await emitAttention(e, ctx, inputs.x!, 0, {
        mask: inputs.mask!,
        rope: emitRopeTables(e, inputs.freqs_cos!, inputs.freqs_sin!),
        kCache: inputs.k_cache_0!,
        vCache: inputs.v_cache_0!,
      }),
    ],
  });
  // The new keys and values are outputs, in the cache's layout, beside the projected result.
  assert.deepEqual(program.outputs, ["k_new_0", "v_new_0", "layers_0_wo"]);
  for (const unfused of [false, true]) {
    const out = await runOnCpu(program, part.callLength, part.inputs, { unfused });
    assertClose(out.layers_0_wo, part.outputs.out!, 1e-5, `output, unfused ${unfused}`);
    assertClose(out.k_new_0, part.outputs.k_new_0!, 1e-5, `new keys, unfused ${unfused}`);
    assertClose(out.v_new_0, part.outputs.v_new_0!, 1e-5, `new values, unfused ${unfused}`);
  }
});
