import assert from "node:assert/strict";
import { exportTinyBundle } from "../testing/tiny_bundle.ts";
import { exportModel } from "../export/export_model.ts";
import { TINY_PARAMS, writeTinyLlama } from "../testing/tiny_llama.ts";
import { CpuBackend } from "./backend/cpu.ts";
import { LoadedModel } from "./model.ts";
import { ModelSession } from "./session.ts";

const cpu = await CpuBackend.create();
const PROMPT = [1, 17, 42, 5, 88, 23, 61];
const vocab = TINY_PARAMS.vocab_size;

async function lastRows(bundle: string): Promise<{ all: Float16Array; last: Float16Array }> {
  using model = await LoadedModel.load(bundle, cpu);
  const all = await new ModelSession(model).call(PROMPT, "all");
  const last = await new ModelSession(model).call(PROMPT, "last");
  return { all: all.slice() as Float16Array, last: last.slice() as Float16Array };
}

Deno.test("a call that wants the last row runs the head on that row alone, bit for bit", async () => {
  const { all, last } = await lastRows(await exportTinyBundle({ inputLen: 8 }));
  assert.equal(all.length, PROMPT.length * vocab);
  assert.equal(last.length, vocab);
  assert.deepEqual(last, all.subarray((PROMPT.length - 1) * vocab));
});

Deno.test("without a separate head every row is computed, and step() still takes the last", async () => {
  const bundle = await exportTinyBundle({ inputLen: 8, graphBreaks: false });
  const { all, last } = await lastRows(bundle);
  assert.deepEqual(last, all);
  using model = await LoadedModel.load(bundle, cpu);
  const row = await new ModelSession(model).step(PROMPT);
  assert.deepEqual(row, all.subarray((PROMPT.length - 1) * vocab));
});

Deno.test("a model of width 2 exports with int4 linear layers and runs on the CPU", async () => {
  // Its 2x2 projections are too small for weight.bin: they stay float instead of inline int4.
  const params = { dim: 2, n_layers: 1, n_heads: 1, n_kv_heads: 1, vocab_size: 32, multiple_of: 2 };
  const tiny = await writeTinyLlama(params);
  const bundle = `${await Deno.makeTempDir()}/narrow.llamane`;
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output: bundle,
    linearQuantize: "c4w",
    inputLen: 4,
    maxContextLen: 16,
  });
  using model = await LoadedModel.load(bundle, cpu);
  const logits = await new ModelSession(model).call([1, 2, 3], "all");
  assert.equal(logits.length, 3 * params.vocab_size);
  assert.ok(logits.every(Number.isFinite));
});

/** A single-piece bundle: a forward call is one native run. */
const onePiece = await exportTinyBundle({ inputLen: 8, graphBreaks: false });

/** The logits of PROMPT from a fresh model, as a copy. */
async function reference(): Promise<Float16Array> {
  using model = await LoadedModel.load(onePiece, cpu);
  return (await new ModelSession(model).call(PROMPT)).slice() as Float16Array;
}

Deno.test("disposing a model while a call runs lets that run finish before freeing it, then refuses calls", async () => {
  const want = await reference();
  const model = await LoadedModel.load(onePiece, cpu);
  const session = new ModelSession(model);
  const running = session.call(PROMPT);
  // One turn of the event loop's microtasks: the native run has been started on its thread.
  await Promise.resolve();
  model[Symbol.dispose]();
  assert.deepEqual(await running, want);
  await assert.rejects(
    session.call(PROMPT),
    /BadResource: Cannot run the model: it has been disposed/,
  );
});

Deno.test("an output array transferred away by the caller is replaced, and keeps what it held", async () => {
  const want = await reference();
  using model = await LoadedModel.load(onePiece, cpu);
  const first = await new ModelSession(model).call(PROMPT);
  // A shorter transfer reallocates: the old memory is released, and nothing may write there.
  const kept = new Float16Array((first.buffer as ArrayBuffer).transfer(first.byteLength / 2));
  const second = await new ModelSession(model).call(PROMPT);
  assert.deepEqual(second, want);
  assert.deepEqual(kept, want.subarray(0, want.length / 2));
});

Deno.test("sessions running at once on one model each get their own results", async () => {
  const other = [1, 50, 3, 4];
  using model = await LoadedModel.load(onePiece, cpu);
  const alone = async (prompt: number[]) => {
    const session = new ModelSession(model);
    const rows = [];
    for (const token of prompt) rows.push((await session.step([token])).slice());
    return rows;
  };
  const [a, b] = [await alone(PROMPT.slice(0, 4)), await alone(other)];
  const together = await Promise.all([alone(PROMPT.slice(0, 4)), alone(other)]);
  assert.deepEqual(together, [a, b]);
  assert.notDeepEqual(a, b);
});
