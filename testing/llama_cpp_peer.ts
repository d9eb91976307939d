/**
 * llama.cpp through node-llama-cpp (bench/peer, pinned by its package-lock.json): installed on
 * first use, then run by Node for the benchmark's timings and as the tokenizer oracle of GGUF
 * vocabularies.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

const PEER = new URL("../bench/peer/", import.meta.url);

async function sha256(path: URL): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `npm ci` of the pinned peer unless node_modules was installed from this very lock file.
 * `--omit=optional` skips node-llama-cpp's other prebuilt packages (CUDA alone is 540 MB): the
 * linux-x64 CPU one is a direct dependency, so it stays. `--ignore-scripts`: no postinstall tries
 * a download or a source build.
 */
export async function ensurePeer(): Promise<void> {
  const stamp = new URL("node_modules/.llamane-lock.sha256", PEER);
  const want = await sha256(new URL("package-lock.json", PEER));
  const have = await Deno.readTextFile(stamp).catch(() => undefined);
  if (have === want) return;
  console.log("installing the llama.cpp peer: npm ci in bench/peer");
  const { success, code } = await new Deno.Command("npm", {
    args: ["ci", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund"],
    cwd: PEER,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`npm ci in bench/peer failed with exit code ${code}`);
  await Deno.writeTextFile(stamp, want);
}

/** llama.cpp's ids of each text (bench/peer/tokenize.mjs), loading only the GGUF's vocabulary. */
export async function llamaCppTokenize(
  model: string,
  texts: readonly string[],
): Promise<{ plain: number[]; special: number[] }[]> {
  await ensurePeer();
  const child = new Deno.Command("node", {
    args: [new URL("tokenize.mjs", PEER).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({ model, texts })));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  if (!success) throw new Error(`bench/peer/tokenize.mjs failed:\n${text.decode(stderr)}`);
  return JSON.parse(text.decode(stdout));
}

/** Asserts that each case's two encodings are equal, showing the first few that are not. */
export function assertSameEncodings(
  label: string,
  cases: readonly (readonly [string, unknown, unknown])[],
): void {
  const failures = cases.filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b));
  const shown = failures.slice(0, 4).map(([input, actual, expected]) =>
    `  ${JSON.stringify(input)}:\n    got      ${JSON.stringify(actual)}\n` +
    `    expected ${JSON.stringify(expected)}`
  );
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${cases.length} ${label} differ from llama.cpp:\n${shown.join("\n")}`,
  );
}

/**
 * Asserts that `tokenizer` encodes every text as llama.cpp does with the vocabulary of the GGUF
 * at `model`: special tokens read as text, and recognised.
 */
export async function assertEncodesLikeLlamaCpp(
  tokenizer: Tokenizer,
  model: string,
  texts: readonly string[],
): Promise<void> {
  const oracle = await llamaCppTokenize(model, texts);
  assertSameEncodings(
    "encodings of special tokens as text",
    texts.map((text, i) => [text, tokenizer.encode(text), oracle[i]!.plain]),
  );
  assertSameEncodings(
    "encodings with special tokens",
    texts.map((text, i) => [
      text,
      tokenizer.encode(text, { allowedSpecial: "all" }),
      oracle[i]!.special,
    ]),
  );
}
