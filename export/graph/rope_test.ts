import { emitProgram, runOnCpu } from "../../testing/small_program.ts";
import { assertClose, graphPart } from "../../testing/graph_parts.ts";
import { emitRope, emitRopeTables } from "./rope.ts";

Deno.test("emitRope() rotates halves as PyTorch rotates Meta's adjacent pairs", async () => {
  const part = await graphPart("rope");
  const program = await emitProgram({
    inputs: part.inputTypes,
    config: part.config,
    body: (e, _, { x, freqs_cos, freqs_sin }) => {
      const rotated = emitRope(e, x!, emitRopeTables(e, freqs_cos!, freqs_sin!), "rotated");
      return [e.op("reshape", { x: rotated, shape: e.ints(x!.type.shape) }, "out")];
    },
  });
  for (const unfused of [false, true]) {
    const out = await runOnCpu(program, part.callLength, part.inputs, { unfused });
    assertClose(out.out, part.outputs.out!, 1e-6, `unfused ${unfused}`);
  }
});
