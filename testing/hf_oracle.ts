/**
 * The Hugging Face oracle of scripts/tokenizer/hf_oracle.py: the tokenizer folders it builds
 * (made once, under `out/tokenizers/`), the ids Python `tokenizers` gives for texts, chat
 * templates rendered by `transformers`, and GGUF metadata read by `gguf`.
 *
 * @module
 */

import { runOracleScript } from "./oracle_python.ts";

const ROOT = new URL("../", import.meta.url);
const SCRIPT = "scripts/tokenizer/hf_oracle.py";

/** The tokenizer folders the oracle builds. */
export type OracleTokenizer = "smollm2" | "llama3" | "llama2" | "metaspace";

/** What Python `tokenizers` gives for one text. */
export interface OracleEncoding {
  /** Special tokens recognised in the text. */
  readonly ids: number[];
  /** Special tokens read as plain text. */
  readonly plain: number[];
  /** With the post-processor's additions (BOS). */
  readonly with_special: number[];
  /** `decode(ids)`. */
  readonly decoded: string;
}

let built: Promise<void> | undefined;

/** The folder of one oracle tokenizer, building all of them on first use. */
export async function oracleTokenizerDir(name: OracleTokenizer): Promise<string> {
  const out = new URL("out/tokenizers/", ROOT).pathname;
  built ??= runOracleScript(SCRIPT, ["build", out]).then(() => {});
  await built;
  return `${out}${name}`;
}

/** Python `tokenizers`' encodings of `texts` with the tokenizer.json in `dir`. */
export async function oracleEncode(
  dir: string,
  texts: readonly string[],
): Promise<OracleEncoding[]> {
  return JSON.parse(await runOracleScript(SCRIPT, ["encode", dir], JSON.stringify(texts)));
}

/** Python `tokenizers`' decode() of each id list with the tokenizer.json in `dir`. */
export async function oracleDecode(
  dir: string,
  ids: readonly (readonly number[])[],
): Promise<string[]> {
  return JSON.parse(await runOracleScript(SCRIPT, ["decode", dir], JSON.stringify(ids)));
}

/** The corpus of testdata/tokenizer plus the oracle's code and chat snippets. */
export async function oracleTexts(): Promise<string[]> {
  const corpus: string[] = JSON.parse(
    await Deno.readTextFile(new URL("testdata/tokenizer/corpus.json", ROOT)),
  );
  const snippets: string[] = JSON.parse(await runOracleScript(SCRIPT, ["snippets"]));
  return [...corpus, ...snippets];
}

/** The path of the pinned SmolLM2-135M-Instruct GGUF. */
export async function smollm2Gguf(): Promise<string> {
  return (await runOracleScript(SCRIPT, ["smollm2-gguf"])).trim();
}

/** One chat template rendering asked of `transformers`. */
export interface ChatCase {
  readonly template: string;
  readonly messages: readonly { readonly role: string; readonly content: string }[];
  readonly add_generation_prompt: boolean;
  readonly bos_token: string;
  readonly eos_token: string;
}

/** What `apply_chat_template` renders for each case, or the error it raised. */
export async function oracleChat(
  cases: readonly ChatCase[],
): Promise<(string | { error: string })[]> {
  return JSON.parse(await runOracleScript(SCRIPT, ["chat"], JSON.stringify({ cases })));
}

/** A GGUF as the `gguf` package's reader reads it (integers beyond 2^53 as decimal strings). */
export interface OracleGguf {
  readonly version: number;
  readonly tensor_count: number;
  readonly metadata: Record<string, { readonly type: string; readonly value: unknown }>;
}

/** The version, tensor count and metadata of the GGUF at `path`, read by Python `gguf`. */
export async function oracleGgufMetadata(path: string): Promise<OracleGguf> {
  return JSON.parse(await runOracleScript(SCRIPT, ["gguf-metadata", path]));
}
