import assert from "node:assert/strict";
import { palettizeMatrix } from "./palettize.ts";

function normals(count: number, seed: number): Float32Array {
  let state = seed;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  return Float32Array.from(
    { length: count },
    () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()),
  );
}

Deno.test("palettizeMatrix() gives each value its nearest entry of its group's palette", () => {
  const [rows, columns, groupRows] = [12, 40, 3];
  const weights = normals(rows * columns, 7);
  for (const bits of [4, 6] as const) {
    const p = palettizeMatrix(weights, rows, columns, bits, groupRows, Math.f16round);
    const entries = 2 ** bits;
    assert.equal(p.palettes.length, (rows / groupRows) * entries);
    for (let i = 0; i < weights.length; i++) {
      const group = Math.floor(i / (groupRows * columns));
      const palette = p.palettes.subarray(group * entries, (group + 1) * entries);
      const distance = (e: number) => Math.abs(weights[i]! - palette[e]!);
      const best = Math.min(...Array.from(palette, (_, e) => distance(e)));
      assert.equal(distance(p.indices[i]!), best, `value ${i}`);
    }
    for (const entry of p.palettes) assert.equal(entry, Math.f16round(entry));
  }
});

Deno.test("palettizeMatrix() fits Gaussian values far better than a uniform grid", () => {
  const weights = normals(64 * 256, 3);
  const p = palettizeMatrix(weights, 64, 256, 4, 64, Math.fround);
  const error = weights.reduce((s, w, i) => s + (w - p.palettes[p.indices[i]!]!) ** 2, 0);
  const max = weights.reduce((m, w) => Math.max(m, Math.abs(w)), 0);
  const step = (2 * max) / 15;
  const grid = weights.reduce(
    (s, w) => s + (w - (Math.round((w + max) / step) * step - max)) ** 2,
    0,
  );
  // Lloyd-Max's 16 levels leave 0.0095 of a unit Gaussian's variance; a grid to the absmax more.
  assert.ok(error / weights.length < 0.011, `${error / weights.length}`);
  assert.ok(error < 0.6 * grid, `${error} against ${grid}`);
});

Deno.test("palettizeMatrix() is deterministic and handles constant groups", () => {
  const weights = normals(8 * 32, 11);
  const a = palettizeMatrix(weights, 8, 32, 4, 2, Math.f16round);
  const b = palettizeMatrix(weights.slice(), 8, 32, 4, 2, Math.f16round);
  assert.deepEqual(a, b);
  const constant = palettizeMatrix(new Float32Array(64).fill(0.25), 2, 32, 4, 1, Math.f16round);
  assert.ok(constant.palettes.every((v) => v === 0.25));
});

Deno.test("palettizeMatrix() refuses groups that do not divide the rows and non-finite values", () => {
  assert.throws(
    () => palettizeMatrix(new Float32Array(6 * 4), 6, 4, 4, 4, Math.fround),
    /4 rows per palette do not divide the 6 rows/,
  );
  const nan = new Float32Array(32).fill(1);
  nan[5] = NaN;
  assert.throws(() => palettizeMatrix(nan, 1, 32, 4, 1, Math.fround), /non-finite value \(NaN\)/);
});
