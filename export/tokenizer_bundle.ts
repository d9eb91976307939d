/**
 * What a bundle records of its tokenizer: the tokenizer file itself, whether prompts start with
 * BOS, every token that ends generation, and the chat template. Hugging Face checkpoints say
 * these in files beside `tokenizer.json`: `tokenizer_config.json` (`add_bos_token`,
 * `eos_token`, `chat_template`) and `generation_config.json` (`eos_token_id`, one id or a list).
 * Meta's Llama 3 checkpoints carry no template, so theirs is built in.
 *
 * @module
 */

import type { TokenizerSpec } from "../bundle/manifest.ts";
import { readRegularFile, readRegularTextFile, UnsafeFileError } from "../files/confined.ts";
import { ChatTemplate, ChatTemplateError } from "../tokenizer/chat/chat_template.ts";
import { LLAMA3_CHAT_TEMPLATE, MAX_TOKENIZER_BYTES, parseTokenizer } from "../tokenizer/mod.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { parentDirectory } from "./bundle_directory.ts";
import { ExportOptionsError } from "./options.ts";

/** Largest config or template file read. */
const MAX_CONFIG_BYTES = 4 * 2 ** 20;
/** The bundled chat template's file name. */
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/** Files to copy into the bundle, and what the manifest says of the tokenizer. */
export interface TokenizerToBundle {
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly spec: TokenizerSpec;
}

function readFile(path: string, what: string, maxBytes: number): Uint8Array {
  try {
    return readRegularFile(path, maxBytes);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new ExportOptionsError(`the ${what} "${path}" ${error.detail}`);
  }
}

/** A JSON config beside the tokenizer, or undefined when absent or not readable by permission. */
async function siblingJson(
  dir: string,
  name: string,
): Promise<Record<string, unknown> | undefined> {
  const path = `${dir}/${name}`;
  const status = await Deno.permissions.query({ name: "read", path });
  if (status.state !== "granted") return undefined;
  let text: string;
  try {
    text = readRegularTextFile(path, MAX_CONFIG_BYTES);
  } catch (error) {
    if (error instanceof UnsafeFileError && error.detail === "is missing") return undefined;
    if (error instanceof UnsafeFileError) {
      throw new ExportOptionsError(`the config "${path}" ${error.detail}`);
    }
    throw error;
  }
  try {
    const value = JSON.parse(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch {
    // Reported below, as for any value that is not an object.
  }
  throw new ExportOptionsError(`the config "${path}" is not a JSON object`);
}

/** The id of a token given by its text (`"</s>"` or `{content: "</s>"}`), if it is one token. */
function tokenId(tokenizer: Tokenizer, token: unknown): number | undefined {
  const text = typeof token === "object" && token !== null && "content" in token
    ? (token as { content: unknown }).content
    : token;
  if (typeof text !== "string" || text === "") return undefined;
  const ids = tokenizer.encode(text, { allowedSpecial: "all" });
  return ids.length === 1 ? ids[0] : undefined;
}

/** `tokenizer_config.json`'s template: a string, or a list of named ones (the "default"). */
function configTemplate(config: Record<string, unknown> | undefined): string | undefined {
  const template = config?.chat_template;
  if (typeof template === "string") return template;
  if (Array.isArray(template)) {
    const named = template.find((t) => t?.name === "default")?.template;
    if (typeof named === "string") return named;
  }
  return undefined;
}

/**
 * Reads the tokenizer to bundle, with its configs and chat template, and checks that the model
 * can embed every id it gives, so that a mismatched tokenizer is refused now rather than when the
 * bundle runs.
 *
 * @param chatTemplatePath a Jinja file overriding the checkpoint's template
 * @throws {ExportOptionsError} for an unreadable file, a tokenizer with ids beyond `vocabSize`,
 *   or a template that does not parse
 */
export async function readTokenizerToBundle(
  path: string,
  vocabSize: number,
  chatTemplatePath: string | undefined,
): Promise<TokenizerToBundle> {
  const bytes = readFile(path, "tokenizer", MAX_TOKENIZER_BYTES);
  const tokenizer = parseTokenizer(bytes, { name: path });
  if (tokenizer.kind === "gguf") {
    throw new ExportOptionsError(
      `the tokenizer "${path}" is a GGUF vocabulary; bundle a tokenizer.json or tokenizer.model`,
    );
  }
  if (tokenizer.vocabSize > vocabSize) {
    throw new ExportOptionsError(
      `the tokenizer "${path}" has ${tokenizer.vocabSize} ids but the model embeds only ` +
        `${vocabSize}: it is not this model's tokenizer`,
    );
  }
  const dir = parentDirectory(path);
  const config = await siblingJson(dir, "tokenizer_config.json");
  const generation = await siblingJson(dir, "generation_config.json");

  const stops = new Set(tokenizer.stopTokens);
  const eosIds = generation?.eos_token_id;
  for (const id of Array.isArray(eosIds) ? eosIds : [eosIds]) {
    if (Number.isSafeInteger(id) && id >= 0 && id < tokenizer.vocabSize) stops.add(id);
  }
  const configEos = tokenId(tokenizer, config?.eos_token);
  if (configEos !== undefined) stops.add(configEos);
  const eosId = tokenizer.eosId ?? configEos ?? null;
  const bosId = tokenizer.bosId ?? tokenId(tokenizer, config?.bos_token) ?? null;
  const addBos = typeof config?.add_bos_token === "boolean"
    ? config.add_bos_token
    : tokenizer.addBos;

  const templateSource = chatTemplatePath === undefined
    ? configTemplate(config) ?? (tokenizer.kind === "tiktoken" ? LLAMA3_CHAT_TEMPLATE : undefined)
    : new TextDecoder().decode(readFile(chatTemplatePath, "chat template", MAX_CONFIG_BYTES));
  if (templateSource !== undefined) {
    try {
      ChatTemplate.parse(templateSource, chatTemplatePath ?? `${dir}/tokenizer_config.json`);
    } catch (error) {
      if (error instanceof ChatTemplateError) throw new ExportOptionsError(error.message);
      throw error;
    }
  }

  const file = tokenizer.kind === "tokenizer.json" ? "tokenizer.json" : "tokenizer.model";
  const files = new Map([[file, bytes]]);
  if (templateSource !== undefined) {
    files.set(CHAT_TEMPLATE_FILE, new TextEncoder().encode(templateSource));
  }
  return {
    files,
    spec: {
      file,
      kind: tokenizer.kind,
      bosId,
      eosId,
      stopTokens: [...stops].sort((a, b) => a - b),
      addBos,
      chatTemplate: templateSource === undefined ? null : CHAT_TEMPLATE_FILE,
    },
  };
}
