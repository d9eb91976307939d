/**
 * What a bundle records of its tokenizer: the tokenizer file itself, whether prompts start with
 * BOS, every token that ends generation, and the chat template. Hugging Face checkpoints say
 * these in files beside `tokenizer.json`: `tokenizer_config.json` (`add_bos_token`,
 * `eos_token`, `chat_template`) and `generation_config.json` (`eos_token_id`, one id or a list).
 * A GGUF says them in its `tokenizer.*` metadata, which the bundle keeps as a GGUF of its own
 * (`tokenizer.gguf`, no tensors); a `generation_config.json` beside it still adds stop tokens.
 * Meta's Llama 3 checkpoints carry no template, so theirs is built in.
 *
 * @module
 */

import type { TokenizerSpec } from "../bundle/manifest.ts";
import { readRegularFile, readRegularTextFile, UnsafeFileError } from "../files/confined.ts";
import { ChatTemplate, ChatTemplateError } from "../tokenizer/chat/chat_template.ts";
import { isGgufFile, readGgufVocabulary } from "../tokenizer/gguf/gguf_file.ts";
import {
  LLAMA3_CHAT_TEMPLATE,
  MAX_TOKENIZER_BYTES,
  parseTokenizer,
  UnsupportedTokenizerError,
} from "../tokenizer/mod.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { parentDirectory } from "./bundle_directory.ts";
import { ExportOptionsError } from "./options.ts";

/** Largest config or template file read. */
const MAX_CONFIG_BYTES = 4 * 2 ** 20;
/** The bundled chat template's file name. */
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/** The bundled GGUF vocabulary's file name. */
export const GGUF_VOCABULARY_FILE = "tokenizer.gguf";

/** Files to copy into the bundle, what the manifest says of the tokenizer, and its origin. */
export interface TokenizerToBundle {
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** Null when no tokenizer is bundled. */
  readonly spec: TokenizerSpec | null;
  /** Where the tokenizer came from, or why there is none, as the export summary says it. */
  readonly origin: string;
}

/** A tokenizer read from its source, with what that source says besides its vocabulary. */
interface TokenizerSource {
  readonly path: string;
  readonly tokenizer: Tokenizer;
  /** Its file name in the bundle, and the bytes written there. */
  readonly file: string;
  readonly bytes: Uint8Array;
  readonly origin: string;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly addBos: boolean;
  /** Stop tokens beyond the tokenizer's own. */
  readonly stopTokens: readonly number[];
  /** The source's chat template, and the file it came from (for errors). */
  readonly template: string | undefined;
  readonly templateFile: string;
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

/** A tokenizer file with the `tokenizer_config.json` beside it, if any. */
async function fileSource(path: string): Promise<TokenizerSource> {
  const bytes = readFile(path, "tokenizer", MAX_TOKENIZER_BYTES);
  const tokenizer = parseTokenizer(bytes, { name: path });
  const dir = parentDirectory(path);
  const config = await siblingJson(dir, "tokenizer_config.json");
  const configEos = tokenId(tokenizer, config?.eos_token);
  return {
    path,
    tokenizer,
    file: tokenizer.kind === "tokenizer.json" ? "tokenizer.json" : "tokenizer.model",
    bytes,
    origin: `${tokenizer.kind} "${path}"`,
    bosId: tokenizer.bosId ?? tokenId(tokenizer, config?.bos_token) ?? null,
    eosId: tokenizer.eosId ?? configEos ?? null,
    addBos: typeof config?.add_bos_token === "boolean" ? config.add_bos_token : tokenizer.addBos,
    stopTokens: configEos === undefined ? [] : [configEos],
    template: configTemplate(config) ??
      (tokenizer.kind === "tiktoken" ? LLAMA3_CHAT_TEMPLATE : undefined),
    templateFile: `${dir}/tokenizer_config.json`,
  };
}

/** The vocabulary of a GGUF, or undefined when it has none. */
async function ggufSource(path: string, origin: string): Promise<TokenizerSource | undefined> {
  const vocabulary = await readGgufVocabulary(path, path);
  if (vocabulary === undefined) return undefined;
  if (vocabulary.file.length > MAX_TOKENIZER_BYTES) {
    throw new ExportOptionsError(
      `the vocabulary of "${path}" takes ${vocabulary.file.length} bytes, more than the ` +
        `${MAX_TOKENIZER_BYTES} a bundle's tokenizer may`,
    );
  }
  const { tokenizer } = vocabulary;
  return {
    path,
    tokenizer,
    file: GGUF_VOCABULARY_FILE,
    bytes: vocabulary.file,
    origin,
    bosId: tokenizer.bosId ?? null,
    eosId: tokenizer.eosId ?? null,
    addBos: tokenizer.addBos,
    stopTokens: [],
    template: vocabulary.chatTemplate,
    templateFile: path,
  };
}

/**
 * Reads the tokenizer file to bundle (or a GGUF's vocabulary), with its configs and chat
 * template, and checks that the model can embed every id it gives, so that a mismatched
 * tokenizer is refused now rather than when the bundle runs.
 *
 * @param chatTemplatePath a Jinja file overriding the checkpoint's template
 * @throws {ExportOptionsError} for an unreadable file, a GGUF without a vocabulary, a tokenizer
 *   with ids beyond `vocabSize`, or a template that does not parse
 */
export async function readTokenizerToBundle(
  path: string,
  vocabSize: number,
  chatTemplatePath: string | undefined,
): Promise<TokenizerToBundle> {
  const source = await isGgufFile(path)
    ? await ggufSource(path, `the vocabulary of "${path}"`)
    : await fileSource(path);
  if (source === undefined) {
    throw new ExportOptionsError(
      `the tokenizer "${path}" is a GGUF without a vocabulary (no tokenizer.ggml.model)`,
    );
  }
  return await bundleSource(source, vocabSize, chatTemplatePath);
}

/**
 * The vocabulary of a GGUF checkpoint to bundle, as {@link readTokenizerToBundle} reads it; none
 * (the origin says why) when the GGUF has no vocabulary or one of a kind not supported, since the
 * weights export without it.
 *
 * @throws {ExportOptionsError} as {@link readTokenizerToBundle} does
 * @throws {TokenizerFormatError} for a malformed vocabulary
 */
export async function readCheckpointVocabularyToBundle(
  checkpoint: string,
  vocabSize: number,
  chatTemplatePath: string | undefined,
): Promise<TokenizerToBundle> {
  let source: TokenizerSource | undefined;
  try {
    source = await ggufSource(checkpoint, `the vocabulary of the GGUF checkpoint "${checkpoint}"`);
  } catch (error) {
    if (!(error instanceof UnsupportedTokenizerError)) throw error;
    return { files: new Map(), spec: null, origin: `none: ${error.message}` };
  }
  if (source === undefined) {
    return {
      files: new Map(),
      spec: null,
      origin: "none: the GGUF checkpoint holds no vocabulary (no tokenizer.* metadata)",
    };
  }
  return await bundleSource(source, vocabSize, chatTemplatePath);
}

async function bundleSource(
  source: TokenizerSource,
  vocabSize: number,
  chatTemplatePath: string | undefined,
): Promise<TokenizerToBundle> {
  const { path, tokenizer } = source;
  if (tokenizer.vocabSize > vocabSize) {
    throw new ExportOptionsError(
      `the tokenizer "${path}" has ${tokenizer.vocabSize} ids but the model embeds only ` +
        `${vocabSize}: it is not this model's tokenizer`,
    );
  }
  const generation = await siblingJson(parentDirectory(path), "generation_config.json");
  const stops = new Set([...tokenizer.stopTokens, ...source.stopTokens]);
  const eosIds = generation?.eos_token_id;
  for (const id of Array.isArray(eosIds) ? eosIds : [eosIds]) {
    if (Number.isSafeInteger(id) && id >= 0 && id < tokenizer.vocabSize) stops.add(id);
  }

  const templateSource = chatTemplatePath === undefined
    ? source.template
    : new TextDecoder().decode(readFile(chatTemplatePath, "chat template", MAX_CONFIG_BYTES));
  if (templateSource !== undefined) {
    try {
      ChatTemplate.parse(templateSource, chatTemplatePath ?? source.templateFile);
    } catch (error) {
      if (error instanceof ChatTemplateError) throw new ExportOptionsError(error.message);
      throw error;
    }
  }

  const files = new Map([[source.file, source.bytes]]);
  if (templateSource !== undefined) {
    files.set(CHAT_TEMPLATE_FILE, new TextEncoder().encode(templateSource));
  }
  return {
    files,
    spec: {
      file: source.file,
      kind: tokenizer.kind,
      bosId: source.bosId,
      eosId: source.eosId,
      stopTokens: [...stops].sort((a, b) => a - b),
      addBos: source.addBos,
      chatTemplate: templateSource === undefined ? null : CHAT_TEMPLATE_FILE,
    },
    origin: source.origin,
  };
}
