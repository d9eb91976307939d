/**
 * The vocabulary of a GGUF file as a tokenizer, encoding as llama.cpp does. Two models exist in
 * Llama-family files: `gpt2` (byte-level BPE with a merge list; the pre-tokenizer is named by
 * `tokenizer.ggml.pre`, e.g. `llama-bpe` for Llama 3, `smollm` for SmolLM2) and `llama`
 * (SentencePiece: pieces merge by score, spaces become U+2581, a space is put before the text
 * and after every special token, unknown characters fall back to byte tokens).
 *
 * Control tokens (`<|im_end|>`, `<s>`) are special: read from text only when allowed; user-defined
 * tokens are always read, as llama.cpp's `parse_special` does it.
 *
 * @module
 */

import type { GgufHeader, GgufValue } from "../../gguf/mod.ts";
import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { type AddedToken, AddedTokens } from "../bpe/added_tokens.ts";
import { BpeModel } from "../bpe/bpe.ts";
import { BpeTokenizer } from "../bpe/bpe_tokenizer.ts";
import { GPT2_PATTERN, toByteLevel } from "../bpe/byte_level.ts";
import { compileOniguruma } from "../bpe/oniguruma.ts";
import { type PreTokenize, splitText } from "../bpe/pipeline.ts";

/** llama.cpp's token types (`llama_token_type`). */
const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 };

/** Pre-tokenizers by `tokenizer.ggml.pre`: split patterns applied in turn, and ignore_merges. */
const PRE_TOKENIZERS: Readonly<
  Record<string, { readonly patterns: readonly RegExp[]; readonly ignoreMerges: boolean }>
> = (() => {
  const gpt2 = { patterns: [GPT2_PATTERN], ignoreMerges: false };
  const llama3 = {
    patterns: [compileOniguruma(
      String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?` +
        String.raw`\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    )],
    ignoreMerges: true,
  };
  return {
    default: gpt2,
    gpt2,
    "llama-bpe": llama3,
    llama3,
    smollm: { patterns: [/\p{N}/gu, GPT2_PATTERN], ignoreMerges: false },
  };
})();

/** Tokens llama.cpp also ends generation on, by their text, besides the eos/eot/eom ids. */
const END_OF_GENERATION_TEXTS = new Set([
  "<|eot_id|>",
  "<|eom_id|>",
  "<|im_end|>",
  "<|end|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<EOT>",
]);

const SPM_SPACE = "\u2581";

/** Typed reads of tokenizer metadata, naming the key when a value is missing or mistyped. */
class Metadata {
  readonly #header: GgufHeader;
  readonly #name: string;

  constructor(header: GgufHeader, name: string) {
    this.#header = header;
    this.#name = name;
  }

  fail(key: string, detail: string): never {
    throw new TokenizerFormatError(this.#name, 0, `GGUF metadata "${key}" ${detail}`);
  }

  value(key: string): GgufValue | undefined {
    return this.#header.metadata.get(key)?.value;
  }

  string(key: string): string | undefined {
    const value = this.value(key);
    if (value !== undefined && typeof value !== "string") this.fail(key, "is not a string");
    return value;
  }

  boolean(key: string): boolean | undefined {
    const value = this.value(key);
    if (value !== undefined && typeof value !== "boolean") this.fail(key, "is not a boolean");
    return value;
  }

  /** A token id, checked against the vocabulary size. */
  id(key: string, vocabSize: number): number | undefined {
    const value = this.value(key);
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value)) this.fail(key, "is not an integer");
    // Files use -1 (as u32: 4294967295) for "none".
    if (value === -1 || value === 0xffffffff) return undefined;
    if (value < 0 || value >= vocabSize) {
      this.fail(key, `is ${value}, outside the vocabulary of ${vocabSize} tokens`);
    }
    return value;
  }

  array<T extends GgufValue>(
    key: string,
    check: (item: GgufValue) => item is T,
    what: string,
  ): readonly T[] {
    const value = this.value(key);
    if (!Array.isArray(value)) this.fail(key, "is missing or not an array");
    const items = value as readonly GgufValue[];
    const bad = items.findIndex((item) => !check(item));
    if (bad >= 0) this.fail(key, `item ${bad} is not ${what}`);
    return items as readonly T[];
  }
}

const isString = (v: GgufValue): v is string => typeof v === "string";
const isNumber = (v: GgufValue): v is number => typeof v === "number";

/**
 * Builds the tokenizer a GGUF header's `tokenizer.ggml.*` metadata describes.
 *
 * @param name the file name, for error messages
 * @throws {TokenizerFormatError} when the vocabulary is missing or malformed
 * @throws {UnsupportedTokenizerError} for a tokenizer model or pre-tokenizer not supported
 */
export function ggufTokenizer(header: GgufHeader, name: string): BpeTokenizer {
  const meta = new Metadata(header, name);
  const model = meta.string("tokenizer.ggml.model");
  if (model === undefined) {
    throw new TokenizerFormatError(
      name,
      0,
      "the GGUF holds no vocabulary (no tokenizer.ggml.model)",
    );
  }
  if (model !== "gpt2" && model !== "llama") {
    throw new UnsupportedTokenizerError(
      name,
      `the GGUF tokenizer model "${model}" is not supported (only "gpt2" and "llama")`,
    );
  }
  const tokens = meta.array("tokenizer.ggml.tokens", isString, "a string");
  const types = meta.value("tokenizer.ggml.token_type") === undefined
    ? tokens.map(() => TokenType.normal)
    : meta.array("tokenizer.ggml.token_type", isNumber, "a number");
  if (types.length !== tokens.length) {
    meta.fail("tokenizer.ggml.token_type", `has ${types.length} items for ${tokens.length} tokens`);
  }
  const vocab = new Map<string, number>();
  tokens.forEach((token, id) => vocab.set(token, id));
  const added = new AddedTokens(tokens.flatMap((content, id): AddedToken[] => {
    const type = types[id]!;
    if (
      type !== TokenType.control && type !== TokenType.userDefined && type !== TokenType.unknown
    ) {
      return [];
    }
    const special = type !== TokenType.userDefined;
    return [{ id, content, special, lstrip: false, rstrip: false, singleWord: false }];
  }));

  const id = (key: string) => meta.id(`tokenizer.ggml.${key}`, tokens.length);
  const bosId = id("bos_token_id");
  const eosId = id("eos_token_id");
  const stops = new Set([eosId, id("eot_token_id"), id("eom_token_id")]);
  tokens.forEach((token, i) => {
    if (types[i] === TokenType.control && END_OF_GENERATION_TEXTS.has(token)) stops.add(i);
  });
  const common = {
    kind: "gguf" as const,
    tokens,
    added,
    bosId,
    eosId,
    stopTokens: [...stops].filter((s): s is number => s !== undefined).sort((a, b) => a - b),
  };

  if (model === "gpt2") {
    const preName = meta.string("tokenizer.ggml.pre") ?? "default";
    const pre = PRE_TOKENIZERS[preName];
    if (pre === undefined) {
      throw new UnsupportedTokenizerError(
        name,
        `the GGUF pre-tokenizer "${preName}" is not supported (supported: ` +
          `${Object.keys(PRE_TOKENIZERS).join(", ")})`,
      );
    }
    const ranks = mergeRanks(meta, vocab);
    const preTokenize: PreTokenize = (pieces) => {
      for (const pattern of pre.patterns) {
        pieces = pieces.flatMap((piece) => splitText(piece, pattern, "Isolated"));
      }
      return pieces.map(toByteLevel);
    };
    return new BpeTokenizer({
      ...common,
      normalize: undefined,
      preTokenize,
      model: new BpeModel({
        vocab,
        rankOf: (left, right) => ranks.get(left + " " + right),
        ignoreMerges: pre.ignoreMerges,
        byteFallback: false,
        unkId: undefined,
        fuseUnk: false,
      }),
      decoder: {
        byteLevel: true,
        replacements: [],
        byteFallback: false,
        stripStart: 0,
        firstTokenDrops: undefined,
      },
      addBos: meta.boolean("tokenizer.ggml.add_bos_token") ?? false,
    });
  }

  const scores = meta.array("tokenizer.ggml.scores", isNumber, "a number");
  if (scores.length !== tokens.length) {
    meta.fail("tokenizer.ggml.scores", `has ${scores.length} items for ${tokens.length} tokens`);
  }
  const spacePrefix = meta.boolean("tokenizer.ggml.add_space_prefix") ?? true;
  return new BpeTokenizer({
    ...common,
    normalize: (text) => (spacePrefix ? " " + text : text).replaceAll(" ", SPM_SPACE),
    preTokenize: undefined,
    model: new BpeModel({
      vocab,
      rankOf: (left, right) => {
        const merged = vocab.get(left + right);
        return merged === undefined ? undefined : -scores[merged]!;
      },
      ignoreMerges: false,
      byteFallback: true,
      unkId: id("unknown_token_id"),
      fuseUnk: false,
    }),
    decoder: {
      byteLevel: false,
      replacements: [[SPM_SPACE, " "]],
      byteFallback: true,
      stripStart: spacePrefix ? 1 : 0,
      firstTokenDrops: undefined,
    },
    addBos: meta.boolean("tokenizer.ggml.add_bos_token") ?? true,
  });
}

/** Merge ranks keyed by `left right`; both parts and the result must be tokens. */
function mergeRanks(meta: Metadata, vocab: ReadonlyMap<string, number>): Map<string, number> {
  const merges = meta.array("tokenizer.ggml.merges", isString, "a string");
  const ranks = new Map<string, number>();
  merges.forEach((merge, rank) => {
    const space = merge.indexOf(" ", 1);
    const left = merge.slice(0, space), right = merge.slice(space + 1);
    if (space < 0 || !vocab.has(left) || !vocab.has(right) || !vocab.has(left + right)) {
      meta.fail(
        "tokenizer.ggml.merges",
        `item ${rank} (${JSON.stringify(merge)}) is not two tokens whose join is a token`,
      );
    }
    if (!ranks.has(merge)) ranks.set(merge, rank);
  });
  return ranks;
}
