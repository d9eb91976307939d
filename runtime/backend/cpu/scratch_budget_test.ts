import assert from "node:assert/strict";
import { BlobStorageWriter } from "../../../coreml/blob_storage.ts";
import { ProgramBuilder } from "../../../coreml/builder.ts";
import { tensor } from "../../../coreml/tensor.ts";
import { PlanError } from "./builder.ts";
import { planFunction } from "./plan.ts";

/** `x` beside `linear(a + b, w)` for `a [1, n]`, `b [n, 1]` and `w [1, n]`: an `[n, n]` scratch. */
async function broadcastProgram(n: number) {
  using weights = BlobStorageWriter.create(await Deno.makeTempFile());
  const program = new ProgramBuilder({ weights });
  const f = program.function("main");
  const x = f.input("x", { dtype: "fp32", shape: [1, 4] });
  const a = f.const("a", tensor("fp32", [1, n], new Array(n).fill(1)));
  const b = f.const("b", tensor("fp32", [n, 1], new Array(n).fill(2)));
  const w = f.const("w", tensor("fp32", [1, n], new Array(n).fill(3)));
  const sum = f.op("add", { x: a, y: b }, { dtype: "fp32", shape: [n, n] }, { name: "sum" });
  f.output(
    x,
    f.op("linear", { x: sum, weight: w }, { dtype: "fp32", shape: [n, 1] }, { name: "y" }),
  );
  return program.build().program.functions.get("main")!;
}

Deno.test("planFunction() refuses scratch memory its constants and I/O do not back", async () => {
  // 600 KB of constants that would need 10 GB of scratch.
  const fn = await broadcastProgram(50_000);
  assert.throws(
    () => planFunction(fn, 4, 4, ["x", "y"]),
    (error: Error) =>
      error instanceof PlanError &&
      /need 10000000000 bytes of scratch memory, more than the 268435456 allowed/.test(
        error.message,
      ),
  );
});

Deno.test("planFunction() plans the same broadcast when it is small", async () => {
  const plan = planFunction(await broadcastProgram(64), 4, 4, ["x", "y"]);
  assert.ok(plan.arenaBytes >= 64 * 64 * 4);
});
