import { emitProgram, runOnCpu } from "../../testing/small_program.ts";
import { assertClose, graphPart } from "../../testing/graph_parts.ts";
import { emitHead } from "./head.ts";

Deno.test("emitHead() is PyTorch's final norm and output projection", async () => {
  const part = await graphPart("head");
  const program = await emitProgram({
    inputs: part.inputTypes,
    tensors: part.tensors,
    config: part.config,
    body: async (e, ctx, { x }) => {
      await emitHead(e, ctx, x!);
      return [];
    },
  });
  for (const unfused of [false, true]) {
    const out = await runOnCpu(program, part.callLength, part.inputs, { unfused });
    assertClose(out.logits, part.outputs.logits!, 1e-5, `unfused ${unfused}`);
  }
});
