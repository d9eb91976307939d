import { emitProgram, runOnCpu } from "../../testing/small_program.ts";
import { assertClose, graphPart } from "../../testing/graph_parts.ts";
import { emitFeedForward } from "./feed_forward.ts";

Deno.test("emitFeedForward() is PyTorch's SwiGLU, with its linears whole or split", async () => {
  const part = await graphPart("feed_forward");
  // A target of 16 output features splits w1 and w3 in 3 parts and w2 in 2.
  for (const targetSplitSize of [1024, 16]) {
    const program = await emitProgram({
      inputs: part.inputTypes,
      tensors: part.tensors,
      config: part.config,
      options: { targetSplitSize },
      body: async (e, ctx, { x }) => [await emitFeedForward(e, ctx, x!, 0)],
    });
    for (const unfused of [false, true]) {
      const out = await runOnCpu(program, part.callLength, part.inputs, { unfused });
      const what = `split at ${targetSplitSize}, unfused ${unfused}`;
      assertClose(out[program.outputs[0]!], part.outputs.out!, 1e-5, what);
    }
  }
});
