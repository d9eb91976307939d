/**
 * Loading a tokenizer file of any kind, recognised by its content rather than its name (both
 * SentencePiece and tiktoken files are called `tokenizer.model`): SentencePiece, tiktoken ranks,
 * a Hugging Face `tokenizer.json`, or a GGUF's vocabulary.
 *
 * @module
 */

import { readRegularFile, UnsafeFileError } from "../files/confined.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import { TokenizerFormatError } from "./errors.ts";
import { SentencePieceTokenizer } from "./sentencepiece/sentencepiece_tokenizer.ts";
import { looksLikeRanksFile } from "./tiktoken/ranks_file.ts";
import { TiktokenTokenizer } from "./tiktoken/tiktoken_tokenizer.ts";
import { parseTokenizerJson } from "./bpe/tokenizer_json.ts";
import {
  isGgufFile,
  loadGgufTokenizer,
  parseGgufTokenizer,
  startsWithGgufMagic,
} from "./gguf/gguf_file.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Larger files are refused before reading: Llama 3's is 2 MiB (its tokenizer.json 9 MiB), Llama
 * 2's 0.5 MiB.
 */
export const MAX_TOKENIZER_BYTES = 64 * 2 ** 20;

/** Options of {@link parseTokenizer}. */
export interface ParseTokenizerOptions {
  /**
   * The name error messages give the file.
   * @default "tokenizer.model"
   */
  readonly name?: string;
}

/**
 * Builds a tokenizer from the bytes of a tokenizer file: a SentencePiece protobuf (its first
 * field is a length-delimited ModelProto field), a tiktoken ranks file (its first line is a
 * base64 token, a space and a rank), a Hugging Face `tokenizer.json` with a BPE model (a JSON
 * object) or a GGUF (`GGUF` first) holding a vocabulary. A GGUF model file is better read with
 * {@link loadTokenizer}, which reads its header alone.
 *
 * @example Encoding and decoding with the embedded KJV tokenizer
 * ```ts
 * import { parseTokenizer } from "@llamane/llamane/tokenizer";
 * import assert from "node:assert/strict";
 *
 * const bytes = await Deno.readFile("models/kjv-tiny/tokenizer.model");
 * const tokenizer = parseTokenizer(bytes, { name: "kjv-tiny" });
 * const ids = tokenizer.encode("In the beginning", { bos: true });
 * assert.equal(ids[0], tokenizer.bosId);
 * assert.equal(tokenizer.decode(ids), "In the beginning");
 * ```
 *
 * @throws {TokenizerFormatError} when the content is none of these formats, or is malformed
 * @throws {UnsupportedTokenizerError} for a SentencePiece, tokenizer.json or GGUF feature not
 * implemented
 */
export function parseTokenizer(bytes: Uint8Array, options: ParseTokenizerOptions = {}): Tokenizer {
  const name = options.name ?? "tokenizer.model";
  if (bytes.length === 0) throw new TokenizerFormatError(name, 0, "the file is empty");
  if (looksLikeRanksFile(bytes)) return TiktokenTokenizer.parse(bytes, name);
  const first = bytes[0]!;
  // A ModelProto starts with one of its message fields 1..5, each length-delimited (wire type 2).
  if ((first & 7) === 2 && first >> 3 >= 1 && first >> 3 <= 5) {
    return SentencePieceTokenizer.parse(bytes, name);
  }
  const text = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart();
  if (text.startsWith("{")) return parseTokenizerJson(bytes, name);
  if (startsWithGgufMagic(bytes)) return parseGgufTokenizer(bytes, name);
  throw new TokenizerFormatError(
    name,
    0,
    "unrecognised format: expected a SentencePiece model (protobuf), a tiktoken ranks file " +
      "(lines of base64 token and rank), a tokenizer.json or a GGUF",
  );
}

/**
 * Reads and parses a tokenizer file (see {@link parseTokenizer}), or the vocabulary of a GGUF
 * model file (reading its header only). Needs read permission for `path`, checked before
 * anything else.
 *
 * @throws {MissingPermissionError} without `--allow-read` for `path`
 */
export async function loadTokenizer(path: string | URL): Promise<Tokenizer> {
  const name = path instanceof URL ? path.pathname : path;
  await requirePermissions([readNeed(path, `read the tokenizer "${name}"`)]);
  if (await isGgufFile(name)) return await loadGgufTokenizer(name, name);
  let bytes: Uint8Array;
  try {
    bytes = readRegularFile(name, MAX_TOKENIZER_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    if (error.detail === "is missing") {
      throw new Deno.errors.NotFound(`Cannot load tokenizer "${name}": no such file`);
    }
    if (error.detail.startsWith("is a directory")) {
      throw new Deno.errors.IsADirectory(
        `Cannot load tokenizer "${name}": it is a directory; pass the tokenizer.model file in it`,
      );
    }
    const hint = error.detail.includes("bytes") ? "; is it the checkpoint?" : "";
    throw new TokenizerFormatError(name, 0, `the file ${error.detail}${hint}`);
  }
  return parseTokenizer(bytes, { name });
}
