/**
 * The checkpoints the runtime benchmarks export and run: the embedded KJV model, and the
 * Llama-3.2-1B-shaped random bf16 checkpoint (2.5 GB, made by
 * `scripts/bench/make_llama32_1b_shape.py` on first use, as bench `checkpoint_load` does).
 *
 * @module
 */

import type { ExportSource } from "./bundle_cache.ts";
import { kjvHeldOut } from "./kjv_heldout.ts";

const ROOT = new URL("../", import.meta.url);
/** Where the 1B-shaped checkpoint and its params are generated. */
export const SHAPE_1B = new URL("out/bench/llama32-1b-shape/", ROOT);
const SHAPE_1B_GENERATOR = new URL("scripts/bench/make_llama32_1b_shape.py", ROOT).pathname;

/** A Meta-layout checkpoint and what exporting it needs. */
export interface BenchModel extends ExportSource {
  readonly params: string;
  /** A prompt of `length` token ids (BOS first where the model has one) for speed runs. */
  prompt(length: number, vocab: number): Promise<number[]>;
}

/** The embedded KJV model (2.0M parameters, shipped in the repository). */
export const KJV: BenchModel = {
  key: "kjv",
  checkpoint: new URL("models/kjv-tiny/consolidated.00.pth", ROOT).pathname,
  params: new URL("models/kjv-tiny/params.json", ROOT).pathname,
  ensure: () => Promise.resolve(),
  async prompt(length) {
    const heldOut = await kjvHeldOut();
    return [heldOut.bos, ...heldOut.stream.slice(0, length - 1)];
  },
};

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Random weights in Llama 3.2 1B's shape (tied output, vocabulary 128256): speed, not text. */
export const LLAMA32_1B_SHAPE: BenchModel & { readonly ropeScaleFactor: number } = {
  key: "llama32_1b",
  checkpoint: new URL("consolidated.00.pth", SHAPE_1B).pathname,
  params: new URL("params.json", SHAPE_1B).pathname,
  // Llama 3.2's RoPE scaling; the params file does not say it (Meta's 3.2 params do not either).
  ropeScaleFactor: 32,
  async ensure() {
    if (await exists(this.checkpoint) && await exists(this.params)) return;
    const python = Deno.env.get("LLAMANE_TORCH_PYTHON") ?? "/usr/bin/python3";
    console.log(`generating ${SHAPE_1B.pathname} with ${python} (about 2.5 GB, once)`);
    const { success } = await new Deno.Command(python, {
      args: [SHAPE_1B_GENERATOR, SHAPE_1B.pathname],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!success) {
      throw new Error(
        `Cannot generate the benchmark checkpoint: ${python} ${SHAPE_1B_GENERATOR} failed`,
      );
    }
  },
  // Its weights are random, so no text is more natural than another: any spread of ids does.
  prompt: (length, vocab) =>
    Promise.resolve(Array.from({ length }, (_, i) => (i * 7919 + 13) % vocab)),
};
