/**
 * The plan's TypeScript types against the Rust parser they write for: every step, storage, weight
 * and plan field of `format.ts` must be a field `ffi/cpu/src/plan/format.rs` reads under the same
 * JSON name, and the other way round.
 */

import assert from "node:assert/strict";
import {
  type Plan,
  PLAN_DTYPE_BYTES,
  type PlanStep,
  type PlanStorage,
  type PlanTensor,
  type PlanWeight,
  stepOutputs,
} from "./format.ts";

const FORMAT_RS = new URL("../../../ffi/cpu/src/plan/format.rs", import.meta.url);

/** A serde item of format.rs: its JSON names, and per variant (enums) its fields' JSON names. */
interface RustItem {
  readonly names: Map<string, string[]>;
}

const RENAMES: Record<string, (name: string) => string> = {
  lowercase: (name) => name.toLowerCase(),
  snake_case: (name) =>
    name.replace(/[A-Z]/g, (c, at: number) => (at === 0 ? "" : "_") + c.toLowerCase()),
  camelCase: (name) => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
  none: (name) => name,
};

/**
 * Reads `pub enum NAME` or `struct NAME` of format.rs: variant names (enums) or field names
 * (structs) as serde spells them in JSON, honouring `rename_all` and `rename`.
 */
function rustItem(source: string, kind: "enum" | "struct", name: string): RustItem {
  const start = source.search(new RegExp(`^(pub )?${kind} ${name} \\{`, "m"));
  assert.ok(start >= 0, `format.rs has no ${kind} ${name}`);
  const attributes = source.slice(source.lastIndexOf("\n\n", start), start);
  const renameAll = RENAMES[/rename_all = "(\w+)"/.exec(attributes)?.[1] ?? "none"]!;
  const body = source.slice(source.indexOf("{", start) + 1, source.indexOf("\n}\n", start));
  const lines = body.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("//"));
  const names = new Map<string, string[]>();
  let fields: string[] | undefined;
  let rename: string | undefined;
  const field = (text: string) => {
    const fieldName = /^(?:pub )?(\w+):/.exec(text.trim())![1]!;
    return rename ?? (kind === "struct" ? renameAll(fieldName) : fieldName);
  };
  for (const line of lines) {
    const renamed = /^#\[serde\(rename = "(\w+)"\)\]$/.exec(line);
    if (renamed !== null) {
      rename = renamed[1];
      continue;
    }
    if (kind === "struct") {
      names.set(field(line), []);
    } else if (fields !== undefined && /^\},?$/.test(line)) {
      fields = undefined;
    } else if (fields !== undefined) {
      fields.push(field(line));
    } else {
      const variant = /^(\w+)(?: \{(.*?)(\}?),?)?,?$/.exec(line)!;
      fields = [];
      names.set(renameAll(variant[1]!), fields);
      if (variant[2] !== undefined && variant[3] === "}") {
        fields.push(...variant[2].split(",").filter((f) => f.trim()).map(field));
        fields = undefined;
      } else if (variant[2] === undefined) {
        fields = undefined;
      }
    }
    rename = undefined;
  }
  return { names };
}

const source = await Deno.readTextFile(FORMAT_RS);

/** One step of every op with every field, optional ones included (the compiler checks both). */
const EVERY_STEP: { readonly [Op in PlanStep["op"]]: Required<Extract<PlanStep, { op: Op }>> } = {
  linear: { op: "linear", x: 0, weight: { data: 1 }, bias: 2, out: 3 },
  fused_linear: { op: "fused_linear", x: 0, parts: [{ weight: { data: 1 } }], outs: [2] },
  attention: { op: "attention", q: 0, keys: [1], values: [2], mask: 3, scale: 1, out: 4 },
  rope: { op: "rope", x: 0, cos: 1, sin: 2, out: 3 },
  silu_mul: { op: "silu_mul", gate: 0, up: 1, out: 2 },
  gather: { op: "gather", table: { data: 0 }, indices: 1, out: 2 },
  dequantize: { op: "dequantize", weight: { data: 0 }, out: 1 },
  rms_norm: { op: "rms_norm", x: 0, gain: 1, eps: 1e-5, out: 2 },
  layer_norm: { op: "layer_norm", x: 0, gamma: 1, beta: 2, eps: 1e-5, out: 3 },
  binary: { op: "binary", kind: "add", a: 0, b: 1, out: 2 },
  unary: { op: "unary", kind: "silu", eps: 0, x: 0, out: 1 },
  softmax: { op: "softmax", x: 0, out: 1 },
  matmul: { op: "matmul", a: 0, b: 1, transposeA: false, transposeB: true, out: 2 },
  transpose: { op: "transpose", x: 0, perm: [1, 0], out: 1 },
  concat: { op: "concat", inputs: [0, 1], axis: 0, out: 2 },
  split: { op: "split", x: 0, axis: 0, outs: [1, 2] },
  cast: { op: "cast", x: 0, out: 1 },
  reduce_mean: { op: "reduce_mean", x: 0, axes: [0], out: 1 },
  copy: { op: "copy", x: 0, out: 1 },
};

const EVERY_STORAGE: {
  readonly [Kind in PlanStorage["kind"]]: Required<Extract<PlanStorage, { kind: Kind }>>;
} = {
  input: { kind: "input", index: 0 },
  output: { kind: "output", index: 0 },
  arena: { kind: "arena", offset: 0 },
  weight: { kind: "weight", offset: 64 },
  inline: { kind: "inline", values: [1] },
};

const fieldsOf = (value: object, tag: string) => Object.keys(value).filter((k) => k !== tag).sort();
const sorted = (names: Iterable<string>) => [...names].sort();

Deno.test("format.ts and format.rs have the same steps with the same fields", () => {
  const steps = rustItem(source, "enum", "Step").names;
  assert.deepEqual(sorted(steps.keys()), sorted(Object.keys(EVERY_STEP)));
  for (const [op, step] of Object.entries(EVERY_STEP)) {
    assert.deepEqual(fieldsOf(step, "op"), sorted(steps.get(op)!), `fields of "${op}"`);
  }
  const kinds = (name: string) => sorted(rustItem(source, "enum", name).names.keys());
  const binary: Record<Extract<PlanStep, { op: "binary" }>["kind"], true> = {
    add: true,
    sub: true,
    mul: true,
    div: true,
  };
  const unary: Record<Extract<PlanStep, { op: "unary" }>["kind"], true> = {
    silu: true,
    sigmoid: true,
    rsqrt: true,
  };
  assert.deepEqual(kinds("BinaryKind"), sorted(Object.keys(binary)));
  assert.deepEqual(kinds("UnaryKind"), sorted(Object.keys(unary)));
});

Deno.test("format.ts and format.rs have the same tensors, storages, weights and plan fields", () => {
  const storages = rustItem(source, "enum", "Storage").names;
  assert.deepEqual(sorted(storages.keys()), sorted(Object.keys(EVERY_STORAGE)));
  for (const [kind, storage] of Object.entries(EVERY_STORAGE)) {
    assert.deepEqual(fieldsOf(storage, "kind"), sorted(storages.get(kind)!), `storage "${kind}"`);
  }
  assert.deepEqual(
    sorted(rustItem(source, "enum", "DType").names.keys()),
    sorted(Object.keys(PLAN_DTYPE_BYTES)),
  );
  const structFields = (name: string) => sorted(rustItem(source, "struct", name).names.keys());
  const tensor: Required<PlanTensor> = { dtype: "f16", shape: [], storage: EVERY_STORAGE.arena };
  const weight: Required<PlanWeight> = { data: 0, scale: 1, group: 32, offset: 2, lut: 3 };
  const part: Required<Extract<PlanStep, { op: "fused_linear" }>["parts"][number]> = {
    weight,
    bias: 0,
  };
  const plan: Required<Plan> = {
    version: 1,
    tensors: [],
    inputs: [],
    inputNames: [],
    outputs: [],
    outputNames: [],
    steps: [],
    arenaBytes: 0,
  };
  assert.deepEqual(structFields("Tensor"), fieldsOf(tensor, ""));
  assert.deepEqual(structFields("Weight"), fieldsOf(weight, ""));
  assert.deepEqual(structFields("LinearPart"), fieldsOf(part, ""));
  assert.deepEqual(structFields("Document"), fieldsOf(plan, ""));
});

Deno.test("stepOutputs() lists what a step writes", () => {
  assert.deepEqual(stepOutputs(EVERY_STEP.split), [1, 2]);
  assert.deepEqual(stepOutputs(EVERY_STEP.fused_linear), [2]);
  assert.deepEqual(stepOutputs(EVERY_STEP.attention), [4]);
  assert.deepEqual(stepOutputs(EVERY_STEP.dequantize), [1]);
});
