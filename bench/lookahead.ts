/**
 * Benchmark: lookahead decoding against plain greedy decoding of the same single-method
 * KJV bundle on the CPU backend, over 20 prompts from the held-out books (BOS and the first 12
 * tokens of 20 evenly spaced verses), 128 new tokens each. Figures: tokens per decode call (the
 * first token comes from the prefill, as in `llamane run`'s stats line), the decode-time speedup
 * over greedy, and on how many prompts lookahead's tokens equal greedy's (it should be all: a
 * figure, not an assertion). Measured for the default N=5, W=4, G=4 and for the best setting of a
 * sweep of N, W, G with (N-1)*(W+G) <= 32 (the bundle's input length), on the fp32 unquantized
 * and the default fp16 c4w bundles. Target: >= 1.8 tokens per call with the defaults.
 *
 * On the CPU backend a call's cost grows with its slots, while on a fixed-shape engine (Core ML)
 * every call costs a full L: tokens per call is lookahead's gain there, the speedup its gain here.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { generateTokens } from "../runtime/generate.ts";
import type { LookaheadOptions } from "../runtime/lookahead.ts";
import { LoadedModel } from "../runtime/model.ts";
import { ModelSession } from "../runtime/session.ts";
import { KJV } from "./bench_models.ts";
import { type BundleOptions, cachedBundle } from "./bundle_cache.ts";
import { emptyGenerationStats } from "../runtime/generation_stats.ts";
import { kjvHeldOut, versePrompts } from "./kjv_heldout.ts";
import { LoadSampler, round, spread } from "./spread.ts";

const PROMPTS = 20;
const PROMPT_TOKENS = 12;
const NEW_TOKENS = 128;
const RUNS = 3;
/** The bundles' input length L (the export default), which bounds a lookahead call's slots. */
const INPUT_LEN = 32;

/** N, W and G. */
interface Setting {
  readonly n: number;
  readonly w: number;
  readonly g: number;
}

const DEFAULT: Setting = { n: 5, w: 4, g: 4 };

/**
 * The settings swept: each N with windows and verification counts from small to L-filling, as
 * far as (N-1)*(W+G) fits L. On the CPU backend a call's cost grows with its slots, so the
 * small settings matter as much as the large ones.
 */
const SWEEP: readonly Setting[] = [2, 3, 4, 5, 7].flatMap((n) =>
  [{ w: 1, g: 1 }, { w: 2, g: 2 }, { w: 2, g: 4 }, { w: 4, g: 2 }, { w: 4, g: 4 }]
    .filter(({ w, g }) => (n - 1) * (w + g) <= INPUT_LEN)
    .map(({ w, g }) => ({ n, w, g }))
);

/** The bundles compared, by figure prefix. */
const BUNDLES: readonly { name: string; options: BundleOptions }[] = [
  {
    name: "fp32_none",
    options: { dtype: "fp32", linearQuantize: "none", embeddingQuantize: "none" },
  },
  { name: "fp16_c4w", options: {} },
];

function settingName({ n, w, g }: Setting): string {
  return `n${n}_w${w}_g${g}`;
}

function lookaheadOptions({ n, w, g }: Setting): LookaheadOptions {
  return { ngramSize: n, windowSize: w, verifications: g };
}

/** One pass over every prompt, greedy or with lookahead. */
interface Pass {
  readonly tokens: readonly (readonly number[])[];
  readonly decodeSeconds: number;
  /** Tokens the decode calls produced: all but each prompt's first, which the prefill gives. */
  readonly decodedTokens: number;
  readonly decodeCalls: number;
}

async function runPass(
  model: LoadedModel,
  prompts: readonly number[][],
  setting: Setting | undefined,
  newTokens = NEW_TOKENS,
): Promise<Pass> {
  const tokens: number[][] = [];
  let decodeSeconds = 0;
  let decodedTokens = 0;
  let decodeCalls = 0;
  for (const prompt of prompts) {
    const stats = emptyGenerationStats();
    const options = {
      temperature: 0,
      maxNewTokens: newTokens,
      stopTokens: [],
      ...(setting === undefined ? {} : { lookahead: lookaheadOptions(setting) }),
    };
    const out: number[] = [];
    for await (const token of generateTokens(new ModelSession(model), prompt, options, stats)) {
      out.push(token);
    }
    tokens.push(out);
    decodeSeconds += stats.decodeSeconds;
    decodedTokens += stats.generatedTokens - 1;
    decodeCalls += stats.lookahead?.decodeCalls ?? stats.modelCalls - 1;
  }
  return { tokens, decodeSeconds, decodedTokens, decodeCalls };
}

/** Prompts on which both passes produced the same tokens. */
function agreeing(a: Pass, b: Pass): number {
  return a.tokens.filter((t, i) =>
    t.length === b.tokens[i]!.length &&
    t.every((token, k) => token === b.tokens[i]![k])
  ).length;
}

/** Compiles the plans for the call lengths a setting uses, outside any timing. */
async function warmUp(model: LoadedModel, prompts: readonly number[][], setting?: Setting) {
  await runPass(model, prompts.slice(0, 1), setting, 8);
}

/** A greedy pass and a lookahead pass, back to back, and how they compare. */
async function pair(
  model: LoadedModel,
  prompts: readonly number[][],
  setting: Setting,
): Promise<{ greedy: Pass; lookahead: Pass; speedup: number }> {
  const greedy = await runPass(model, prompts, undefined);
  const lookahead = await runPass(model, prompts, setting);
  return { greedy, lookahead, speedup: greedy.decodeSeconds / lookahead.decodeSeconds };
}

/** The sweep, one pair per setting; returns its figures and the fastest setting. */
async function sweep(
  model: LoadedModel,
  prompts: readonly number[][],
): Promise<{ figures: Figures; best: Setting }> {
  const figures: Figures = {};
  const load = new LoadSampler();
  let best = { setting: DEFAULT, speedup: 0 };
  let mostPerCall = { setting: DEFAULT, perCall: 0 };
  let worstAgreement = PROMPTS;
  for (const setting of SWEEP) {
    await load.sample();
    await warmUp(model, prompts, setting);
    const { greedy, lookahead, speedup } = await pair(model, prompts, setting);
    const perCall = lookahead.decodedTokens / lookahead.decodeCalls;
    const name = `sweep_${settingName(setting)}`;
    figures[`${name}_tokens_per_call`] = round(perCall, 2);
    figures[`${name}_speedup`] = round(speedup, 2);
    worstAgreement = Math.min(worstAgreement, agreeing(greedy, lookahead));
    if (speedup > best.speedup) best = { setting, speedup };
    if (perCall > mostPerCall.perCall) mostPerCall = { setting, perCall };
  }
  return {
    figures: {
      sweep_bundle: "kjv fp16-c4w",
      sweep_settings: SWEEP.length,
      sweep_best_speedup_setting: settingName(best.setting),
      sweep_most_tokens_per_call_setting: settingName(mostPerCall.setting),
      sweep_prompts_agree_min: worstAgreement,
      ...load.figures("sweep"),
      ...figures,
    },
    best: best.setting,
  };
}

/** Lookahead with `setting` against greedy over `RUNS` alternating pairs of passes. */
async function measure(
  model: LoadedModel,
  prompts: readonly number[][],
  setting: Setting,
  prefix: string,
): Promise<Figures> {
  await warmUp(model, prompts);
  await warmUp(model, prompts, setting);
  const load = new LoadSampler();
  const pairs = [];
  for (let run = 0; run < RUNS; run++) {
    await load.sample();
    pairs.push(await pair(model, prompts, setting));
  }
  const { lookahead } = pairs[0]!;
  return {
    [`${prefix}_setting`]: settingName(setting),
    [`${prefix}_tokens_per_call`]: round(lookahead.decodedTokens / lookahead.decodeCalls, 3),
    [`${prefix}_decode_calls`]: lookahead.decodeCalls,
    [`${prefix}_prompts_agree`]: Math.min(...pairs.map((p) => agreeing(p.greedy, p.lookahead))),
    ...spread(`${prefix}_speedup`, pairs.map((p) => p.speedup), 2),
    ...spread(
      `${prefix}_greedy_decode_tok_s`,
      pairs.map((p) => p.greedy.decodedTokens / p.greedy.decodeSeconds),
    ),
    ...spread(
      `${prefix}_lookahead_decode_tok_s`,
      pairs.map((p) => p.lookahead.decodedTokens / p.lookahead.decodeSeconds),
    ),
    ...load.figures(prefix),
  };
}

/** `lookahead` */
export const lookahead: Bench = {
  name: "lookahead",
  description: `lookahead vs greedy decoding on the CPU backend, KJV single-method bundles ` +
    `(fp32 unquantized, fp16 c4w; L=${INPUT_LEN}), ${PROMPTS} held-out verse prompts ` +
    `(BOS + ${PROMPT_TOKENS} tokens), ${NEW_TOKENS} new tokens each: tokens per decode call, ` +
    `decode-time speedup (median of ${RUNS} alternating pairs of passes), prompts whose tokens ` +
    `equal greedy's; default N=5 W=4 G=4 and the fastest of a ${SWEEP.length}-setting sweep ` +
    `(N-1)*(W+G) <= ${INPUT_LEN} on fp16 c4w; target >= 1.8 tokens per call with the defaults`,
  async run() {
    const cpu = await CpuBackend.create();
    const prompts = versePrompts(await kjvHeldOut(), PROMPTS, PROMPT_TOKENS);
    const figures: Figures = {};
    const models = [];
    try {
      for (const { options } of BUNDLES) {
        models.push(await LoadedModel.load(await cachedBundle(KJV, options), cpu));
      }
      const fp16 = models[BUNDLES.findIndex((b) => b.name === "fp16_c4w")]!;
      const { figures: swept, best } = await sweep(fp16, prompts);
      for (const [i, { name }] of BUNDLES.entries()) {
        const prefix = `kjv_${name}`;
        Object.assign(figures, await measure(models[i]!, prompts, DEFAULT, `${prefix}_default`));
        Object.assign(figures, await measure(models[i]!, prompts, best, `${prefix}_best`));
      }
      Object.assign(figures, swept);
    } finally {
      for (const model of models) model[Symbol.dispose]();
    }
    return figures;
  },
};
