/**
 * Prints, as JSON, the greedy continuation of each prompt on the CPU backend: run as its own
 * process, so that an environment variable the native library reads once
 * (`LLAMANE_CPU_ACTIVATIONS`, `LLAMANE_CPU_KERNELS`) applies to this run alone.
 *
 * Usage: deno run -A testing/greedy_tokens.ts BUNDLE PROMPTS_JSON NEW_TOKENS
 * (PROMPTS_JSON: an array of token id arrays). Prints an array of token id arrays.
 *
 * @module
 */

import { CpuBackend } from "../runtime/backend/cpu.ts";
import { generateTokens } from "../runtime/generate.ts";
import { LoadedModel } from "../runtime/model.ts";
import { ModelSession } from "../runtime/session.ts";

/** Greedy tokens of `bundle` after each prompt, no stop tokens. */
export async function greedyTokens(
  bundle: string,
  prompts: readonly (readonly number[])[],
  newTokens: number,
): Promise<number[][]> {
  using cpu = await CpuBackend.create();
  using model = await LoadedModel.load(bundle, cpu);
  const continuations: number[][] = [];
  for (const prompt of prompts) {
    const tokens: number[] = [];
    const options = { temperature: 0, maxNewTokens: newTokens, stopTokens: [] };
    for await (const token of generateTokens(new ModelSession(model), [...prompt], options)) {
      tokens.push(token);
    }
    continuations.push(tokens);
  }
  return continuations;
}

/** {@link greedyTokens} in a child process with `env` added to its environment. */
export async function greedyTokensWith(
  env: Record<string, string>,
  bundle: string,
  prompts: readonly (readonly number[])[],
  newTokens: number,
): Promise<number[][]> {
  const promptsFile = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(promptsFile, JSON.stringify(prompts));
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!, bundle, promptsFile, String(newTokens)],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(`greedy_tokens.ts failed: ${new TextDecoder().decode(stderr)}`);
    }
    return JSON.parse(new TextDecoder().decode(stdout));
  } finally {
    await Deno.remove(promptsFile);
  }
}

if (import.meta.main) {
  const [bundle, promptsFile, newTokens] = Deno.args;
  const prompts = JSON.parse(await Deno.readTextFile(promptsFile!));
  console.log(JSON.stringify(await greedyTokens(bundle!, prompts, Number(newTokens))));
}
