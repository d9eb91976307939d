/**
 * Reading a Hugging Face `tokenizer.json` with a BPE model: byte-level files (Llama 3, SmolLM2,
 * GPT-2 style) and SentencePiece-style ones (Llama 2, TinyLlama: U+2581 for spaces, byte
 * fallback). Other models (WordPiece, Unigram, WordLevel) and components Llama-family files do
 * not use are refused by name.
 *
 * Why not Hugging Face's own JavaScript port (npm `@huggingface/tokenizers` 0.2.0): checked
 * against the same Python oracle, it gave other ids for 43 of the 2,907 test strings with
 * SmolLM2's file (Unicode spaces in the GPT-2 split), other text for 30 decodings with each file,
 * and it cannot read special tokens as plain text, which chat needs for user content.
 *
 * @module
 */

import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { AddedTokens } from "./added_tokens.ts";
import { BpeModel } from "./bpe.ts";
import { BpeTokenizer } from "./bpe_tokenizer.ts";
import { parseDecoder } from "./decoder.ts";
import { JsonFields } from "./json_fields.ts";
import { buildNormalizer, buildPreTokenizer } from "./pipeline.ts";

const MERGE_SEPARATOR = "\u0001";

/**
 * Builds a tokenizer from the bytes of a `tokenizer.json`.
 *
 * @param name the file name, for error messages
 * @throws {TokenizerFormatError} when the file is not JSON or not a well-formed tokenizer
 * @throws {UnsupportedTokenizerError} for a model or component that is not supported
 */
export function parseTokenizerJson(bytes: Uint8Array, name: string): BpeTokenizer {
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new TokenizerFormatError(
      name,
      0,
      `the file is not valid JSON (${(error as Error).message}); is it complete?`,
    );
  }
  const fail = (detail: string): never => {
    throw new TokenizerFormatError(name, 0, detail);
  };
  const unsupported = (detail: string): never => {
    throw new UnsupportedTokenizerError(name, detail);
  };
  const root = new JsonFields(document, "", fail);
  const model = root.object("model");
  const type = model.string("type", "BPE");
  if (type !== "BPE") unsupported(`the model type "${type}" is not supported (only BPE)`);
  for (const key of ["continuing_subword_prefix", "end_of_word_suffix"]) {
    if (model.has(key)) unsupported(`a BPE model with a ${key} is not supported`);
  }
  if (model.has("dropout") && model.raw("dropout") !== 0) {
    unsupported("BPE dropout is a training feature; a tokenizer for inference has none");
  }

  const vocab = readVocab(model);
  const tokens: (string | undefined)[] = [];
  for (const [token, id] of vocab) tokens[id] = token;
  const added = new AddedTokens(
    root.objects("added_tokens").map((token) => {
      const entry = {
        id: token.count("id"),
        content: token.string("content"),
        special: token.boolean("special", false),
        lstrip: token.boolean("lstrip", false),
        rstrip: token.boolean("rstrip", false),
        singleWord: token.boolean("single_word", false),
      };
      tokens[entry.id] = entry.content;
      return entry;
    }),
  );

  const ranks = readMerges(model, vocab);
  const unkToken = model.optionalString("unk_token");
  const unkId = unkToken === undefined ? undefined : vocab.get(unkToken) ??
    model.fail(`"${unkToken}" is not in the vocabulary`, "unk_token");
  const bpe = new BpeModel({
    vocab,
    rankOf: (left, right) => ranks.get(left + MERGE_SEPARATOR + right),
    ignoreMerges: model.boolean("ignore_merges", false),
    byteFallback: model.boolean("byte_fallback", false),
    unkId,
    fuseUnk: model.boolean("fuse_unk", false),
  });

  const normalizer = root.object("normalizer", "optional");
  const preTokenizer = root.object("pre_tokenizer", "optional");
  const decoder = root.object("decoder", "optional") ??
    unsupported("a tokenizer without a decoder is not supported");
  const template = templateOf(root.object("post_processor", "optional"), added);
  return new BpeTokenizer({
    kind: "tokenizer.json",
    tokens: Array.from(tokens),
    added,
    normalize: normalizer && buildNormalizer(normalizer, unsupported),
    preTokenize: preTokenizer && buildPreTokenizer(preTokenizer, unsupported),
    model: bpe,
    decoder: parseDecoder(decoder, unsupported),
    bosId: template.before,
    eosId: template.after,
    addBos: template.before !== undefined,
    stopTokens: template.after === undefined ? [] : [template.after],
  });
}

function readVocab(model: JsonFields): Map<string, number> {
  const vocab = model.object("vocab");
  const entries = new Map<string, number>();
  const seen = new Set<number>();
  for (const token of Object.keys(model.raw("vocab") as object)) {
    const id = vocab.count(token);
    if (seen.has(id)) vocab.fail(`has id ${id}, which another token already has`, token);
    seen.add(id);
    entries.set(token, id);
  }
  return entries;
}

/** Merge ranks keyed by `left \u0001 right`; every part and result must be in the vocabulary. */
function readMerges(model: JsonFields, vocab: ReadonlyMap<string, number>): Map<string, number> {
  const ranks = new Map<string, number>();
  model.array("merges").forEach((merge, rank) => {
    let pair: readonly unknown[] | undefined;
    if (typeof merge === "string") {
      const space = merge.indexOf(" ");
      pair = space > 0 ? [merge.slice(0, space), merge.slice(space + 1)] : undefined;
    } else if (Array.isArray(merge) && merge.length === 2) pair = merge;
    const [left, right] = pair ?? [];
    if (typeof left !== "string" || typeof right !== "string") {
      return model.fail(
        `is ${JSON.stringify(merge)}, expected "left right" or a pair of strings`,
        `merges[${rank}]`,
      );
    }
    for (const part of [left, right, left + right]) {
      if (!vocab.has(part)) {
        model.fail(`needs "${part}", which is not in the vocabulary`, `merges[${rank}]`);
      }
    }
    const key = left + MERGE_SEPARATOR + right;
    if (!ranks.has(key)) ranks.set(key, rank);
  });
  return ranks;
}

/** The special tokens a TemplateProcessing post-processor puts around a single sequence. */
function templateOf(
  processor: JsonFields | undefined,
  added: AddedTokens,
): { before: number | undefined; after: number | undefined } {
  const none = { before: undefined, after: undefined };
  if (processor === undefined) return none;
  const type = processor.string("type");
  if (type === "Sequence") {
    const found = processor.objects("processors").map((step) => templateOf(step, added));
    return found.find((t) => t.before !== undefined || t.after !== undefined) ?? none;
  }
  if (type !== "TemplateProcessing") return none;
  const items = processor.objects("single");
  const sequence = items.findIndex((item) => item.has("Sequence"));
  if (sequence < 0) processor.fail("has no $A sequence", "single");
  const idOf = (item: JsonFields | undefined) => {
    if (item === undefined || !item.has("SpecialToken")) return undefined;
    const content = item.object("SpecialToken").string("id");
    const specials = processor.object("special_tokens");
    const ids = specials.object(content).array("ids");
    const id = ids[0];
    if (ids.length !== 1 || typeof id !== "number") {
      return specials.fail("should map it to exactly one id", content);
    }
    if (added.get(content) === undefined) {
      specials.fail("is not an added token of this tokenizer", content);
    }
    return id;
  };
  if (sequence > 1 || items.length - sequence > 2) {
    processor.fail("adds more than one token on a side, which is not supported", "single");
  }
  return { before: idOf(items[sequence - 1]), after: idOf(items[sequence + 1]) };
}
