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

/** `[values, scales]` of absmax quantization written plainly: the search's baseline. */
function absmaxByDefinition(
  w: Float32Array,
  bits: 4 | 8,
  group: number,
  round: (x: number) => number,
): { values: number[]; scales: number[] } {
  const qmax = 2 ** (bits - 1) - 1;
  const values: number[] = [];
  const scales: number[] = [];
  for (let start = 0; start < w.length; start += group) {
    const slice = Array.from(w.subarray(start, start + group));
    const scale = round(Math.max(...slice.map(Math.abs)) / qmax);
    scales.push(scale);
    values.push(...storedValues(slice, scale, bits));
  }
  return { values, scales };
}

/** `clamp(roundHalfEven(w / scale))` of each value; zeros for a zero scale. */
function storedValues(slice: number[], scale: number, bits: 4 | 8): number[] {
  const qmax = 2 ** (bits - 1) - 1;
  // `+ 0` turns -0 into 0, as an Int8Array stores it.
  return slice.map((x) =>
    (scale === 0 ? 0 : Math.min(qmax, Math.max(-qmax - 1, roundHalfEven(x / scale)))) + 0
  );
}

/**
 * Squared reconstruction error of each group, in float64; `weighted`, each value's error times the
 * value's square.
 */
function groupErrors(
  w: Float32Array,
  values: ArrayLike<number>,
  scales: ArrayLike<number>,
  weighted = false,
) {
  const group = w.length / scales.length;
  return Array.from(scales, (scale, g) => {
    let error = 0;
    for (let i = g * group; i < (g + 1) * group; i++) {
      error += (weighted ? w[i]! ** 2 : 1) * (w[i]! - values[i]! * scale) ** 2;
    }
    return error;
  });
}

const value = fc.oneof(
  fc.float({ min: -8, max: 8, noNaN: true }),
  fc.integer({ min: -16, max: 16 }).map((n) => n / 2), // exact halves: ties at scale 1
  fc.constantFrom(0, -0, 7, -7, 7.5, -8, 1e-30),
  fc.float({ min: -100, max: 100, noNaN: true }), // outliers
);

Deno.test("quantizeMatrix() never stores a group with more error than absmax does", () => {
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
        const absmax = absmaxByDefinition(w, bits, group, round);
        // Whole rows of int4 minimise the error weighted by each value's square.
        const weighted = bits === 4 && group === 64;
        const searched = groupErrors(w, q.values, q.scales, weighted);
        groupErrors(w, absmax.values, absmax.scales, weighted).forEach((baseline, g) => {
          assert.ok(searched[g]! <= baseline, `group ${g}: ${searched[g]} > ${baseline}`);
        });
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("quantizeMatrix() stores round(w / scale) of a scale its dtype holds", () => {
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
        q.scales.forEach((scale, g) => {
          assert.equal(round(scale), scale);
          const slice = Array.from(w.subarray(g * group, (g + 1) * group));
          assert.deepEqual(
            [...q.values.subarray(g * group, (g + 1) * group)],
            storedValues(slice, scale, bits),
          );
        });
      },
    ),
    { numRuns: 500 },
  );
});

/** A row of `n` values spread evenly over +-0.1 with one outlier of -1. */
function rowWithOutlier(n: number): Float32Array {
  const row = Float32Array.from({ length: n }, (_, i) => 0.1 * Math.sin(i * 1.7));
  row[n >> 1] = -1;
  return row;
}

Deno.test("quantizeMatrix() clips an outlier that absmax would spend the row's levels on", () => {
  const w = new Float32Array([...rowWithOutlier(2048), ...rowWithOutlier(2048)]);
  const q = quantizeMatrix(w, 1, 4096, 4, 2048, Math.f16round);
  const absmax = absmaxByDefinition(w, 4, 2048, Math.f16round);
  const [searched] = groupErrors(w, q.values, q.scales);
  const [baseline] = groupErrors(w, absmax.values, absmax.scales);
  // Absmax leaves the +-0.1 values one level either side of zero; clipping the outlier gives them
  // all 16 levels, far more than the outlier's own error costs.
  assert.ok(searched! < baseline! / 4, `${searched} vs ${baseline}`);
});

Deno.test("quantizeMatrix() is deterministic and quantizes each row alone", () => {
  const rows = [rowWithOutlier(256), rowWithOutlier(256).map((x) => -x * 3)];
  const both = new Float32Array([...rows[0]!, ...rows[1]!]);
  const once = quantizeMatrix(both, 2, 256, 4, 256, Math.f16round);
  const again = quantizeMatrix(both, 2, 256, 4, 256, Math.f16round);
  assert.deepEqual(again, once);
  rows.forEach((row, r) => {
    const alone = quantizeMatrix(row, 1, 256, 4, 256, Math.f16round);
    assert.deepEqual([...alone.values], [...once.values.subarray(r * 256, (r + 1) * 256)]);
    assert.equal(alone.scales[0], once.scales[r]);
  });
});

Deno.test("quantizeMatrix() stores a group of zeros, or of values too small for a scale, as zeros", () => {
  const w = new Float32Array([0, -0, 0, 0, 1e-30, -1e-30, 0, 0]);
  const q = quantizeMatrix(w, 2, 4, 4, 4, Math.f16round);
  assert.deepEqual([...q.scales], [0, 0]);
  assert.deepEqual([...q.values], [0, 0, 0, 0, 0, 0, 0, 0]);
});

Deno.test("quantizeMatrix() names the row of a value it cannot quantize", () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const w = new Float32Array(12).fill(0.5);
    w[9] = bad;
    assert.throws(
      () => quantizeMatrix(w, 3, 4, 4, 4, Math.f16round),
      /row 2 holds a value that is NaN or infinite/,
    );
  }
  // int4 with fp16 scales reaches 7 * 65504: a larger value needs a scale fp16 does not hold.
  assert.throws(
    () => quantizeMatrix(new Float32Array([1, 2, 3, 1e6]), 2, 2, 4, 2, Math.f16round),
    /row 1 holds values too large for a scale of its dtype/,
  );
});

Deno.test("asymmetric quantizeMatrix() stores no group worse than the symmetric search does", () => {
  fc.assert(
    fc.property(
      fc.array(value, { minLength: 64, maxLength: 64 }),
      fc.constantFrom(4, 8) as fc.Arbitrary<4 | 8>,
      fc.constantFrom(8, 32, 64),
      fc.boolean(),
      (row, bits, group, fp16) => {
        const round = fp16 ? Math.f16round : Math.fround;
        const w = new Float32Array(row);
        const symmetric = quantizeMatrix(w, 1, 64, bits, group, round);
        const q = quantizeMatrix(w, 1, 64, bits, group, round, true);
        const offsets = q.offsets!;
        const shifted = Array.from(q.values, (v, i) => v - offsets[Math.floor(i / group)]!);
        const weighted = bits === 4 && group === 64;
        const errors = groupErrors(w, shifted, q.scales, weighted);
        groupErrors(w, symmetric.values, symmetric.scales, weighted).forEach((baseline, g) => {
          assert.ok(errors[g]! <= baseline, `group ${g}: ${errors[g]} > ${baseline}`);
          const offset = offsets[g]!;
          assert.ok(offset >= -(2 ** (bits - 1)) && offset < 2 ** (bits - 1));
          const scale = q.scales[g]!;
          const slice = Array.from(w.subarray(g * group, (g + 1) * group));
          const qmax = 2 ** (bits - 1) - 1;
          const want = slice.map((x) =>
            (scale === 0
              ? 0
              : Math.min(qmax, Math.max(-qmax - 1, roundHalfEven(x / scale + offset)))) + 0
          );
          assert.deepEqual([...q.values.subarray(g * group, (g + 1) * group)], want);
        });
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("asymmetric quantizeMatrix() gives a group on one side of zero an offset", () => {
  const w = Float32Array.from({ length: 32 }, (_, i) => 0.5 + 0.5 * Math.abs(Math.sin(i)));
  const symmetric = quantizeMatrix(w, 1, 32, 4, 32, Math.f16round);
  const q = quantizeMatrix(w, 1, 32, 4, 32, Math.f16round, true);
  assert.notEqual(q.offsets![0], 0);
  const shifted = Array.from(q.values, (v) => v - q.offsets![0]!);
  const [error] = groupErrors(w, shifted, q.scales);
  const [baseline] = groupErrors(w, symmetric.values, symmetric.scales);
  // Symmetric int4 spends half its levels on negative values this group never takes.
  assert.ok(error! < baseline! / 2, `${error} vs ${baseline}`);
});

/** `rows * n` Laplace-distributed values (scale 0.02): heavy tails, as real weights have. */
function laplaceWeights(rows: number, n: number): Float32Array {
  let state = 1;
  return Float32Array.from({ length: rows * n }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const u = (state + 0.5) / 2 ** 32 - 0.5;
    return -0.02 * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  });
}

for (const columns of [576, 2048]) {
  Deno.test(`quantizeMatrix() weights whole rows of ${columns} int4 towards their large values`, () => {
    const rows = 64;
    const w = laplaceWeights(rows, columns);
    const q = quantizeMatrix(w, rows, columns, 4, columns, Math.f16round);
    const absmax = absmaxByDefinition(w, 4, columns, Math.f16round);
    const errors = groupErrors(w, q.values, q.scales, true);
    const baselines = groupErrors(w, absmax.values, absmax.scales, true);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b);
    // Absmax leaves the eighth negative level unused and the grid 8/7 coarser.
    assert.ok(sum(errors) < 0.85 * sum(baselines), `${sum(errors)} vs ${sum(baselines)}`);
  });
}
