import { FINAL_NORM } from "../../llama/weights.ts";
import { emitProgram, runOnCpu } from "../../testing/small_program.ts";
import { assertClose, graphPart } from "../../testing/graph_parts.ts";
import { emitRmsNorm } from "./norm.ts";

Deno.test("emitRmsNorm() is PyTorch's RMSNorm, for activations whose squares overflow fp16", async () => {
  const part = await graphPart("rms_norm");
  const program = await emitProgram({
    inputs: part.inputTypes,
    tensors: { [FINAL_NORM]: part.tensors["norm.weight"]! },
    config: part.config,
    body: async (e, ctx, { x }) => [await emitRmsNorm(e, ctx, x!, FINAL_NORM, "out")],
  });
  // As the CPU backend runs it (one fused step), and op by op as written.
  for (const unfused of [false, true]) {
    const out = await runOnCpu(program, part.callLength, part.inputs, { unfused });
    assertClose(out.out, part.outputs.out!, 1e-5, `unfused ${unfused}`);
  }
});
