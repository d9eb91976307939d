import { emitProgram, runOnCpu } from "../../testing/small_program.ts";
import { assertClose, graphPart } from "../../testing/graph_parts.ts";
import { emitEmbedding } from "./embedding.ts";

Deno.test("emitEmbedding() gathers the table's rows as PyTorch indexes them", async () => {
  const part = await graphPart("embedding");
  const program = await emitProgram({
    inputs: part.inputTypes,
    tensors: part.tensors,
    config: part.config,
    body: async (e, ctx, { tokens }) => [await emitEmbedding(e, ctx, tokens!, "out")],
  });
  const out = await runOnCpu(program, part.callLength, part.inputs);
  assertClose(out.out, part.outputs.out!, 0, "rows");
});
