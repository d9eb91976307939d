import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import type { ExportOptions } from "../export/options.ts";
import { CpuBackend } from "./backend/cpu.ts";
import type { Backend } from "./backend/backend.ts";
import { generateTokens } from "./generate.ts";
import { emptyGenerationStats } from "./generation_stats.ts";
import { LookaheadError, lookaheadLayout, type LookaheadOptions, NGramPool } from "./lookahead.ts";
import { LoadedModel } from "./model.ts";
import { ModelSession } from "./session.ts";
import { loadTokenizer } from "../tokenizer/load.ts";

Deno.test("lookaheadLayout() builds the upstream mask and positions", () => {
  // N = 3, W = 2, G = 1: lookahead rows (0,0) (0,1) / (1,0) (1,1), then one run of 2 at slot 4.
  const layout = lookaheadLayout({ ngramSize: 3, windowSize: 2, verifications: 1 }, 8, 7);
  assert.equal(layout.verificationOffset, 4);
  assert.equal(layout.slots, 6);
  assert.deepEqual(layout.positionOffsets, [0, 1, 1, 2, 1, 2, 0]);
  const rows = Array.from(
    { length: 7 },
    (_, r) =>
      [...layout.visibility.subarray(r * 7, r * 7 + 7)].map((v) => (v ? "." : "x")).join(""),
  );
  assert.deepEqual(rows, [
    ".xxxxxx", // slot 0: itself
    "..xxxxx", // row 0 col 1: row 0 up to col 1
    ".x.xxxx", // row 1 col 0: row 0 col 0, and column 0 of row 1
    "..x.xxx", // row 1 col 1: row 0 up to col 1, and column 1 of row 1
    ".xxx.xx", // verification: slot 0 and itself
    ".xxx..x", // verification: slot 0 and its run so far
    "xxxxxx.", // padding: itself only
  ]);
});

Deno.test("lookaheadLayout() rejects settings that do not fit the call", () => {
  assert.throws(
    () => lookaheadLayout({ ngramSize: 5, windowSize: 5, verifications: 4 }, 32),
    /\(ngram_size - 1\) \* \(window_size \+ n_verifications\) = 36 exceeds the bundle's input_len 32/,
  );
  assert.throws(() => lookaheadLayout({ ngramSize: 1 }, 32), LookaheadError);
});

Deno.test("NGramPool keeps at most G distinct suffixes per key, oldest out first", () => {
  const pool = new NGramPool(2);
  pool.add(7, [1, 2]);
  pool.add(7, [1, 2]);
  pool.add(7, [3, 4]);
  assert.deepEqual(pool.get(7), [[1, 2], [3, 4]]);
  pool.add(7, [5, 6]);
  assert.deepEqual(pool.get(7), [[3, 4], [5, 6]]);
  assert.deepEqual(pool.get(8), []);
  const none = new NGramPool(0);
  none.add(1, [2]);
  assert.deepEqual(none.get(1), []);
});

const cpu = await CpuBackend.create();
const padded: Backend = {
  name: "cpu (fixed length)",
  flexibleCallLength: false,
  load: (dir, piece, fn) => cpu.load(dir, piece, fn),
  [Symbol.dispose]() {},
};

async function load(
  checkpoint: string,
  params: string,
  backend: Backend,
  options: Partial<ExportOptions> = {},
): Promise<LoadedModel> {
  const output = `${await Deno.makeTempDir()}/la.llamane`;
  // A 64-slot cache: 128 new tokens wrap around it.
  await exportModel({
    checkpoint,
    params,
    output,
    inputLen: 32,
    maxContextLen: 96,
    dtype: "fp32",
    linearQuantize: "none",
    embeddingQuantize: "none",
    ...options,
  });
  return await LoadedModel.load(output, backend);
}

async function decode(
  model: LoadedModel,
  prompt: readonly number[],
  tokens: number,
  lookahead?: LookaheadOptions,
  stopTokens: readonly number[] = [],
) {
  const stats = emptyGenerationStats();
  const out: number[] = [];
  const options = {
    temperature: 0,
    maxNewTokens: tokens,
    stopTokens,
    ...(lookahead === undefined ? {} : { lookahead }),
  };
  for await (const token of generateTokens(new ModelSession(model), prompt, options, stats)) {
    out.push(token);
  }
  return { tokens: out, stats };
}

const KJV = ["models/kjv-tiny/consolidated.00.pth", "models/kjv-tiny/params.json"] as const;
const tokenizer = await loadTokenizer("models/kjv-tiny/tokenizer.model");
const heldout = tokenizer.encode(await Deno.readTextFile("testdata/kjv/heldout.txt"), {
  bos: true,
});
// Prompt lengths around multiples of the call length 32, cut from the held-out books.
const LENGTHS = [1, 2, 5, 9, 17, 24, 30, 31, 32, 33, 40, 47, 55, 62, 63, 64, 65, 70, 90, 95];
const prompts = LENGTHS.map((length, i) => heldout.slice(i * 700, i * 700 + length));

Deno.test("lookahead reproduces greedy decoding on 20 KJV prompts, past the cache length", async () => {
  using model = await load(...KJV, cpu);
  let calls = 0;
  let tokens = 0;
  for (const prompt of prompts) {
    const greedy = await decode(model, prompt, 128);
    const fast = await decode(model, prompt, 128, {});
    assert.deepEqual(fast.tokens, greedy.tokens, `prompt of ${prompt.length} tokens`);
    calls += fast.stats.lookahead!.decodeCalls;
    tokens += fast.tokens.length - 1;
  }
  // Not a benchmark: a sanity floor showing the verification branches are used at all.
  assert.ok(tokens / calls > 1.2, `${tokens} tokens in ${calls} calls`);
});

Deno.test("lookahead reproduces greedy decoding with attention sinks, past their reach", async () => {
  // Said to be trained on 160 positions, the KJV model keeps 4 sinks in its 64-slot cache; 200 new
  // tokens take every prompt past the distance where the sinks drop out.
  const params = `${await Deno.makeTempDir()}/params.json`;
  const kjvParams = JSON.parse(await Deno.readTextFile(KJV[1]));
  await Deno.writeTextFile(params, JSON.stringify({ ...kjvParams, max_seq_len: 160 }));
  using sinks = await load(KJV[0], params, cpu);
  using plain = await load(...KJV, cpu);
  let differ = 0;
  for (const prompt of prompts.slice(8, 12)) {
    const greedy = await decode(sinks, prompt, 200);
    const fast = await decode(sinks, prompt, 200, {});
    assert.deepEqual(fast.tokens, greedy.tokens, `prompt of ${prompt.length} tokens`);
    const withoutSinks = await decode(plain, prompt, 200);
    if (withoutSinks.tokens.join() !== greedy.tokens.join()) differ++;
  }
  assert.ok(differ > 0, "the sinks change what greedy decoding writes");
});

Deno.test("lookahead reproduces greedy decoding for other N, W, G, with padded calls too", async () => {
  const settings: LookaheadOptions[] = [
    { ngramSize: 2, windowSize: 4, verifications: 4 },
    { ngramSize: 5, windowSize: 4, verifications: 0 },
    { ngramSize: 3, windowSize: 8, verifications: 8 }, // (3-1) * (8+8) = 32: the largest fit
    { ngramSize: 9, windowSize: 2, verifications: 2 }, // (9-1) * (2+2) = 32
    { ngramSize: 5, windowSize: 1, verifications: 7 },
  ];
  using flexible = await load(...KJV, cpu);
  using fixed = await load(...KJV, padded);
  for (const model of [flexible, fixed]) {
    for (const lookahead of settings) {
      for (const prompt of prompts.filter((_, i) => i % 5 === 2)) {
        const greedy = await decode(model, prompt, 64);
        assert.deepEqual(
          (await decode(model, prompt, 64, lookahead)).tokens,
          greedy.tokens,
          `${JSON.stringify(lookahead)}, prompt of ${prompt.length}`,
        );
      }
    }
  }
});

Deno.test("lookahead stops exactly where greedy decoding does, inside accepted branches too", async () => {
  using model = await load(...KJV, cpu);
  const prompt = prompts[4]!;
  const greedy = (await decode(model, prompt, 80)).tokens;
  for (const stop of new Set(greedy.slice(1, 40))) {
    const expected = (await decode(model, prompt, 80, undefined, [stop])).tokens;
    const fast = await decode(model, prompt, 80, {}, [stop]);
    assert.deepEqual(fast.tokens, expected, `stop token ${stop}`);
    assert.equal(fast.stats.finishReason, "stop");
  }
});

Deno.test("lookahead reproduces greedy decoding on a random-weight model", async () => {
  using model = await load(
    "testdata/oracle/gqa/consolidated.00.pth",
    "testdata/oracle/gqa/params.json",
    cpu,
  );
  for (const [i, length] of [1, 7, 32, 33, 50].entries()) {
    const prompt = Array.from({ length }, (_, k) => (k * 37 + i * 11) % 100);
    const greedy = await decode(model, prompt, 96);
    assert.deepEqual(
      (await decode(model, prompt, 96, {})).tokens,
      greedy.tokens,
      `prompt of ${length}`,
    );
  }
});

Deno.test("lookahead refuses sampling and multifunction bundles", async () => {
  using model = await load(...KJV, cpu);
  const prompt = prompts[3]!;
  await assert.rejects(async () => {
    for await (
      const _ of generateTokens(new ModelSession(model), prompt, {
        temperature: 0.7,
        lookahead: {},
        stopTokens: [],
      })
    ) {
      // unreachable
    }
  }, /reproduces greedy decoding only: use temperature 0/);
  using multi = await load(...KJV, cpu, { multifunction: true });
  await assert.rejects(() => decode(multi, prompt, 8, {}), /export a single-method bundle/);
});
