/**
 * Runs a bundle on the CPU backend and on a candidate backend (Core ML by default) side by side and
 * checks that they agree within fp16 tolerance: both are fed the same tokens (the CPU backend's
 * greedy choices), the candidate's logits must stay within `atol + rtol * |cpu logit|` at every
 * step, and its greedy token must equal the CPU's unless the CPU's two best logits are closer than
 * the tolerance (a near tie that fp16 rounding may break either way). The macOS workflow runs it;
 * `--candidate cpu` runs the same comparison anywhere.
 *
 * Usage: deno run --allow-read --allow-write --allow-env --allow-ffi compare_backends.ts BUNDLE
 *   [--candidate coreml|cpu] [--compute_units U] [--prompt TEXT | --prompt_tokens 1,2,3]
 *   [--steps N] [--atol A] [--rtol R] [--decline_output_backings] [--timeout SECONDS]
 *
 * `--decline_output_backings` makes Core ML return its outputs in arrays of its own, which the
 * bridge copies out honouring their strides: the path Neural Engine outputs take, run on any
 * compute units.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readManifest } from "../../../bundle/manifest.ts";
import { ModelSession } from "../../../runtime/session.ts";
import { LoadedModel } from "../../../runtime/model.ts";
import type { Backend } from "../../../runtime/backend/backend.ts";
import { CpuBackend } from "../../../runtime/backend/cpu.ts";
import { CoremlBackend } from "../../../runtime/backend/coreml.ts";
import { parseComputeUnits } from "../../../runtime/backend/select.ts";
import { type ComputeUnits, DEFAULT_TIMEOUT_SECONDS } from "../../coreml.ts";
import { loadTokenizer } from "../../../tokenizer/load.ts";

/** How far a candidate's logit may be from the CPU backend's: `atol + rtol * |cpu logit|`. */
export interface Tolerance {
  readonly atol: number;
  readonly rtol: number;
}

/** fp16 carries 11 significant bits; after a few layers of fp16 rounding both ways this is ample. */
export const FP16_TOLERANCE: Tolerance = { atol: 0.1, rtol: 0.02 };

/** One step's comparison of two logits rows. */
export interface StepComparison {
  readonly referenceToken: number;
  readonly candidateToken: number;
  readonly maxAbsDifference: number;
  /** Whether every logit is within the tolerance. */
  readonly logitsAgree: boolean;
  /** The reference's best minus second-best logit. */
  readonly referenceMargin: number;
  /** Tokens differ where the margin is within the tolerance: not a failure, but the end of checking. */
  readonly nearTie: boolean;
}

function topTwo(row: ArrayLike<number>): [number, number, number] {
  let best = 0;
  let first = -Infinity;
  let second = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const value = row[i]!;
    if (value > first) [second, first, best] = [first, value, i];
    else if (value > second) second = value;
  }
  return [best, first, second];
}

/** Compares a candidate's logits row with the reference's. */
export function compareLogits(
  reference: ArrayLike<number>,
  candidate: ArrayLike<number>,
  tolerance: Tolerance = FP16_TOLERANCE,
): StepComparison {
  if (reference.length !== candidate.length) {
    throw new RangeError(
      `Cannot compare logits rows of ${reference.length} and ${candidate.length} values`,
    );
  }
  let maxAbsDifference = 0;
  let logitsAgree = true;
  for (let i = 0; i < reference.length; i++) {
    const difference = Math.abs(candidate[i]! - reference[i]!);
    if (!(difference <= tolerance.atol + tolerance.rtol * Math.abs(reference[i]!))) {
      logitsAgree = false;
    }
    maxAbsDifference = Math.max(maxAbsDifference, Number.isNaN(difference) ? Infinity : difference);
  }
  const [referenceToken, first, second] = topTwo(reference);
  const [candidateToken] = topTwo(candidate);
  const referenceMargin = first - second;
  const nearTie = referenceToken !== candidateToken &&
    referenceMargin <= 2 * (tolerance.atol + tolerance.rtol * Math.abs(first));
  return {
    referenceToken,
    candidateToken,
    maxAbsDifference,
    logitsAgree,
    referenceMargin,
    nearTie,
  };
}

/** Options of {@link compareBackends}. */
export interface CompareOptions {
  readonly bundle: string;
  /** The prompt's token ids. */
  readonly prompt: readonly number[];
  /** Greedy steps after the prompt. */
  readonly steps: number;
  /** The backend whose greedy tokens both are fed (the CPU backend in the workflow). */
  readonly reference: Backend;
  readonly candidate: Backend;
  readonly tolerance?: Tolerance;
}

/** What {@link compareBackends} found: one comparison after the prompt and one per step. */
export interface BackendComparison {
  readonly steps: readonly StepComparison[];
  /** Logits within tolerance everywhere, and tokens equal up to a near tie (if any). */
  readonly agree: boolean;
}

/** Feeds the same tokens to the reference and the candidate and compares every logits row. */
export async function compareBackends(options: CompareOptions): Promise<BackendComparison> {
  using reference = await LoadedModel.load(options.bundle, options.reference);
  using candidate = await LoadedModel.load(options.bundle, options.candidate);
  const sessions = [new ModelSession(reference), new ModelSession(candidate)] as const;
  const feed = (tokens: readonly number[]) => Promise.all(sessions.map((s) => s.step(tokens)));
  let rows: (Float16Array | Float32Array)[] = [];
  for (let i = 0; i < options.prompt.length; i += reference.inputLength) {
    rows = await feed(options.prompt.slice(i, i + reference.inputLength));
  }
  const steps: StepComparison[] = [];
  for (let step = 0; step <= options.steps; step++) {
    const comparison = compareLogits(rows[0]!, rows[1]!, options.tolerance);
    steps.push(comparison);
    const tokensAgree = comparison.referenceToken === comparison.candidateToken;
    if (!comparison.logitsAgree || !tokensAgree || step === options.steps) break;
    rows = await feed([comparison.referenceToken]);
  }
  const last = steps[steps.length - 1]!;
  const agree = steps.every((s) => s.logitsAgree) &&
    (last.referenceToken === last.candidateToken || last.nearTie);
  return { steps, agree };
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      candidate: { type: "string", default: "coreml" },
      compute_units: { type: "string", default: "cpuAndNeuralEngine" },
      prompt: { type: "string", default: "In the beginning God created the heaven and the earth." },
      prompt_tokens: { type: "string" },
      steps: { type: "string", default: "32" },
      atol: { type: "string", default: String(FP16_TOLERANCE.atol) },
      rtol: { type: "string", default: String(FP16_TOLERANCE.rtol) },
      decline_output_backings: { type: "boolean", default: false },
      timeout: { type: "string", default: String(DEFAULT_TIMEOUT_SECONDS) },
    },
  });
  const bundle = positionals[0];
  if (bundle === undefined || !["coreml", "cpu"].includes(values.candidate)) {
    console.error("Usage: compare_backends.ts BUNDLE [--candidate coreml|cpu] [flags]");
    return 2;
  }
  const manifest = await readManifest(bundle);
  let prompt: number[];
  if (values.prompt_tokens !== undefined) {
    prompt = values.prompt_tokens.split(",").map(Number);
  } else if (manifest.tokenizer !== null) {
    const tokenizer = await loadTokenizer(`${bundle}/${manifest.tokenizer.file}`);
    prompt = tokenizer.encode(values.prompt, { bos: true });
  } else {
    console.error("compare_backends: the bundle has no tokenizer; pass --prompt_tokens");
    return 2;
  }
  const computeUnits: ComputeUnits = parseComputeUnits(values.compute_units);
  const candidate = values.candidate === "cpu"
    ? await CpuBackend.create()
    : await CoremlBackend.create({
      computeUnits,
      timeoutSeconds: Number(values.timeout),
      declineOutputBackings: values.decline_output_backings,
    });
  const copied = values.decline_output_backings ? " (outputs copied)" : "";
  const label = values.candidate === "cpu" ? "cpu" : `coreml ${computeUnits}${copied}`;
  const result = await compareBackends({
    bundle,
    prompt,
    steps: Number(values.steps),
    reference: await CpuBackend.create(),
    candidate,
    tolerance: { atol: Number(values.atol), rtol: Number(values.rtol) },
  });
  for (const [i, s] of result.steps.entries()) {
    console.log(
      `step ${String(i).padStart(3)}  cpu ${s.referenceToken}  ${label} ${s.candidateToken}  ` +
        `max |diff| ${s.maxAbsDifference.toFixed(4)}  margin ${s.referenceMargin.toFixed(3)}` +
        `${s.logitsAgree ? "" : "  LOGITS OUT OF TOLERANCE"}${s.nearTie ? "  near tie" : ""}`,
    );
  }
  console.log(`${bundle}: ${label} ${result.agree ? "agrees with" : "DIFFERS FROM"} cpu`);
  return result.agree ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
