/**
 * Property tests of the model.mlmodel reader: random valid programs read back as they were
 * written, and random damage to one (truncation, changed bytes, inserted bytes) gives a
 * CoremlFormatError, never another error, a hang or an allocation the file does not back.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { ProgramBuilder, type Var } from "./builder.ts";
import { CoremlFormatError } from "./errors.ts";
import type { Model } from "./model.ts";
import { decodeModel } from "./proto_reader.ts";
import { encodeModel } from "./proto_writer.ts";
import { tensor } from "./tensor.ts";

/** The values an arbitrary generates. */
type InferArbitrary<A> = A extends fc.Arbitrary<infer T> ? T : never;

/** One step of a random program: a unary op, or a binary op with a small inline constant. */
type Step = { unary: "sigmoid" | "silu" | "rsqrt" } | {
  binary: "add" | "sub" | "mul";
  values: number[];
};

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ unary: fc.constantFrom("sigmoid", "silu", "rsqrt") }),
  fc.record({
    binary: fc.constantFrom("add", "sub", "mul"),
    values: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -4, max: 4 }), {
      minLength: 1,
      maxLength: 1,
    }),
  }),
);

const programArbitrary = fc.record({
  functions: fc.uniqueArray(
    fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9_]{0,11}$/),
      dtype: fc.constantFrom("fp16" as const, "fp32" as const),
      shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
      steps: fc.array(stepArbitrary, { minLength: 1, maxLength: 6 }),
    }),
    { minLength: 1, maxLength: 3, selector: (f) => f.name },
  ),
  author: fc.string({ maxLength: 20 }),
});

function build(spec: InferArbitrary<typeof programArbitrary>): Model {
  const program = new ProgramBuilder({});
  for (const f of spec.functions) {
    const fn = program.function(f.name);
    let x: Var = fn.input("x", { dtype: f.dtype, shape: f.shape });
    f.steps.forEach((step, i) => {
      const type = { dtype: f.dtype, shape: f.shape };
      x = "unary" in step
        ? fn.op(step.unary, { x }, type, { name: `step_${i}` })
        : fn.op(step.binary, { x, y: tensor(f.dtype, [1], step.values) }, type, {
          name: `step_${i}`,
        });
    });
    fn.output(x);
  }
  return program.build({
    metadata: { author: spec.author },
    ...(spec.functions[0]!.name === "main" && spec.functions.length === 1
      ? {}
      : { defaultFunctionName: spec.functions[0]!.name }),
  });
}

Deno.test("decodeModel() reads back any program encodeModel() writes", () => {
  fc.assert(
    fc.property(programArbitrary, (spec) => {
      const model = build(spec);
      assert.deepStrictEqual(decodeModel(encodeModel(model), "m.mlmodel"), model);
    }),
    { numRuns: 300 },
  );
});

/** Damage to a file: cut at a length, bytes changed, bytes inserted. */
const damageArbitrary = fc.record({
  cut: fc.option(fc.nat(), { nil: undefined }),
  changes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
  insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 10 })), {
    nil: undefined,
  }),
});

function damaged(bytes: Uint8Array, damage: InferArbitrary<typeof damageArbitrary>): Uint8Array {
  let out = bytes.slice();
  for (const [at, value] of damage.changes) out[at % out.length] = value;
  if (damage.insert !== undefined) {
    const [at, inserted] = damage.insert;
    const split = at % (out.length + 1);
    out = Uint8Array.from([...out.subarray(0, split), ...inserted, ...out.subarray(split)]);
  }
  return damage.cut === undefined ? out : out.subarray(0, damage.cut % (out.length + 1));
}

Deno.test("decodeModel() throws only CoremlFormatError for damaged programs", () => {
  fc.assert(
    fc.property(programArbitrary, damageArbitrary, (spec, damage) => {
      const bytes = damaged(encodeModel(build(spec)), damage);
      try {
        decodeModel(bytes, "m.mlmodel");
      } catch (error) {
        assert.ok(error instanceof CoremlFormatError, `${(error as Error).name}: ${error}`);
        assert.ok(error.offset === undefined || error.offset <= bytes.length);
      }
    }),
    { numRuns: 2000 },
  );
});
