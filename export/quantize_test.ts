import assert from "node:assert/strict";
import fc from "fast-check";
import { quantizeMatrix, roundHalfEven } from "./quantize.ts";

Deno.test("roundHalfEven() rounds ties to the even neighbour", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven), [
    0,
    2,
    2,
    -0,
    -2,
    -2,
    2,
    -3,
  ]);
});

Deno.test("quantizeMatrix() keeps every value within half a step of its original", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(4, 8) as fc.Arbitrary<4 | 8>,
      fc.constantFrom(1, 2, 4),
      fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      (bits, groups, row, fp16) => {
        const round = fp16 ? Math.f16round : Math.fround;
        const weights = new Float32Array([...row, ...row.map((x) => -x / 3)]);
        const q = quantizeMatrix(weights, 2, 8, bits, 8 / groups, round);
        const qmax = 2 ** (bits - 1) - 1;
        for (let i = 0; i < weights.length; i++) {
          const scale = q.scales[Math.floor(i / q.groupSize)]!;
          assert.ok(q.values[i]! >= -qmax - 1 && q.values[i]! <= qmax);
          // fp16 rounding of the scale can push |w / scale| just past qmax, where clamping adds
          // error; a scale that underflows fp16 stores zeros, an error of at most qmax * 2^-25.
          const tolerance = scale / 2 +
            (fp16
              ? Math.abs(weights[i]!) * 2 ** -10 + qmax * 2 ** -25
              : 1e-6 * Math.abs(weights[i]!));
          assert.ok(
            Math.abs(q.values[i]! * scale - weights[i]!) <= tolerance + 1e-30,
            `${weights[i]} vs ${q.values[i]! * scale}`,
          );
        }
      },
    ),
  );
});

Deno.test("quantizeMatrix() uses one scale per group and maps the largest value to qmax", () => {
  const weights = new Float32Array([14, 1, -7, 3, 7, 2.5, -3.5, 0.5, 0, 0, 0, 0]);
  const q = quantizeMatrix(weights, 3, 4, 4, 2, Math.fround);
  assert.deepEqual([...q.scales], [2, 1, 1, 0.5, 0, 0]);
  // 1 / 2 = 0.5 and 2.5 / 1 = 2.5 are ties: they round to the even neighbour.
  assert.deepEqual([...q.values], [7, 0, -7, 3, 7, 2, -7, 1, 0, 0, 0, 0]);
});

Deno.test("quantizeMatrix() rejects groups that do not divide the row", () => {
  assert.throws(
    () => quantizeMatrix(new Float32Array(6), 2, 3, 8, 2, Math.fround),
    /group size 2 does not divide the row length 3/,
  );
  assert.throws(
    () => quantizeMatrix(new Float32Array(5), 2, 3, 8, 3, Math.fround),
    /do not form a \[2, 3\] matrix/,
  );
});

/** The definition, written plainly: what the fast loop in quantizeMatrix must reproduce. */
function quantizeByDefinition(
  w: Float32Array,
  bits: 4 | 8,
  group: number,
  round: (x: number) => number,
) {
  const qmax = 2 ** (bits - 1) - 1;
  const values: number[] = [];
  const scales: number[] = [];
  for (let start = 0; start < w.length; start += group) {
    const slice = Array.from(w.subarray(start, start + group));
    const scale = round(Math.max(...slice.map(Math.abs)) / qmax);
    scales.push(scale);
    for (const x of slice) {
      // `+ 0` turns -0 into 0, as an Int8Array stores it.
      values.push(
        (scale === 0 ? 0 : Math.min(qmax, Math.max(-qmax - 1, roundHalfEven(x / scale)))) + 0,
      );
    }
  }
  return { values, scales };
}

Deno.test("quantizeMatrix() equals the plain definition, ties and edge values included", () => {
  const value = fc.oneof(
    fc.float({ min: -8, max: 8, noNaN: true }),
    fc.integer({ min: -16, max: 16 }).map((n) => n / 2), // exact halves: ties at scale 1
    fc.constantFrom(0, -0, 7, -7, 7.5, -8, 1e-30),
  );
  fc.assert(
    fc.property(
      fc.array(value, { minLength: 64, maxLength: 64 }),
      fc.constantFrom(4, 8) as fc.Arbitrary<4 | 8>,
      fc.constantFrom(8, 32, 64),
      fc.boolean(),
      (row, bits, group, fp16) => {
        const round = fp16 ? Math.f16round : Math.fround;
        const w = new Float32Array(row);
        const q = quantizeMatrix(w, 1, 64, bits, group, round);
        const want = quantizeByDefinition(w, bits, group, round);
        assert.deepEqual([...q.values], want.values);
        assert.deepEqual([...q.scales], want.scales.map(Math.fround));
      },
    ),
    { numRuns: 500 },
  );
});
